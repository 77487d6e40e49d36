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
 * Tells whether `host` is an IPv4 address in dotted-quad form.
 *
 * @param host The text to check.
 * @returns `true` for four decimal numbers 0–255 separated by dots.
 */
export function isIPv4(host: string): boolean {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  return match !== null && match.slice(1).every((part) => Number(part) <= 255);
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
 * Tells whether `host` names this machine's loopback interface:
 * `localhost`, 127.0.0.0/8 or `::1`.
 *
 * @param host A host name or address, IPv6 without brackets.
 * @returns `true` for a loopback address.
 */
export function isLoopback(host: string): boolean {
  if (host.toLowerCase() === "localhost") return true;
  const bytes = ipBytes(host);
  if (bytes === undefined) return false;
  return bytes.length === 4
    ? bytes[0] === 127
    : bytes.every((byte, index) => byte === (index === 15 ? 1 : 0));
}

/**
 * Tells whether `host` is a link-local address: 169.254.0.0/16 or
 * fe80::/10, usable on one network segment only.
 *
 * @param host An IP address, IPv6 without brackets.
 * @returns `true` for a link-local address; `false` for anything else,
 *   host names included.
 */
export function isLinkLocal(host: string): boolean {
  const bytes = ipBytes(host);
  if (bytes === undefined) return false;
  return bytes.length === 4
    ? bytes[0] === 169 && bytes[1] === 254
    : bytes[0] === 0xfe && (bytes[1] & 0xc0) === 0x80;
}

/**
 * Tells whether the first `bits` bits of two addresses of the same family
 * are equal: whether `address` lies in the network `network/bits`.
 *
 * @param address The address to test, from {@link ipBytes}.
 * @param network The network's address, from {@link ipBytes}; its bits past
 *   the prefix do not matter.
 * @param bits The prefix length, 0 to the address's bit count.
 * @returns `false` when the lengths differ or `bits` is out of range.
 *
 * @example
 * ```ts
 * prefixMatches(ipBytes("198.95.1.1")!, ipBytes("198.95.3.3")!, 16); // true
 * ```
 */
export function prefixMatches(
  address: Uint8Array,
  network: Uint8Array,
  bits: number,
): boolean {
  if (address.length !== network.length) return false;
  if (!Number.isInteger(bits) || bits < 0 || bits > address.length * 8) {
    return false;
  }
  const whole = bits >> 3;
  for (let i = 0; i < whole; i++) {
    if (address[i] !== network[i]) return false;
  }
  const rest = bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (address[whole] & mask) === (network[whole] & mask);
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

/**
 * The bytes of an IP address in network order.
 *
 * @param address An IPv4 address, or an IPv6 address without brackets
 *   (any of its written forms: `::`, embedded IPv4).
 * @returns 4 or 16 bytes, or `undefined` when `address` is not an IP address.
 *
 * @example
 * ```ts
 * ipBytes("::ffff:10.0.0.1"); // 16 bytes ending 0xff 0xff 10 0 0 1
 * ```
 */
export function ipBytes(address: string): Uint8Array | undefined {
  if (isIPv4(address)) return Uint8Array.from(address.split(".").map(Number));
  if (!isIPv6(address)) return undefined;
  // URL normalises the address: embedded IPv4 becomes two hex groups.
  const normal = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  const [head, tail] = normal.split("::");
  const headGroups = head ? head.split(":") : [];
  const tailGroups = tail ? tail.split(":") : [];
  const groups = tail === undefined ? headGroups : [
    ...headGroups,
    ...Array(8 - headGroups.length - tailGroups.length).fill("0"),
    ...tailGroups,
  ];
  return Uint8Array.from(groups.flatMap((group) => {
    const value = parseInt(group, 16);
    return [value >> 8, value & 0xff];
  }));
}

/**
 * The text of an IP address given in network order: the inverse of
 * {@link ipBytes}.
 *
 * @param bytes 4 bytes (IPv4) or 16 bytes (IPv6).
 * @returns A dotted quad, or an IPv6 address in its shortest form (RFC 5952).
 * @throws {RangeError} for any other length.
 *
 * @example
 * ```ts
 * ipText(Uint8Array.of(192, 0, 2, 33)); // "192.0.2.33"
 * ipText(ipBytes("2001:0DB8:0:0:0:0:0:1")!); // "2001:db8::1"
 * ```
 */
export function ipText(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join(".");
  if (bytes.length !== 16) {
    throw new RangeError(
      `an IP address has 4 or 16 bytes, not ${bytes.length}`,
    );
  }
  const groups = Array.from(
    { length: 8 },
    (_, i) => ((bytes[2 * i] << 8) | bytes[2 * i + 1]).toString(16),
  );
  // URL serialises IPv6 in the RFC 5952 form: lower case, longest zero run as ::.
  return new URL(`http://[${groups.join(":")}]/`).hostname.slice(1, -1);
}

/**
 * Splits `host:port` or `[v6]:port` at the colon before the port, checking
 * neither part.
 *
 * @param text The address as written.
 * @returns The host as written (brackets kept, so callers can tell an IPv6
 *   literal and count columns) and the port's text, or `undefined` unless
 *   there is exactly one colon outside brackets.
 *
 * @example
 * ```ts
 * splitHostPort("[::1]:2222"); // { host: "[::1]", port: "2222" }
 * splitHostPort("2222"); // undefined
 * ```
 */
export function splitHostPort(
  text: string,
): { host: string; port: string } | undefined {
  const match = /^(\[[^\]]*\]|[^:]*):([^:]*)$/.exec(text);
  return match ? { host: match[1], port: match[2] } : undefined;
}
