/**
 * Opens the connection a tunnel needs, by its route: straight to the
 * destination, through the proxy the environment names, or through a chain
 * of proxies with failover.
 *
 * @module
 */

import type { HostPort } from "../net/address.ts";
import type { DialOptions } from "../net/dialer.ts";
import type { Duplex } from "../net/duplex.ts";
import { dialTcp } from "../net/tcp.ts";
import { type ProxyEnvironment, routeFromEnvironment } from "./env.ts";
import { dialWithFailover, type FailoverContext } from "./failover.ts";
import type { Route } from "./types.ts";

/** What dialing shares across tunnels. */
export interface DialContext extends FailoverContext {
  /** The proxy environment read at start, for `env` routes. */
  readonly environment: ProxyEnvironment;
}

/** An open path to the destination. */
export interface DialResult {
  /** The stream whose bytes are the destination's. */
  readonly stream: Duplex;
  /** The proxies used, e.g. `via http://a:3128 -> socks5://b:1080`, or `direct`. */
  readonly path: string;
}

/**
 * Opens a stream to `destination` along `route`.
 *
 * @param route Direct, `env`, or a chain of proxies.
 * @param destination Where the tunnel leads.
 * @param options Time limits, keepalive and trusted CAs.
 * @param context Proxy failure memory and the proxy environment.
 * @param abort Gives up when aborted. A direct connect's time limit aborts
 *   it too, so it is the caller's to drop once dialing has ended.
 * @returns The stream and the path it took.
 * @throws {DialError}, {TimeoutError}, or the proxies' refusals.
 */
export function dialRoute(
  route: Route,
  destination: HostPort,
  options: DialOptions,
  context: DialContext,
  abort: AbortController = new AbortController(),
): Promise<DialResult> {
  const resolved = route.kind === "env"
    ? routeFromEnvironment(context.environment, destination)
    : route;
  if (resolved.kind === "chain") {
    return dialWithFailover(
      resolved.hops,
      destination,
      options,
      context,
      abort.signal,
    );
  }
  const path = route.kind === "env"
    ? "direct (NO_PROXY or no proxy set)"
    : "direct";
  // Direct routes skip the chain walk: its hooks and per-hop controllers
  // are a cost on every connection and buy nothing without a proxy.
  return dialTcp(destination, options, abort).then((stream) => ({
    stream,
    path,
  }));
}
