/**
 * Failover: picks one proxy per hop, best first by the health backoff, and
 * walks the chain again with the next alternative of the hop to blame when
 * a proxy fails in a way another one may not.
 *
 * @module
 */

import { type FailureReason, routeFailure } from "../errors.ts";
import type { HostPort } from "../net/address.ts";
import type { DialOptions } from "../net/dialer.ts";
import type { Duplex } from "../net/duplex.ts";
import { type ChainHook, HopFailure, openChain } from "./chain.ts";
import type { ProxyHealth } from "./health.ts";
import { describeProxy, type Hop, type Proxy } from "./types.ts";

/** What failover keeps across tunnels. */
export interface FailoverContext {
  /** Failure memory of proxies. */
  readonly health: ProxyHealth;
  /** Reports a failover, for the tunnel's log. */
  readonly onFailover?: (message: string) => void;
  /**
   * Hears of each failure that is the proxy's fault, and of the
   * alternative tried next (none when the hop has no other left).
   */
  readonly onProxyFailed?: (
    proxy: Proxy,
    reason: FailureReason,
    next: Proxy | undefined,
  ) => void;
  /** Hears of a proxy that failed before and now worked. */
  readonly onRecovered?: (proxy: Proxy, failures: number) => void;
  /** Told of every step of every chain walked, e.g. to explain a failure. */
  readonly hook?: ChainHook;
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
      const stream = await openChain(chosen, destination, options, {
        signal,
        hook: context.hook,
      });
      for (const proxy of chosen) {
        const failures = context.health.succeeded(proxy);
        if (failures > 0) context.onRecovered?.(proxy, failures);
      }
      return { stream, path: `via ${chosen.map(describeProxy).join(" -> ")}` };
    } catch (error) {
      if (!(error instanceof HopFailure)) throw error;
      const { hop, proxy, failure } = error;
      const classified = routeFailure(failure);
      if (signal?.aborted || !classified?.proxyFault) throw failure;
      const backoff = context.health.failed(proxy, failure);
      candidates[hop].shift();
      const next = candidates[hop][0];
      context.onProxyFailed?.(proxy, classified.reason, next);
      if (next === undefined) throw failure;
      context.onFailover?.(
        `${describeProxy(proxy)} failed (${error.message}); trying ${
          describeProxy(next)
        }, and skipping the failed one for ${Math.round(backoff / 1000)} s`,
      );
    }
  }
}
