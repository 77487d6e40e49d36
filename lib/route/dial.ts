/**
 * Opens the connection a tunnel needs, by its route: straight to the
 * destination, through the proxy the environment names, through a chain
 * of proxies with failover, or along what a PAC script answers.
 *
 * @module
 */

import { errorMessage, routeFailure } from "../errors.ts";
import type { HostPort } from "../net/address.ts";
import type { DialOptions } from "../net/dialer.ts";
import type { Duplex } from "../net/duplex.ts";
import { dialTcp, dialTcpLinked } from "../net/tcp.ts";
import { type ProxyEnvironment, routeFromEnvironment } from "./env.ts";
import { dialWithFailover, type FailoverContext } from "./failover.ts";
import { type PacEngines, pacLabel } from "./pac/engine.ts";
import { proxyFor } from "./pac/proxies.ts";
import { type PacQuery, tunnelQuery } from "./pac/url.ts";
import type { SessionPool } from "./session_pool.ts";
import type { Hop, PacRoute, Proxy, Route } from "./types.ts";

/** What dialing shares across tunnels. */
export interface DialContext extends FailoverContext {
  /** The proxy environment read at start, for `env` routes. */
  readonly environment: ProxyEnvironment;
  /** The PAC engines, for `pac=` routes; such routes fail without. */
  readonly pac?: PacEngines;
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
  /**
   * For a stream of a session that came before the far end answered its
   * OPEN: settles when it was accepted, rejects with the refusal. A caller
   * that must answer its client with the outcome waits for it.
   */
  readonly accepted?: Promise<void>;
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
  if (route.kind === "pac") {
    return dialPac(
      route,
      tunnelQuery(destination),
      destination,
      options,
      context,
      abort,
    );
  }
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
 * Opens a stream to `destination` along a PAC's answer: its alternatives
 * in order, each run of proxies one hop with failover among them, DIRECT
 * a direct connect. A proxy failure moves on to the next alternative; a
 * refusal of the request itself (403, a SOCKS rule) does not.
 *
 * @param route The PAC route.
 * @param query What the script is shown for this connection.
 * @param destination Where the stream leads.
 * @param options Time limits, keepalive and trusted CAs.
 * @param context Proxy failure memory and the PAC engines.
 * @param abort Gives up when aborted.
 * @returns The stream, and the path naming the PAC.
 * @throws {PacUnavailableError} when the script cannot answer (and
 *   `pac-fallback=error`); the last alternative's failure otherwise.
 */
export async function dialPac(
  route: PacRoute,
  query: PacQuery,
  destination: HostPort,
  options: DialOptions,
  context: DialContext,
  abort: AbortController = new AbortController(),
): Promise<DialResult> {
  if (context.pac === undefined) {
    throw new Error(
      `pac ${route.source}: this command does not run PAC scripts`,
    );
  }
  const decision = await context.pac.engineFor(route, options.caCerts).decide(
    query,
  );
  const from = pacLabel(decision, route);
  const { alternatives } = decision;
  let failure: unknown = new Error(
    `pac ${decision.scriptName} answered no alternative this tool can use`,
  );
  let index = 0;
  while (index < alternatives.length) {
    const alternative = alternatives[index];
    if (alternative.kind === "direct") {
      index++;
      try {
        const stream = await dialTcpLinked(destination, options, abort.signal);
        return { stream, path: `direct ${from}` };
      } catch (error) {
        if (abort.signal.aborted || index >= alternatives.length) throw error;
        failure = error;
        context.onFailover?.(
          `DIRECT failed (${
            errorMessage(error)
          }); trying the PAC's next alternative`,
        );
        continue;
      }
    }
    const hop: Proxy[] = [];
    while (alternatives[index]?.kind === "proxy") {
      try {
        hop.push(proxyFor(
          alternatives[index] as typeof alternative,
          route,
          decision.scriptName,
        ));
      } catch (error) {
        failure = error;
        context.onFailover?.(errorMessage(error));
      }
      index++;
    }
    if (hop.length === 0) continue;
    try {
      const { stream, path } = await dialWithFailover(
        [hop],
        destination,
        options,
        context,
        abort.signal,
      );
      return { stream, path: `${path} ${from}` };
    } catch (error) {
      if (
        abort.signal.aborted || !routeFailure(error)?.proxyFault ||
        index >= alternatives.length
      ) {
        throw error;
      }
      failure = error;
      context.onFailover?.(
        `the PAC's proxies failed (${
          errorMessage(error)
        }); trying its next alternative`,
      );
    }
  }
  throw failure;
}

/**
 * Whether a chain's tunnels go over a session: its last hop, and only
 * that one, is this tool's server (ws:// or wss://), and `mux` or `resume`
 * is on, or `transport=poll`. A server in the middle of a chain is asked
 * with v1 upgrades.
 *
 * @param hops The chain.
 * @param options `mux`, `resume` and `transport`.
 * @returns Whether {@link SessionPool} opens its tunnels.
 */
export function usesSession(
  hops: readonly Hop[],
  options: Pick<DialOptions, "mux" | "resume" | "transport">,
): boolean {
  // The poll transport carries sessions only.
  if (
    options.mux === false && options.resume === false &&
    options.transport !== "poll"
  ) return false;
  const server = (hop: Hop) =>
    hop.some((proxy) => proxy.scheme === "ws" || proxy.scheme === "wss");
  const last = hops[hops.length - 1];
  return last !== undefined &&
    last.every((proxy) => proxy.scheme === "ws" || proxy.scheme === "wss") &&
    !hops.slice(0, -1).some(server);
}
