/**
 * The Negotiate scheme (RFC 4559) for proxies: the service principal asked
 * for (`HTTP@<proxy host>`), the `Proxy-Authorization: Negotiate <base64>`
 * framing, the object identifiers GSSAPI is given (DER, RFC 2743 §3.1), and
 * what a GSSAPI status means for the user. Pure; the GSSAPI calls
 * themselves are behind {@link KerberosClient}, implemented in `gssapi.ts`.
 *
 * @module
 */

import type {
  GssStatus,
  KerberosError,
  KerberosProblem,
} from "../../errors.ts";
import { fromBase64, toBase64 } from "../../net/bytes.ts";
import type { Challenge } from "./challenge.ts";

/** SPNEGO, the mechanism Negotiate carries (RFC 4178). */
export const SPNEGO_OID = "1.3.6.1.5.5.2";

/** GSS_C_NT_HOSTBASED_SERVICE: names written `service@host` (RFC 2743 §4.1). */
export const HOSTBASED_SERVICE_OID = "1.2.840.113554.1.2.1.4";

/** Server tokens larger than this are not decoded; Kerberos ones are a few KiB. */
export const MAX_TOKEN_BYTES = 64 * 1024;

/** One step of a security context. */
export interface NegotiateStep {
  /** The token to send; empty when there is nothing more to send. */
  readonly token: Uint8Array;
  /** Whether the context is established (no server token is awaited). */
  readonly complete: boolean;
}

/** A security context with one proxy; disposing it releases it. */
export interface NegotiateContext extends Disposable {
  /** The service principal, e.g. `HTTP@proxy.corp`. */
  readonly spn: string;
  /** The client principal whose ticket is used, e.g. `jane@CORP.EXAMPLE`. */
  readonly principal?: string;
  /**
   * The next token: the first one without a server token, then one for
   * each token the server sends.
   *
   * @param serverToken The token of the proxy's `Negotiate` challenge.
   * @throws {KerberosError} when GSSAPI fails.
   */
  step(serverToken?: Uint8Array): NegotiateStep;
}

/** The ticket cache as `probe` shows it. */
export interface KerberosCredentials {
  /** The cache's name, e.g. `FILE:/tmp/krb5cc_1000`, when known. */
  readonly cache?: string;
  /** The client principal, when the cache has a valid ticket. */
  readonly principal?: string;
  /** Seconds the ticket stays valid. */
  readonly lifetimeSeconds?: number;
  /** Why there is no usable ticket. */
  readonly problem?: KerberosError;
}

/**
 * The system's Kerberos: the seam between the authenticator and GSSAPI,
 * so that the scheme logic is tested with plain values.
 */
export interface KerberosClient {
  /**
   * Starts a security context for a service.
   *
   * @param spn The service principal, e.g. `HTTP@proxy.corp`.
   * @returns The context; its first `step()` makes the first token.
   * @throws {KerberosError} when there is no usable ticket, library or permission.
   */
  start(spn: string): NegotiateContext;
  /** The ticket cache, its principal and lifetime, or why there is none. */
  credentials(): KerberosCredentials;
}

/**
 * The service principal of an HTTP proxy, host as written in the config
 * (what curl and browsers ask for by default on Linux).
 *
 * @param host The proxy's host name or address; IPv6 brackets are dropped.
 * @returns e.g. `HTTP@proxy.corp`.
 *
 * @example
 * ```ts
 * servicePrincipal("proxy.corp"); // "HTTP@proxy.corp"
 * ```
 */
export function servicePrincipal(host: string): string {
  return `HTTP@${host.replace(/^\[(.*)\]$/, "$1")}`;
}

/**
 * The `Proxy-Authorization` value carrying a token.
 *
 * @param token A GSSAPI token.
 * @returns `Negotiate <base64>`.
 */
export function negotiateAuthorization(token: Uint8Array): string {
  return `Negotiate ${toBase64(token)}`;
}

