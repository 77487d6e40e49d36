/**
 * Error classes for the failures a caller acts on. Each message says what
 * went wrong and, where the user can fix it, how.
 *
 * @module
 */

import { formatDuration } from "./time/duration.ts";
import { parseSquidError, type SquidError } from "./proxy/squid_error.ts";
import type { WsRefusal } from "./ws/handshake.ts";

/** A problem in a config file, located at `file:line:column`. */
export class ConfigError extends Error {
  /** The config file's path as the user gave it. */
  readonly file: string;
  /** 1-based line of the offending token. */
  readonly line: number;
  /** 1-based column of the offending token. */
  readonly column: number;

  /**
   * @param file The config file's path.
   * @param line 1-based line number.
   * @param column 1-based column number.
   * @param message What is wrong and what to write instead.
   */
  constructor(file: string, line: number, column: number, message: string) {
    super(`${file}:${line}:${column}: ${message}`);
    this.name = "ConfigError";
    this.file = file;
    this.line = line;
    this.column = column;
  }
}

/** A config file that could not be read or that has errors. */
export class ConfigLoadError extends Error {
  /** Every error found, in file order; empty when the file could not be read. */
  readonly errors: readonly ConfigError[];

  /**
   * @param message A one-line summary.
   * @param errors The individual errors.
   * @param options The underlying cause, if any.
   */
  constructor(
    message: string,
    errors: readonly ConfigError[] = [],
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "ConfigLoadError";
    this.errors = errors;
  }
}

/** The command line is wrong; the CLI exits with status 2. */
export class UsageError extends Error {
  /** @param message What is wrong and what to write instead. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/**
 * Why opening a tunnel failed, as a metric label: `connect` (TCP),
 * `timeout`, `refused` (by a proxy), `auth`, `protocol` (an answer this tool
 * cannot understand), `tls`, `client` (a local proxy's client spoke
 * garbage, too slowly, or was not allowed), or `other`.
 */
export type FailureReason =
  | "client"
  | "connect"
  | "timeout"
  | "refused"
  | "auth"
  | "protocol"
  | "tls"
  | "other";

/** Options of a {@link RouteError}. */
export interface RouteErrorOptions extends ErrorOptions {
  /**
   * Whether another proxy may do better: the proxy failed (unreachable, too
   * slow, broken, 5xx), not the request (403, 407, a SOCKS rule).
   * @default false
   */
  readonly proxyFault?: boolean;
  /**
   * Whether the proxy answered but could not reach the address it was asked
   * for; in a chain, the hop after it is then the one to blame.
   * @default false
   */
  readonly unreachable?: boolean;
}

/**
 * A failure while opening a route. Each subclass says what it is
 * (`kind`, for diagnoses), how it counts (`reason`, for metrics) and who is
 * to blame (`proxyFault`, `unreachable`, for failover), so callers read
 * properties instead of testing classes.
 */
export abstract class RouteError extends Error {
  /** Which failure this is; narrows a {@link RouteFailure}. */
  abstract readonly kind: RouteFailure["kind"];
  /** The metric label. */
  abstract readonly reason: FailureReason;
  /** Whether another proxy may do better. */
  readonly proxyFault: boolean;
  /** Whether the proxy could not reach the address asked for. */
  readonly unreachable: boolean;

  /**
   * @param message What went wrong and what to do.
   * @param options Blame, and the underlying cause.
   */
  constructor(message: string, options: RouteErrorOptions = {}) {
    super(message, options);
    this.proxyFault = options.proxyFault ?? false;
    this.unreachable = options.unreachable ?? false;
  }
}

/** Every concrete {@link RouteError}, told apart by `kind`. */
export type RouteFailure =
  | DialError
  | TimeoutError
  | ProxyRefusedError
  | ProxyAuthError
  | SocksError
  | ProxyTlsError
  | ProxyProtocolError
  | WsRefusedError;

/**
 * The route failure in `error`, if it is one.
 *
 * @param error What opening a route threw.
 * @returns The error as a {@link RouteFailure}, or `undefined`.
 */
export function routeFailure(error: unknown): RouteFailure | undefined {
  return error instanceof RouteError ? error as RouteFailure : undefined;
}

/** A TCP connection to a destination or a proxy could not be opened. */
export class DialError extends RouteError {
  /** See {@link RouteError.kind}. */
  readonly kind = "dial";
  /** See {@link RouteError.reason}. */
  readonly reason = "connect";

