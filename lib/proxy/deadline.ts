/**
 * The time limit and cancellation shared by every proxy handshake.
 *
 * @module
 */

import { closeQuietly, type Duplex } from "../net/duplex.ts";
import { TimeoutError } from "../errors.ts";
import { coarseTimers } from "../time/timers.ts";

/** Limits of one handshake. */
export interface DeadlineOptions {
  /** Limit for the whole handshake. */
  readonly timeoutMs: number;
  /** Gives up when aborted. */
  readonly signal?: AbortSignal;
}

/**
 * Runs a handshake on a stream under a time limit. When the limit passes or
 * `signal` aborts, the stream is closed, which ends any pending read; on
 * any failure the stream is closed.
 *
 * @param current The stream in use now (a handshake may reconnect).
 * @param what Names the handshake in a timeout message.
 * @param options The limit and the abort signal.
 * @param body The handshake.
 * @returns What the handshake returns.
 * @throws {TimeoutError} when the limit passed; otherwise what `body` threw.
 */
export async function withDeadline<T>(
  current: () => Duplex,
  what: string,
  options: DeadlineOptions,
  body: () => Promise<T>,
): Promise<T> {
  let timedOut = false;
  const timer = coarseTimers.after(options.timeoutMs, () => {
    timedOut = true;
    closeQuietly(current());
  });
  const onAbort = () => closeQuietly(current());
  options.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    options.signal?.throwIfAborted();
    return await body();
  } catch (error) {
    closeQuietly(current());
    if (timedOut) throw new TimeoutError(what, options.timeoutMs);
    throw error;
  } finally {
    timer.cancel();
    options.signal?.removeEventListener("abort", onAbort);
  }
}
