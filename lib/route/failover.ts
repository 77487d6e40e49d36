/**
 * Failover: picks one proxy per hop, best first by the health backoff, and
 * walks the chain again with the next alternative of the hop to blame when
 * a proxy fails in a way another one may not.
 *
 * @module
 */

import { routeFailure } from "../errors.ts";
import type { HostPort } from "../net/address.ts";
import type { DialOptions } from "../net/dialer.ts";
import type { Duplex } from "../net/duplex.ts";
import { HopFailure, openChain } from "./chain.ts";
import type { ProxyHealth } from "./health.ts";
import { describeProxy, type Hop } from "./types.ts";

/** What failover keeps across tunnels. */
export interface FailoverContext {
  /** Failure memory of proxies. */
  readonly health: ProxyHealth;
  /** Reports a failover, for the tunnel's log. */
  readonly onFailover?: (message: string) => void;
}

/**
 * Opens a stream to `destination` through `hops`, failing over hop by hop
 * to the next-best alternative.
 *
 * @param hops The chain; each hop's alternatives in the order written.
 * @param destination Where the stream leads.
 * @param options Time limits, keepalive and trusted CAs.
 * @param context Proxy failure memory, and who hears of failovers.
 * @param signal Gives up when aborted.
 * @returns The stream and the proxies it went through.
 * @throws the last failure, when no alternative is left or the failure is
 *   the request's rather than a proxy's.
 */
export async function dialWithFailover(
  hops: readonly Hop[],
  destination: HostPort,
  options: DialOptions,
  context: FailoverContext,
  signal?: AbortSignal,
): Promise<{ stream: Duplex; path: string }> {
  // Alternatives left to try, per hop, best first.
  const candidates = hops.map((hop) => context.health.order(hop));
  while (true) {
    const chosen = candidates.map((hop) => hop[0]);
    try {
      const stream = await openChain(chosen, destination, options, { signal });
      for (const proxy of chosen) context.health.succeeded(proxy);
      return { stream, path: `via ${chosen.map(describeProxy).join(" -> ")}` };
    } catch (error) {
      if (!(error instanceof HopFailure)) throw error;
      const { hop, proxy, failure } = error;
      if (signal?.aborted || !routeFailure(failure)?.proxyFault) throw failure;
      const backoff = context.health.failed(proxy);
      candidates[hop].shift();
      const next = candidates[hop][0];
      if (next === undefined) throw failure;
      context.onFailover?.(
        `${describeProxy(proxy)} failed (${error.message}); trying ${
          describeProxy(next)
        }, and skipping the failed one for ${Math.round(backoff / 1000)} s`,
      );
    }
  }
}
