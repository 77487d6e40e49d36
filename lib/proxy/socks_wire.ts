/**
 * The SOCKS5 wire format (RFC 1928, with RFC 1929's username/password
 * subnegotiation) shared by our client (`socks5.ts`) and our local server
 * (`lib/local/socks_server.ts`): version, method, command, address
 * type and reply codes, and the address field. Pure.
 *
 * @module
 */

import { ipBytes, isIPv4, isIPv6 } from "../net/address.ts";
import { concat } from "../net/bytes.ts";

/** The version byte that starts every SOCKS5 message. */
export const SOCKS5_VERSION = 5;

/** The version byte of the username/password subnegotiation (RFC 1929). */
export const USER_PASS_VERSION = 1;

/** Authentication methods (RFC 1928 §3). */
export const SOCKS_METHOD = {
  noAuth: 0x00,
  userPass: 0x02,
  noAcceptable: 0xff,
} as const;

/** Request commands (RFC 1928 §4). */
export const SOCKS_COMMAND = { connect: 1, bind: 2, udpAssociate: 3 } as const;

/** Address types (RFC 1928 §5). */
export const SOCKS_ADDRESS_TYPE = { ipv4: 1, domain: 3, ipv6: 4 } as const;

/** Reply codes (RFC 1928 §6); their meanings are {@link SOCKS_REPLIES}. */
export const SOCKS_REPLY = {
  succeeded: 0,
  generalFailure: 1,
  notAllowed: 2,
  networkUnreachable: 3,
  hostUnreachable: 4,
  connectionRefused: 5,
  ttlExpired: 6,
  commandNotSupported: 7,
  addressTypeNotSupported: 8,
} as const;

/** What each reply code means, for the log (RFC 1928 §6). */
export const SOCKS_REPLIES: Record<number, string> = {
  1: "general SOCKS server failure",
  2: "connection not allowed by the proxy's rules",
  3: "network unreachable",
  4: "host unreachable",
  5: "connection refused by the destination",
  6: "TTL expired",
  7: "command not supported",
  8: "address type not supported",
};

/** An address as SOCKS5 sends it. */
export type SocksAddress =
  | { readonly type: "ipv4"; readonly address: string }
  | { readonly type: "ipv6"; readonly address: string }
  | { readonly type: "domain"; readonly name: string };

/**
 * The SOCKS5 form of a host: an IP address as one, anything else as a
 * domain name.
 *
 * @param host A host name, IPv4 address, or IPv6 address without brackets.
 * @returns The address.
 */
export function socksAddressOf(host: string): SocksAddress {
  if (isIPv4(host)) return { type: "ipv4", address: host };
  if (isIPv6(host)) return { type: "ipv6", address: host };
  return { type: "domain", name: host };
}

/**
 * The end of a request or reply: ATYP, the address, and the port.
 *
 * @param address IPv4, IPv6 or a domain name (at most 255 UTF-8 bytes).
 * @param port The port.
 * @returns The bytes.
 *
 * @example
 * ```ts
 * socksAddressBytes({ type: "ipv4", address: "10.1.2.3" }, 22);
 * // Uint8Array [1, 10, 1, 2, 3, 0, 22]
 * ```
 */
export function socksAddressBytes(
  address: SocksAddress,
  port: number,
): Uint8Array {
  let field: Uint8Array;
  if (address.type === "domain") {
    const name = new TextEncoder().encode(address.name);
    field = concat(Uint8Array.of(SOCKS_ADDRESS_TYPE.domain, name.length), name);
  } else {
    field = concat(
      Uint8Array.of(SOCKS_ADDRESS_TYPE[address.type]),
      ipBytes(address.address)!,
    );
  }
  return concat(field, Uint8Array.of(port >> 8, port & 0xff));
}
