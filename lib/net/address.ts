/**
 * Host and port values as the config and the CONNECT request use them.
 * Pure functions, no I/O.
 *
 * @module
 */

/** A host name or IP address (IPv6 without brackets) and a TCP port. */
export interface HostPort {
  /** Host name, IPv4 address, or IPv6 address without brackets. */
  readonly host: string;
  /** TCP port, 1–65535 (0 only for a listener that asks for any port). */
  readonly port: number;
}

const LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

/**
 * Tells whether `host` is a DNS name or an IPv4 address that is safe to put
 * into a CONNECT request line: letters, digits, `-`, `_` and dots only, so no
 * space, CR, LF or control character can inject text.
 *
 * @param host The name to check.
 * @returns `true` for a well-formed name.
 */
export function isHostName(host: string): boolean {
  if (host.length === 0 || host.length > 253) return false;
  const labels = host.endsWith(".") ? host.slice(0, -1).split(".") : host
    .split(".");
  return labels.every((label) => LABEL.test(label));
}

/**
 * Tells whether `host` is an IPv6 address (without brackets).
 *
 * @param host The text to check.
 * @returns `true` for a valid IPv6 address.
 */
export function isIPv6(host: string): boolean {
  if (!/^[0-9A-Fa-f:.]+$/.test(host) || !host.includes(":")) return false;
  try {
    new URL(`http://[${host}]/`);
    return true;
  } catch {
    return false;
  }
}

/**
 * Formats `host:port`, with brackets around an IPv6 address.
 *
 * @param hostPort The address to format.
 * @returns e.g. `example.com:22` or `[::1]:22`.
 */
export function formatHostPort({ host, port }: HostPort): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Parses a decimal TCP port.
 *
 * @param text The port as written.
 * @returns The port, or `undefined` unless it is a whole number 1–65535.
 */
export function parsePort(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : undefined;
}
