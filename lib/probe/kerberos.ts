/**
 * The Kerberos side of a proxy that offers Negotiate, as `probe` shows it:
 * the ticket cache, its client principal and how long the ticket stays
 * valid, the service principal asked for, and on failure GSSAPI's major
 * and minor status as text.
 *
 * @module
 */

import { formatGssStatus, KerberosError } from "../errors.ts";
import { systemKerberos } from "../proxy/auth/gssapi.ts";
import {
  type KerberosClient,
  servicePrincipal,
} from "../proxy/auth/negotiate.ts";

/** What {@link inspectKerberos} found. */
export interface KerberosReport {
  /** The service principal asked for, e.g. `HTTP@proxy.corp`. */
  readonly spn: string;
  /** Whether a token for it could be made. */
  readonly ok: boolean;
  /** Cache, principal, lifetime, SPN, and what failed. */
  readonly detail: string;
}

/**
 * Reads the ticket cache and makes (then releases) a Negotiate token for
 * the proxy, as a tunnel would.
 *
 * @param proxyHost The proxy's host as written.
 * @param kerberos The system's Kerberos. @default GSSAPI through FFI
 * @returns The report.
 *
 * @example
 * ```ts
 * inspectKerberos("proxy.corp").detail;
 * // "ticket cache FILE:/tmp/krb5cc_1000, client jane@CORP (valid 9h 58m), SPN HTTP@proxy.corp: token made"
 * ```
 */
export function inspectKerberos(
  proxyHost: string,
  kerberos: KerberosClient = systemKerberos,
): KerberosReport {
  const spn = servicePrincipal(proxyHost);
  const credentials = kerberos.credentials();
  const cache = `ticket cache ${credentials.cache ?? "(the default)"}`;
  const client = credentials.principal
    ? `, client ${credentials.principal}${
      credentials.lifetimeSeconds === undefined
        ? ""
        : ` (valid ${formatLifetime(credentials.lifetimeSeconds)})`
    }`
    : "";
  const head = `${cache}${client}, SPN ${spn}`;
  // Asked even when the cache has no ticket: the error then names the SPN.
  try {
    using context = kerberos.start(spn);
    context.step();
    return { spn, ok: true, detail: `${head}: token made` };
  } catch (error) {
    if (!(error instanceof KerberosError)) throw error;
    const status = error.gss ? `; ${formatGssStatus(error.gss)}` : "";
    return { spn, ok: false, detail: `${head}: ${error.message}${status}` };
  }
}

/** `9h 58m`, `4m 10s`, `12s`. */
function formatLifetime(seconds: number): string {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  if (h > 0) return `${h}h ${m}m`;
  return m > 0 ? `${m}m ${s}s` : `${s}s`;
}