  /**
   * @param target `host:port` that was dialed.
   * @param options The underlying cause.
   */
  constructor(target: string, options?: ErrorOptions) {
    const cause = options?.cause instanceof Error
      ? `: ${options.cause.message}`
      : "";
    super(`Cannot connect to ${target}${cause}`, {
      ...options,
      proxyFault: true,
    });
    this.name = "DialError";
  }
}

/** A step of opening a route did not finish within its time limit. */
export class TimeoutError extends RouteError {
  /** See {@link RouteError.kind}. */
  readonly kind = "timeout";
  /** See {@link RouteError.reason}. */
  readonly reason = "timeout";

  /**
   * @param what The step that timed out, e.g. "CONNECT to proxy:3128".
   * @param ms The limit in milliseconds.
   */
  constructor(what: string, ms: number) {
    super(`${what} timed out after ${formatDuration(ms)}`, {
      proxyFault: true,
    });
    this.name = "TimeoutError";
  }
}

/** The proxy answered CONNECT with a status other than 2xx (and not 407). */
export class ProxyRefusedError extends RouteError {
  /** See {@link RouteError.kind}. */
  readonly kind = "refused";
  /** See {@link RouteError.reason}. */
  readonly reason = "refused";
  /** The numeric status code, e.g. 403. */
  readonly status: number;
  /** The proxy's status line as received, e.g. `HTTP/1.1 403 Forbidden`. */
  readonly statusLine: string;
  /** The proxy's own error detail (squid's `X-Squid-Error`), when sent. */
  readonly proxyError?: SquidError;

  /**
   * @param proxy `host:port` of the proxy.
   * @param target `host:port` the CONNECT asked for.
   * @param status The status code.
   * @param statusLine The status line as received.
   * @param squidError The `X-Squid-Error` header's value, if any.
   */
  constructor(
    proxy: string,
    target: string,
    status: number,
    statusLine: string,
    squidError?: string,
  ) {
    const detail = squidError === undefined
      ? undefined
      : parseSquidError(squidError);
    const said = detail === undefined
      ? ""
      : detail.meaning
      ? `: ${detail.meaning} (${detail.raw})`
      : ` (X-Squid-Error: ${detail.raw})`;
    // 5xx: the proxy could not reach the target; another proxy may.
    super(
      `Proxy ${proxy} refused CONNECT to ${target}: "${statusLine}"${said}`,
      { proxyFault: status >= 500, unreachable: status >= 500 },
    );
    this.name = "ProxyRefusedError";
    this.status = status;
    this.statusLine = statusLine;
    this.proxyError = detail;
  }
}

/**
 * Why proxy authentication failed. `negotiate-failed`: the proxy offers
 * Negotiate and nothing else this tool can answer, and no Kerberos token
 * could be made (the {@link KerberosError} is the cause).
 */
export type ProxyAuthFailure =
  | "credentials-needed"
  | "credentials-rejected"
  | "unsupported-scheme"
  | "handshake-failed"
  | "negotiate-failed";

/**
 * The proxy answered 407 and the tool could not authenticate: no
 * credentials, wrong ones, only schemes this tool lacks, an NTLM
 * handshake the proxy broke off, or no Kerberos ticket for a proxy that
 * asks for Negotiate. The message never holds a secret.
 */
export class ProxyAuthError extends RouteError {
  /** See {@link RouteError.kind}. */
  readonly kind = "auth";
  /** See {@link RouteError.reason}. */
  readonly reason = "auth";
  /** Always 407. */
  readonly status = 407;
  /** The proxy's last status line. */
  readonly statusLine: string;
  /** What went wrong. */
  readonly failure: ProxyAuthFailure;
  /** The schemes offered or tried, e.g. `Basic, NTLM`. */
  readonly detail: string;

