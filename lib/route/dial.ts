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
import type { SessionPool } from "./session_pool.ts";
import type { Hop, Route } from "./types.ts";

/** What dialing shares across tunnels. */
export interface DialContext extends FailoverContext {
  /** The proxy environment read at start, for `env` routes. */
  readonly environment: ProxyEnvironment;
  /**
   * The sessions to `serve` far ends: a chain ending at a ws:// or wss://
   * hop opens its tunnel as a stream of one (unless `mux` and `resume` are
   * both off). @default none: every such tunnel is its own v1 WebSocket
   */
  readonly sessions?: SessionPool;
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
    if (context.sessions && usesSession(resolved.hops, options)) {
      const hops = resolved.hops;
      return context.sessions.open(
        hops,
        destination,
        options,
        context,
        abort.signal,
      ).then((pooled) =>
        pooled ??
          dialWithFailover(hops, destination, options, context, abort.signal)
      );
    }
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

/**
 * Whether a chain's tunnels go over a session: its last hop, and only
 * that one, is this tool's server (ws:// or wss://), and `mux` or `resume`
 * is on. A server in the middle of a chain is asked with v1 upgrades.
 *
 * @param hops The chain.
 * @param options `mux` and `resume`.
 * @returns Whether {@link SessionPool} opens its tunnels.
 */
export function usesSession(
  hops: readonly Hop[],
  options: Pick<DialOptions, "mux" | "resume">,
): boolean {
  if (options.mux === false && options.resume === false) return false;
  const server = (hop: Hop) =>
    hop.some((proxy) => proxy.scheme === "ws" || proxy.scheme === "wss");
  const last = hops[hops.length - 1];
  return last !== undefined &&
    last.every((proxy) => proxy.scheme === "ws" || proxy.scheme === "wss") &&
    !hops.slice(0, -1).some(server);
}
