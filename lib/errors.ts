/**
 * Error classes for the failures a caller acts on. Each message says what
 * went wrong and, where the user can fix it, how.
 *
 * @module
 */

import { formatDuration } from "./time/duration.ts";

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

/** A TCP connection to a destination or a proxy could not be opened. */
export class DialError extends Error {
  /**
   * @param target `host:port` that was dialed.
   * @param options The underlying cause.
   */
  constructor(target: string, options?: ErrorOptions) {
    const cause = options?.cause instanceof Error
      ? `: ${options.cause.message}`
      : "";
    super(`Cannot connect to ${target}${cause}`, options);
    this.name = "DialError";
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

/** A step did not finish within its time limit. */
export class TimeoutError extends Error {
  /**
   * @param what The step that timed out, e.g. "CONNECT to proxy:3128".
   * @param ms The limit in milliseconds.
   */
  constructor(what: string, ms: number) {
    super(`${what} timed out after ${formatDuration(ms)}`);
    this.name = "TimeoutError";
  }
}

/** The proxy answered CONNECT with a status other than 2xx. */
export class ProxyRefusedError extends Error {
  /** The numeric status code, e.g. 403. */
  readonly status: number;
  /** The proxy's status line as received, e.g. `HTTP/1.1 403 Forbidden`. */
  readonly statusLine: string;

  /**
   * @param proxy `host:port` of the proxy.
   * @param target `host:port` the CONNECT asked for.
   * @param status The status code.
   * @param statusLine The status line as received.
   */
  constructor(
    proxy: string,
    target: string,
    status: number,
    statusLine: string,
    message = `Proxy ${proxy} refused CONNECT to ${target}: "${statusLine}"`,
  ) {
    super(message);
    this.name = "ProxyRefusedError";
    this.status = status;
    this.statusLine = statusLine;
  }
}

/** Why proxy authentication failed. */
export type ProxyAuthFailure =
  | "credentials-needed"
  | "credentials-rejected"
  | "unsupported-scheme"
  | "handshake-failed";

/**
 * The proxy answered 407 and the tool could not authenticate: no
 * credentials, wrong ones, only schemes this tool lacks, or an NTLM
 * handshake the proxy broke off. The message never holds a secret.
 */
export class ProxyAuthError extends ProxyRefusedError {
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
   */
  constructor(
    proxy: string,
    target: string,
    statusLine: string,
    failure: ProxyAuthFailure,
    detail: string,
  ) {
    const what = {
      "credentials-needed":
        `requires authentication (offers ${detail}): add user:password to the proxy URL`,
      "credentials-rejected": `rejected the credentials (${detail})`,
      "unsupported-scheme":
        `offers only authentication schemes this tool does not support (${detail})`,
      "handshake-failed": `broke off the ${detail}`,
    }[failure];
    super(
      proxy,
      target,
      407,
      statusLine,
      `Proxy ${proxy} ${what} for CONNECT ${target}: "${statusLine}"`,
    );
    this.name = "ProxyAuthError";
    this.failure = failure;
    this.detail = detail;
  }
}

/** A SOCKS5 proxy refused the connection or the credentials. */
export class SocksError extends Error {
  /** The reply code (RFC 1928 §6), or undefined for an authentication failure. */
  readonly reply?: number;
  /** Whether another proxy may do better (the proxy, not the request, failed). */
  readonly proxyFault: boolean;

  /**
   * @param message What happened and what to do.
   * @param reply The reply code, when the proxy sent one.
   * @param proxyFault Whether another proxy may do better.
   */
  constructor(message: string, reply: number | undefined, proxyFault: boolean) {
    super(message);
    this.name = "SocksError";
    this.reply = reply;
    this.proxyFault = proxyFault;
  }
}

/** TLS with an https:// proxy failed, e.g. an untrusted certificate. */
export class ProxyTlsError extends Error {
  /**
   * @param proxy `host:port` of the proxy.
   * @param options The underlying cause.
   */
  constructor(proxy: string, options: ErrorOptions) {
    const cause = options.cause instanceof Error
      ? options.cause.message
      : String(options.cause);
    const hint = /certificate|UnknownIssuer|issuer/i.test(cause)
      ? ": if the proxy uses a private CA, name its certificate with ca-file=FILE (or --ca-file)"
      : "";
    super(`TLS with proxy ${proxy} failed: ${cause}${hint}`, options);
    this.name = "ProxyTlsError";
  }
}

/** The proxy's answer is not an HTTP response this tool can understand. */
export class ProxyProtocolError extends Error {
  /**
   * @param message What was wrong with the response.
   */
  constructor(message: string) {
    super(message);
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
