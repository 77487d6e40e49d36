/**
 * The seam between the `run` command and whatever runs the tunnels: one
 * supervisor on this thread, or a pool of workers each running one.
 *
 * @module
 */

import type { TunnelEntry } from "./config/entry.ts";
import type { Metrics } from "./observe/metrics.ts";
import type { StatusSource } from "./observe/status_server.ts";

/** Runs a config's tunnels; `run` drives it the same way on any thread layout. */
export interface TunnelHost {
  /** Counters kept by this host itself (reloads, and tunnels on this thread). */
  readonly metrics: Metrics;
  /** Resolves with a message when the host can no longer run; the run should then end. */
  readonly failed: Promise<string>;
  /**
   * Makes `entries` the running set.
   *
   * @param entries The config's entries.
   */
  apply(entries: readonly TunnelEntry[]): Promise<unknown>;
  /** What /status and /metrics read. */
  status(): StatusSource | Promise<StatusSource>;
  /**
   * Stops accepting, lets live tunnels finish for up to `graceMs`, then
   * closes them.
   *
   * @param graceMs How long live tunnels may go on.
   */
  shutdown(graceMs: number): Promise<void>;
}
