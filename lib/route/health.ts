/**
 * Which proxies failed lately. A proxy that fails is skipped for a backoff
 * period that doubles with each failure (capped), then tried again; one
 * success forgets its failures.
 *
 * @module
 */

import type { Proxy } from "./types.ts";

/** Default backoff after a proxy's first failure. */
export const DEFAULT_FAILOVER_BACKOFF_MS = 5_000;
const MAX_BACKOFF_MS = 5 * 60_000;

interface Failure {
  count: number;
  until: number;
}

/** Failure memory for proxies, shared by all entries. */
export class ProxyHealth {
  #failures = new Map<string, Failure>();
  #backoffMs: number;
  #now: () => number;

  /**
   * @param backoffMs Backoff after a first failure; doubles up to 5 minutes.
   * @param now The clock, injectable for tests.
   */
  constructor(backoffMs = DEFAULT_FAILOVER_BACKOFF_MS, now = () => Date.now()) {
    this.#backoffMs = backoffMs;
    this.#now = now;
  }

  /**
   * Orders a hop's alternatives: those not in backoff first, in config
   * order; those in backoff after them, so a hop is never left empty.
   *
   * @param alternatives The hop's proxies in config order.
   * @returns The order to try them in.
   */
  order(alternatives: readonly Proxy[]): Proxy[] {
    const now = this.#now();
    const resting = (proxy: Proxy) =>
      (this.#failures.get(key(proxy))?.until ?? 0) > now;
    return [
      ...alternatives.filter((proxy) => !resting(proxy)),
      ...alternatives.filter(resting),
    ];
  }

  /**
   * Records a failure.
   *
   * @param proxy The proxy that failed.
   * @returns How long it will be skipped.
   */
  failed(proxy: Proxy): number {
    const count = (this.#failures.get(key(proxy))?.count ?? 0) + 1;
    const backoff = Math.min(
      this.#backoffMs * 2 ** (count - 1),
      MAX_BACKOFF_MS,
    );
    this.#failures.set(key(proxy), { count, until: this.#now() + backoff });
    return backoff;
  }

  /** Records a success, forgetting earlier failures. */
  succeeded(proxy: Proxy): void {
    this.#failures.delete(key(proxy));
  }
}

function key(proxy: Proxy): string {
  return `${proxy.scheme}://${proxy.host}:${proxy.port}`;
}
