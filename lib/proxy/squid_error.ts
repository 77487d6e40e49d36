/**
 * What squid's `X-Squid-Error` header says, in plain words. squid names
 * the failure behind an error page there (`ERR_CONNECT_FAIL 111`: its
 * connect to the destination got errno 111, connection refused), which
 * the status line alone (`503 Service Unavailable`) does not tell.
 * Pure: header value in, explanation out.
 *
 * @module
 */

/** A squid error code with its meaning. */
export interface SquidError {
  /** The header's value as squid sent it, made printable and bounded. */
  readonly raw: string;
  /** The error page's name, e.g. `ERR_CONNECT_FAIL`. */
  readonly code: string;
  /** What happened, e.g. `the proxy could not connect to the destination: connection refused`. */
  readonly meaning?: string;
  /** What to try. */
  readonly advice?: string;
}

/** Longest header value kept: squid's are a code and an errno. */
const MAX_RAW_CHARS = 80;

const CONNECT_ERRNO: Readonly<Record<number, [string, string]>> = {
  111: [
    "connection refused",
    "nothing listens on that port there, or the destination is down",
  ],
  110: [
    "connection timed out",
    "a firewall between the proxy and the destination may drop the traffic, or the destination is down",
  ],
  113: [
    "no route to host",
    "the proxy has no way to the destination's network: check the address",
  ],
};

const CODES: Readonly<Record<string, [string, string]>> = {
  ERR_DNS_FAIL: [
    "the proxy could not resolve the destination's name",
    "check its spelling, or whether the proxy's DNS knows it",
  ],
  ERR_ACCESS_DENIED: [
    "the proxy's access rules deny this request",
    "ask the proxy's administrators to allow this destination and port",
  ],
  ERR_CACHE_ACCESS_DENIED: [
    "the proxy wants you to authenticate before it allows this request",
    "add user:password to the proxy URL",
  ],
  ERR_CANNOT_FORWARD: [
    "the proxy could not forward the request",
    "it cannot reach the destination, or its own parent proxy",
  ],
};

/**
 * Reads an `X-Squid-Error` value.
 *
 * @param value e.g. `ERR_CONNECT_FAIL 111`.
 * @returns The code and, for the common ones, what it means and what to
 *   try; undefined for an empty value.
 * @example
 * ```ts
 * parseSquidError("ERR_CONNECT_FAIL 111")?.meaning;
 * // "the proxy could not connect to the destination: connection refused"
 * ```
 */
export function parseSquidError(value: string): SquidError | undefined {
  const raw = value.replace(/[^\x20-\x7e]/g, "?").trim().slice(
    0,
    MAX_RAW_CHARS,
  );
  const [code, errno] = raw.split(/\s+/);
  if (!code) return undefined;
  if (code === "ERR_CONNECT_FAIL") {
    const known = CONNECT_ERRNO[Number(errno)];
    return {
      raw,
      code,
      meaning: `the proxy could not connect to the destination: ${
        known?.[0] ?? `error ${errno ?? "unknown"}`
      }`,
      advice: known?.[1] ??
        "the destination may be down or unreachable from the proxy",
    };
  }
  const known = CODES[code];
  return known ? { raw, code, meaning: known[0], advice: known[1] } : {
    raw,
    code,
  };
}