  /**
   * @param proxy `host:port` of the proxy.
   * @param target `host:port` the CONNECT asked for.
   * @param statusLine The proxy's last status line.
   * @param failure What went wrong.
   * @param detail The schemes offered or tried, e.g. `Basic, NTLM`.
   * @param options The cause: a {@link KerberosError} when Negotiate could
   *   not be used, its message then added to this one.
   */
  constructor(
    proxy: string,
    target: string,
    statusLine: string,
    failure: ProxyAuthFailure,
    detail: string,
    options?: ErrorOptions,
  ) {
    const what = {
      "credentials-needed": "requires authentication",
      "credentials-rejected": `rejected the credentials (${detail})`,
      "unsupported-scheme":
        `offers only authentication schemes this tool does not support (${detail})`,
      "handshake-failed": `broke off the ${detail}`,
      "negotiate-failed": `requires Kerberos authentication (offers ${detail})`,
    }[failure];
    // The Kerberos reason ends the message: it says what to do.
    const kerberos = options?.cause instanceof KerberosError
      ? `; Negotiate: ${options.cause.message}`
      : "";
    // Without credentials, what to add ends the sentence.
    const answer = failure === "credentials-needed"
      ? ` ("${statusLine}"): the proxy offers ${detail}; add user:password to the proxy URL`
      : `: "${statusLine}"`;
    super(
      `Proxy ${proxy} ${what} for CONNECT ${target}${answer}${kerberos}`,
      options,
    );
    this.name = "ProxyAuthError";
    this.statusLine = statusLine;
    this.failure = failure;
    this.detail = detail;
  }
}

/**
 * Why no Kerberos token could be made for a proxy that offers Negotiate:
 * `ffi-denied` (run without `--allow-ffi`), `library-missing` (no GSSAPI
 * library), `unsupported-platform` (Windows: SSPI is not implemented),
 * `no-ticket` (no ticket cache, or an empty one: kinit), `expired`,
 * `unknown-server` (the KDC has no principal for the proxy's name),
 * `clock-skew`, `kdc-unreachable`, `rejected` (the proxy did not accept the
 * token), or `failed` (anything else GSSAPI says).
 */
export type KerberosProblem =
  | "ffi-denied"
  | "library-missing"
  | "unsupported-platform"
  | "no-ticket"
  | "expired"
  | "unknown-server"
  | "clock-skew"
  | "kdc-unreachable"
  | "rejected"
  | "failed";

/** A GSSAPI status (RFC 2744 §3.9), numbers and `gss_display_status` text. */
export interface GssStatus {
  /** The major status: routine and calling errors, supplementary bits. */
  readonly major: number;
  /** The mechanism's minor status. */
  readonly minor: number;
  /** The major status as text. */
  readonly majorText: string;
  /** The minor status as text, e.g. `Ticket expired`. */
  readonly minorText: string;
}

/** Options of a {@link KerberosError}. */
export interface KerberosErrorOptions extends ErrorOptions {
  /** The service principal asked for, e.g. `HTTP@proxy.corp`. */
  readonly spn?: string;
  /** What GSSAPI said. */
  readonly gss?: GssStatus;
  /** More text, e.g. the loader's message for `library-missing`. */
  readonly detail?: string;
}

const GSSAPI_PACKAGES =
  "install libgssapi-krb5-2 (Debian, Ubuntu) or krb5-libs (Fedora, RHEL)";

/**
 * No Kerberos token for a proxy that offers Negotiate; the message says
 * what to do (`no Kerberos ticket for HTTP@proxy.corp: run kinit (…)`).
 */
export class KerberosError extends Error {
  /** Which problem. */
  readonly problem: KerberosProblem;
  /** The service principal asked for, e.g. `HTTP@proxy.corp`. */
  readonly spn?: string;
  /** What GSSAPI said, when it was asked. */
  readonly gss?: GssStatus;

