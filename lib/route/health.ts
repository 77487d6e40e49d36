/**
 * Which proxies failed lately. A proxy that fails is skipped for a backoff
 * period that doubles with each failure (capped), then tried again; one
 * success forgets its failures. What it remembers is shown by /status.
 *
 * @module
 */

import { errorMessage, type FailureReason, routeFailure } from "../errors.ts";
import type { Proxy } from "./types.ts";

/** Default backoff after a proxy's first failure. */
export const DEFAULT_FAILOVER_BACKOFF_MS = 5_000;
const MAX_BACKOFF_MS = 5 * 60_000;
/** The longest error message kept per proxy, for /status. */
const MAX_ERROR_CHARS = 300;

interface Failure {
  count: number;
  until: number;
  reason: FailureReason;
  error: string;
  /** The config generation the last failure happened under. */
  generation: number;
}

/** A proxy's health as /status shows it. */
export interface ProxyHealthView {
  /**
   * `ok` without a failure since its last success, `skipped` while in
   * backoff, `retrying` when the backoff is over and the next tunnel tries
   * it again.
   */
  readonly state: "ok" | "skipped" | "retrying";
  /** Failures in a row. */
  readonly failures: number;
  /** When the backoff ends (ISO 8601), while skipped. */
  readonly skippedUntil?: string;
  /** Why it last failed. */
  readonly reason?: FailureReason;
  /** The last failure's message. */
  readonly error?: string;
}

/** Failure memory for proxies, shared by all entries. */
export class ProxyHealth {
  #failures = new Map<string, Failure>();
  #backoffMs: number;
  #now: () => number;
  #generation = 0;

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
   * @param failure What it failed with, for /status.
   * @returns How long it will be skipped.
   */
  failed(proxy: Proxy, failure?: unknown): number {
    const last = this.#failures.get(key(proxy));
    // A failure under an earlier config does not lengthen the first backoff
    // under this one: the reload may have been the fix.
    const earlier = last?.generation === this.#generation ? last.count : 0;
    const count = earlier + 1;
    const backoff = Math.min(
      this.#backoffMs * 2 ** (count - 1),
      MAX_BACKOFF_MS,
    );
    this.#failures.set(key(proxy), {
      count,
      until: this.#now() + backoff,
      reason: routeFailure(failure)?.reason ?? "other",
      error: failure === undefined
        ? ""
        : errorMessage(failure).slice(0, MAX_ERROR_CHARS),
      generation: this.#generation,
    });
    return backoff;
  }

  /**
   * Records a success, forgetting earlier failures.
   *
   * @returns How many failures in a row it had: more than 0 when the proxy
   *   has recovered.
   */
  succeeded(proxy: Proxy): number {
    const count = this.#failures.get(key(proxy))?.count ?? 0;
    this.#failures.delete(key(proxy));
    return count;
  }

  /**
   * Starts a new config generation: proxies that are resting stay skipped
   * until their backoff ends, but their next failure starts a fresh
   * backoff.
   */
  newConfig(): void {
    this.#generation++;
  }

  /**
   * A proxy's health, for /status.
   *
   * @param proxy The proxy.
   * @returns Its state, failures in a row and the last failure.
   */
  view(proxy: Proxy): ProxyHealthView {
    const failure = this.#failures.get(key(proxy));
    if (failure === undefined) return { state: "ok", failures: 0 };
    const skipped = failure.until > this.#now();
    return {
      state: skipped ? "skipped" : "retrying",
      failures: failure.count,
      ...(skipped
        ? { skippedUntil: new Date(failure.until).toISOString() }
        : {}),
      reason: failure.reason,
      error: failure.error,
    };
  }
}

function key(proxy: Proxy): string {
  return `${proxy.scheme}://${proxy.host}:${proxy.port}`;
}
