/**
 * The connector seam: asking the proxy at the end of a stream for a
 * connection to the next address (HTTP CONNECT, SOCKS5). A new proxy
 * protocol is a new {@link Connector} in its own file, registered for its
 * scheme in `route/transport.ts`; the chain walk does not change.
 *
 * @module
 */

import type { HostPort } from "../net/address.ts";
import type { DialOptions } from "../net/dialer.ts";
import type { Duplex } from "../net/duplex.ts";
import type { Proxy } from "../route/types.ts";
import type { ResponseHead } from "./http_head.ts";

/** Watches a proxy exchange, e.g. for `probe`. */
export interface ConnectObserver {
  /** An HTTP response head arrived (a 407 challenge, or the final answer). */
  response(head: ResponseHead): void;
  /** Credentials of `scheme` are being sent. */
  authenticating(scheme: string): void;
}

/** What a connector is given besides the stream and the target. */
export interface ConnectRequest {
  /** The proxy at the end of the stream, with its credentials. */
  readonly proxy: Proxy;
  /** Limit for the whole exchange, authentication rounds included. */
  readonly timeoutMs: number;
  /** Gives up, closing the stream, when aborted. */
  readonly signal?: AbortSignal;
  /** Opens a new connection to the proxy, when it closed the last one. */
  readonly reconnect?: () => Promise<Duplex>;
  /** Told of the exchange. */
  readonly observer?: ConnectObserver;
  /**
   * The tunnel's settings, for a connector that needs more than the proxy
   * (ws:// and wss://: `token=`, `heartbeat=`). @default none
   */
  readonly settings?: DialOptions;
}

/** Asks a proxy for a connection onwards. */
export interface Connector {
  /**
   * Asks the proxy at the end of `stream` for a connection to `target`.
   * Takes ownership of `stream`: on failure, every connection it used is
   * closed.
   *
   * @param stream An open stream to the proxy.
   * @param target Where the proxy should connect.
   * @param request The proxy, limits and observers.
   * @returns A stream whose bytes are `target`'s.
   */
  connect(
    stream: Duplex,
    target: HostPort,
    request: ConnectRequest,
  ): Promise<Duplex>;
}

/**
 * The credentials in a proxy's URL, if it has a user name.
 *
 * @param proxy The proxy.
 * @returns User name and password (empty when only a user name is given).
 */
export function proxyCredentials(
  proxy: Proxy,
): { username: string; password: string } | undefined {
  return proxy.username === undefined
    ? undefined
    : { username: proxy.username, password: proxy.password ?? "" };
}