  /**
   * @param problem Which problem.
   * @param options The service principal, GSSAPI's status, more text.
   */
  constructor(problem: KerberosProblem, options: KerberosErrorOptions = {}) {
    const { spn = "the proxy", gss, detail } = options;
    const said = gss ? gssSummary(gss) : detail;
    const what = {
      "ffi-denied":
        "Kerberos needs Deno's FFI: run with --allow-ffi (deno task start has it; build the binary with deno task compile:kerberos)",
      "library-missing":
        `Kerberos needs the GSSAPI library (libgssapi_krb5.so.2 on Linux, GSS.framework on macOS): ${GSSAPI_PACKAGES}`,
      "unsupported-platform":
        "Kerberos through Windows SSPI is not supported: have the proxy offer NTLM, Digest or Basic and give user:password",
      "no-ticket": `no Kerberos ticket for ${spn}: run kinit`,
      "expired":
        `no valid Kerberos ticket for ${spn}, the cached ones have expired: run kinit`,
      "unknown-server":
        `the Kerberos KDC knows no service ${spn}: write the proxy's name as its Kerberos principal has it (often the full DNS name)`,
      "clock-skew":
        `this machine's clock is too far from the Kerberos KDC's to get a ticket for ${spn}: synchronise it (NTP)`,
      "kdc-unreachable":
        `no Kerberos KDC answers, no ticket for ${spn}: check the network and the realm's kdc lines in krb5.conf`,
      "rejected":
        `the proxy did not accept the Kerberos ticket for ${spn}: check with klist that the ticket is of the proxy's realm`,
      "failed": `Kerberos could not make a token for ${spn}`,
    }[problem];
    super(said ? `${what} (${said})` : what, options);
    this.name = "KerberosError";
    this.problem = problem;
    this.spn = options.spn;
    this.gss = gss;
  }
}

/** The most telling text of a GSSAPI status: the mechanism's, else the major. */
function gssSummary(gss: GssStatus): string {
  return gss.minorText || gss.majorText;
}

/**
 * A GSSAPI status in full, for `probe`: both codes in hexadecimal, each with
 * its text.
 *
 * @param gss The status.
 * @returns e.g. `GSS major 0xd0000 (Unspecified GSS failure…), minor 0x186a1 (Ticket expired)`.
 */
export function formatGssStatus(gss: GssStatus): string {
  const hex = (n: number) => `0x${n.toString(16)}`;
  return `GSS major ${hex(gss.major)} (${gss.majorText}), minor ${
    hex(gss.minor)
  } (${gss.minorText || "none"})`;
}

/** Options of a {@link SocksError}. */
export interface SocksErrorOptions {
  /** The reply code (RFC 1928 §6); absent for an authentication failure. */
  readonly reply?: number;
}

/** A SOCKS5 proxy refused the connection or the credentials. */
export class SocksError extends RouteError {
  /** See {@link RouteError.kind}. */
  readonly kind = "socks";
  /** See {@link RouteError.reason}. */
  readonly reason = "refused";
  /** The reply code (RFC 1928 §6), or undefined for an authentication failure. */
  readonly reply?: number;

  /**
   * @param message What happened and what to do.
   * @param options The reply code, when the proxy sent one.
   */
  constructor(message: string, options: SocksErrorOptions = {}) {
    // A refusal by rule (2), or a request the proxy cannot serve (7, 8),
    // would be the same at another proxy; the other codes mean the proxy
    // could not reach the destination.
    const { reply } = options;
    const unreachable = reply !== undefined && reply !== 0 && reply !== 2 &&
      reply !== 7 && reply !== 8;
    super(message, { proxyFault: unreachable, unreachable });
    this.name = "SocksError";
    this.reply = reply;
  }
}

/** TLS with an https:// proxy failed, e.g. an untrusted certificate. */
export class ProxyTlsError extends RouteError {
  /** See {@link RouteError.kind}. */
  readonly kind = "tls";
  /** See {@link RouteError.reason}. */
  readonly reason = "tls";
  /** Whether the proxy's certificate was refused (rather than TLS failing). */
  readonly untrusted: boolean;
  /** Whose TLS failed: an https:// proxy's or a wss:// tunnel server's. */
  readonly peer: TlsPeer;
  /** What to do about a refused certificate, or `""`. */
  readonly hint: string;

  /**
   * @param proxy `host:port` of the proxy (or tunnel server).
   * @param options The underlying cause, and whose TLS it was.
   */
  constructor(proxy: string, options: ProxyTlsErrorOptions) {
    const cause = errorMessage(options.cause);
    const peer = options.peer ?? "proxy";
    const untrusted = options.pinMismatch === true ||
      /certificate|UnknownIssuer|issuer/i.test(cause);
    const hint = !untrusted
      ? ""
      : peer === "proxy"
      ? ": if the proxy uses a private CA, name its certificate with ca-file=FILE (or --ca-file)"
      : options.pinMismatch
      ? ": if the server has a new certificate, pin its new fingerprint; otherwise something on the way shows a certificate of its own (a proxy that intercepts TLS), and the pin kept the tunnel from running through it"
      : ": if the server's certificate is self-signed or from a private CA, pin it with fingerprint= or name the CA with ca-file=; a proxy on the way that intercepts TLS shows certificates from a CA of its own, which ca-file= can name to let it read the tunnel";
    super(`TLS with ${peer} ${proxy} failed: ${cause}${hint}`, {
      ...options,
      proxyFault: true,
    });
    this.name = "ProxyTlsError";
    this.untrusted = untrusted;
    this.peer = peer;
    this.hint = hint;
  }
}

/** Whose TLS a {@link ProxyTlsError} is about. */
export type TlsPeer = "proxy" | "tunnel server";

/** Options of {@link ProxyTlsError}. */
export interface ProxyTlsErrorOptions extends ErrorOptions {
  /**
   * Whose TLS it was: an https:// proxy, or a wss:// tunnel server.
   *
   * @default {"proxy"}
   */
  peer?: TlsPeer;
  /**
   * The certificate was refused because it is not the one `fingerprint=`
   * pins.
   *
   * @default {false}
   */
  pinMismatch?: boolean;
}

/**
 * Why a WebSocket tunnel server refused, as its `X-Httptunneling-Refusal`
 * names it (see lib/ws/handshake.ts); `not-a-tunnel` when the answer named
 * no refusal: the URL's path is wrong, or something else answered.
 */
export type WsRefusalKind = WsRefusal | "not-a-tunnel";

/**
 * A ws:// or wss:// tunnel server refused the tunnel. Blame as for a proxy:
 * a wrong token, too many failures or a busy server is the server's
 * (another may take the tunnel), a target outside its allow rules would be refused anywhere,
 * and a target it could not reach is the next hop's, like a proxy's 502.
 * The message holds the server's one-line reason, never the token.
 */
export class WsRefusedError extends RouteError {
  /** See {@link RouteError.kind}. */
  readonly kind = "ws-refused";
  /** See {@link RouteError.reason}. */
  readonly reason: FailureReason;
  /** Which refusal. */
  readonly refusal: WsRefusalKind;
  /** The status code, e.g. 403. */
  readonly status: number;
  /** The server's one-line reason, printable, possibly empty. */
  readonly serverReason: string;

