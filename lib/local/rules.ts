/**
 * A local proxy's rules, applied to every request alike (CONNECT, plain
 * HTTP, SOCKS): which clients may use it, which destinations go direct,
 * and whether a client's credentials are the ones the entry asks for. Pure.
 *
 * @module
 */

import type { LocalProxyEntry } from "../config/entry.ts";
import { type HostPort, ipBytes, ipText, isLoopback } from "../net/address.ts";
import { fromBase64, sameBytes } from "../net/bytes.ts";
import { bypassesProxy } from "../route/env.ts";
import type { Route } from "../route/types.ts";

/** A client that the entry's `allow=` does not name. */
export class ClientRefusedError extends Error {
  /**
   * @param client The client's `host:port`.
   * @param listener The entry's source, e.g. `0.0.0.0:1080`.
   */
  constructor(client: string, listener: string) {
    super(
      `refused ${client}: not in allow= of ${listener} (only loopback and the addresses allow= names may use a local proxy)`,
    );
    this.name = "ClientRefusedError";
  }
}

/**
 * Tells whether a client may use the entry: loopback clients always, others
 * when `allow=` names their address or range.
 *
 * @param entry The local proxy entry.
 * @param host The client's address as accepted (IPv4-mapped IPv6 included).
 * @returns `true` when the client is allowed.
 */
export function clientAllowed(entry: LocalProxyEntry, host: string): boolean {
  const bytes = ipBytes(host);
  // A listener on `::` sees IPv4 clients as ::ffff:a.b.c.d.
  const address = bytes?.length === 16 &&
      bytes.subarray(0, 10).every((byte) => byte === 0) &&
      bytes[10] === 0xff && bytes[11] === 0xff
    ? ipText(bytes.subarray(12))
    : host;
  return isLoopback(address) ||
    bypassesProxy({ host: address, port: 0 }, entry.allow);
}

/**
 * The route for one destination: direct when `direct-for=` matches it,
 * otherwise the entry's route.
 *
 * @param entry The local proxy entry.
 * @param destination Where the client asked to go.
 * @returns The route to take.
 */
export function routeFor(
  entry: LocalProxyEntry,
  destination: HostPort,
): Route {
  return entry.directFor.length > 0 &&
      bypassesProxy(destination, entry.directFor)
    ? { kind: "direct" }
    : entry.route;
}

/**
 * Tells whether an HTTP `Proxy-Authorization` value carries the entry's
 * client credentials (Basic).
 *
 * @param entry The local proxy entry, with `client-auth=`.
 * @param authorization The client's header value, if any.
 * @returns `true` when the entry asks for none, or the client gave them.
 */
export function basicAuthorized(
  entry: LocalProxyEntry,
  authorization: string | undefined,
): boolean {
  const wanted = entry.clientCredentials;
  if (wanted === undefined) return true;
  const match = /^basic +([A-Za-z0-9+/=]+)$/i.exec(authorization?.trim() ?? "");
  if (!match) return false;
  let given: Uint8Array;
  try {
    given = fromBase64(match[1]);
  } catch {
    return false;
  }
  return sameBytes(
    given,
    new TextEncoder().encode(`${wanted.username}:${wanted.password}`),
  );
}