/**
 * The token of a `Negotiate` challenge, if it carries a valid one.
 *
 * @param challenge A parsed challenge of scheme `negotiate`.
 * @returns The token's bytes; `undefined` for a bare `Negotiate`, or a
 *   token that is not base64 or is larger than {@link MAX_TOKEN_BYTES}.
 */
export function negotiateToken(challenge: Challenge): Uint8Array | undefined {
  const text = challenge.token68;
  if (!text || text.length > Math.ceil(MAX_TOKEN_BYTES / 3) * 4) {
    return undefined;
  }
  try {
    return fromBase64(text);
  } catch {
    return undefined;
  }
}

/**
 * The DER contents of an object identifier, as a `gss_OID`'s elements.
 *
 * @param dotted e.g. `1.3.6.1.5.5.2`.
 * @returns The bytes after the tag and length, e.g. `2b 06 01 05 05 02`.
 *
 * @example
 * ```ts
 * encodeOid(SPNEGO_OID); // Uint8Array [0x2b, 0x06, 0x01, 0x05, 0x05, 0x02]
 * ```
 */
export function encodeOid(dotted: string): Uint8Array {
  const arcs = dotted.split(".").map(Number);
  if (
    arcs.length < 2 ||
    arcs.some((arc) => !Number.isSafeInteger(arc) || arc < 0) ||
    arcs[0] > 2 || (arcs[0] < 2 && arcs[1] > 39)
  ) {
    throw new RangeError(`${dotted} is not an object identifier`);
  }
  const bytes: number[] = [];
  for (const arc of [arcs[0] * 40 + arcs[1], ...arcs.slice(2)]) {
    const base128 = [arc % 128];
    for (
      let rest = Math.floor(arc / 128);
      rest > 0;
      rest = Math.floor(rest / 128)
    ) {
      base128.unshift(0x80 | (rest % 128));
    }
    bytes.push(...base128);
  }
  return Uint8Array.from(bytes);
}

/** GSSAPI's routine errors (RFC 2744 §3.9.1), shifted into place. */
export const GSS_S = {
  COMPLETE: 0,
  CONTINUE_NEEDED: 1,
  BAD_NAME: 2 << 16,
  NO_CRED: 7 << 16,
  DEFECTIVE_TOKEN: 9 << 16,
  CREDENTIALS_EXPIRED: 11 << 16,
  CONTEXT_EXPIRED: 12 << 16,
  FAILURE: 13 << 16,
} as const;

/**
 * Whether a major status is an error (a calling or routine error), as the
 * `GSS_ERROR` macro tells.
 *
 * @param major A major status.
 * @returns `true` for an error; `false` for complete or continue-needed.
 */
export function isGssError(major: number): boolean {
  return ((major >>> 16) & 0xffff) !== 0;
}

/**
 * What a GSSAPI failure means for the user, from the mechanism's text
 * (MIT and Heimdal wordings) and else the routine error.
 *
 * @param gss The status, decoded.
 * @returns The problem, for a {@link KerberosError}.
 *
 * @example
 * ```ts
 * kerberosProblem({ major: 0xd0000, minor: 1, majorText: "", minorText: "Ticket expired" });
 * // "expired"
 * ```
 */
export function kerberosProblem(gss: GssStatus): KerberosProblem {
  const text = gss.minorText;
  if (/clock skew/i.test(text)) return "clock-skew";
  if (/not found in Kerberos database|Server .*unknown/i.test(text)) {
    return "unknown-server";
  }
  if (/expired/i.test(text)) return "expired";
  if (
    /Cannot (contact|find) any KDC|Cannot find KDC|unable to reach/i.test(text)
  ) {
    return "kdc-unreachable";
  }
  if (
    /No Kerberos credentials|No credentials cache|Credential cache is empty|Matching credential not found|ccache .*not found/i
      .test(text)
  ) {
    return "no-ticket";
  }
  const routine = gss.major & 0x00ff0000;
  if (routine === GSS_S.NO_CRED) return "no-ticket";
  if (
    routine === GSS_S.CREDENTIALS_EXPIRED || routine === GSS_S.CONTEXT_EXPIRED
  ) {
    return "expired";
  }
  return "failed";
}