  /**
   * @param server `host:port` and path of the server, e.g. `tunnel.example.org:443/t`.
   * @param target `host:port` the tunnel was asked for.
   * @param status The status code.
   * @param refusal Which refusal.
   * @param serverReason The server's reason, already made printable.
   */
  constructor(
    server: string,
    target: string,
    status: number,
    refusal: WsRefusalKind,
    serverReason: string,
  ) {
    const [what, hint] = {
      "bad-request": [
        "refused the request for",
        "the server may speak another version of the protocol",
      ],
      "auth": ["refused the token for", "check token= (or --token)"],
      "certificate": [
        "refused the client certificate for",
        "give client-cert= and client-key= (or --client-cert and --client-key) with a certificate from a CA the server's --client-ca names",
      ],
      "not-allowed": [
        "does not allow",
        "its allow rules leave this target out",
      ],
      "rate-limited": [
        "refuses this address, after too many wrong tokens, for",
        "wait, and check token=",
      ],
      "busy": [
        "is busy (at its tunnel limit, or shutting down) and refused",
        "",
      ],
      "refused": ["was refused by", ""],
      "unreachable": ["cannot reach", ""],
      "timeout": ["timed out connecting to", ""],
      "no-upgrade": [
        "received the WebSocket upgrade without its Upgrade header for",
        "use transport=poll, or transport=auto (the default)",
      ],
      "not-a-tunnel": [
        "is no tunnel endpoint for",
        "check the path of the ws:// or wss:// URL",
      ],
    }[refusal];
    const said = serverReason === "" ? "" : `; server says: ${serverReason}`;
    const beyond = refusal === "refused" || refusal === "unreachable" ||
      refusal === "timeout";
    super(
      `Tunnel server ${server} ${what} ${target} (status ${status}${said})${
        hint === "" ? "" : `: ${hint}`
      }`,
      {
        proxyFault: beyond || refusal === "auth" ||
          refusal === "certificate" || refusal === "busy" ||
          refusal === "rate-limited" || refusal === "not-a-tunnel" ||
          refusal === "no-upgrade",
        unreachable: beyond,
      },
    );
    this.name = "WsRefusedError";
    this.reason = refusal === "auth" || refusal === "certificate"
      ? "auth"
      : refusal === "timeout"
      ? "timeout"
      : refusal === "not-a-tunnel" || refusal === "no-upgrade"
      ? "protocol"
      : "refused";
    this.refusal = refusal;
    this.status = status;
    this.serverReason = serverReason;
  }
}

/** The proxy's answer is not one this tool can understand. */
export class ProxyProtocolError extends RouteError {
  /** See {@link RouteError.kind}. */
  readonly kind = "protocol";
  /** See {@link RouteError.reason}. */
  readonly reason = "protocol";

  /**
   * @param message What was wrong with the response.
   */
  constructor(message: string) {
    super(message, { proxyFault: true });
    this.name = "ProxyProtocolError";
  }
}

/**
 * The message of anything thrown, for a log line or an `error:` line.
 *
 * @param error What was caught.
 * @returns The error's message, or the value as text.
 */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
