/**
 * Two-way copy between a client and its destination, with TCP half-close:
 * when one side finishes sending, the other side's sending half is shut
 * down and the opposite direction goes on until it finishes too.
 *
 * Read/write loops on {@link Duplex} rather than `readable.pipeTo`: Deno's
 * `conn.readable` closes the whole socket at end of stream, which would cut
 * off the reply in a "send, shut down, read the reply" exchange.
 *
 * @module
 */

import { closeQuietly, type Duplex, writeAll } from "./duplex.ts";
import { type CoarseTimer, coarseTimers } from "./timers.ts";

/** The side of a tunnel. */
export type Side = "client" | "destination";

/** Live byte counts of a tunnel, updated as data moves. */
export interface RelayCounters {
  /** Bytes from the client to the destination. */
  bytesUp: number;
  /** Bytes from the destination to the client. */
  bytesDown: number;
  /** When bytes last moved either way (ms since the epoch). */
  lastActivity: number;
}

/** Creates counters for a tunnel that starts now. */
export function newCounters(): RelayCounters {
  return { bytesUp: 0, bytesDown: 0, lastActivity: Date.now() };
}

/** Options for {@link relay}. */
export interface RelayOptions {
  /** Updated while bytes move, for live status. */
  readonly counters?: RelayCounters;
  /** Closes both streams when aborted, e.g. at shutdown. */
  readonly signal?: AbortSignal;
  /** Closes the tunnel when no bytes move either way for this long. */
  readonly idleTimeoutMs?: number;
  /** After one side finished, closes when nothing moves for this long. */
  readonly lingerTimeoutMs?: number;
}

/** How a relay ended. */
export interface RelayResult {
  /** Bytes from the client to the destination. */
  readonly bytesUp: number;
  /** Bytes from the destination to the client. */
  readonly bytesDown: number;
  /** The side that finished sending (or failed) first. */
  readonly firstClosed: Side;
  /** The first error, when the relay did not end with both sides finishing. */
  readonly error?: Error;
  /** Whether the relay was ended through its abort signal. */
  readonly aborted: boolean;
  /** Set when a time limit ended the relay. */
  readonly timedOut?: "idle" | "linger";
  /** How long nothing had moved when the relay ended. */
  readonly idleMs: number;
}

/** Read buffer of an idle or slow direction. */
export const SMALL_BUFFER_SIZE = 1024;
/** Read buffer of a direction that fills its buffer on every read. */
export const LARGE_BUFFER_SIZE = 256 * 1024;

// Large buffers are reused rather than left to the garbage collector: a
// stream of 256 KiB allocations and frees fragments the C allocator, which
// then keeps the memory after the load has gone. When no direction is
// streaming any more, the pool is emptied so the memory can go back.
const LARGE_POOL_LIMIT = 64;
const largePool: Uint8Array[] = [];
let largeInUse = 0;

function takeLargeBuffer(): Uint8Array {
  largeInUse++;
  return largePool.pop() ?? new Uint8Array(LARGE_BUFFER_SIZE);
}

function giveLargeBuffer(buffer: Uint8Array): void {
  largeInUse--;
  if (largeInUse === 0) largePool.length = 0;
  else if (largePool.length < LARGE_POOL_LIMIT) largePool.push(buffer);
}

/**
 * Copies bytes both ways until both directions have ended, then closes both
 * streams. An error on either side closes both at once.
 *
 * @param client The accepted connection.
 * @param destination The connection to the destination (maybe through a proxy).
 * @param options Live counters and an abort signal.
 * @returns Byte counts, which side ended first, and the error if any.
 */
export async function relay(
  client: Duplex,
  destination: Duplex,
  options: RelayOptions = {},
): Promise<RelayResult> {
  const counters = options.counters ?? newCounters();
  let firstClosed: Side | undefined;
  let firstError: Error | undefined;
  let closed = false;
  let timedOut: "idle" | "linger" | undefined;
  let timer: CoarseTimer | undefined;
  const closeBoth = () => {
    closed = true;
    timer?.cancel();
    closeQuietly(client);
    closeQuietly(destination);
  };
  const onAbort = () => closeBoth();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  if (options.signal?.aborted) closeBoth();

  // One coarse timer per tunnel, re-armed lazily from the last activity, so
  // the hot path only stores a timestamp.
  const limit = () =>
    firstClosed === undefined ? options.idleTimeoutMs : Math.min(
      options.lingerTimeoutMs ?? Infinity,
      options.idleTimeoutMs ?? Infinity,
    );
  const arm = () => {
    timer?.cancel();
    const ms = limit();
    if (ms === undefined || ms === Infinity || closed) return;
    const idle = Date.now() - counters.lastActivity;
    if (idle < ms) {
      timer = coarseTimers.after(ms - idle, arm);
      return;
    }
    timedOut = firstClosed !== undefined && ms === options.lingerTimeoutMs
      ? "linger"
      : "idle";
    closeBoth();
  };
  arm();

  const pump = async (
    from: Duplex,
    to: Duplex,
    [fromSide, toSide]: [Side, Side],
    count: (n: number) => void,
  ) => {
    // A pending read holds its buffer, so an idle tunnel reads into a small
    // one; a read that fills it switches to a large one from a shared pool
    // until the stream slows down again, when the large one goes back.
    const small: Uint8Array = new Uint8Array(SMALL_BUFFER_SIZE);
    let large: Uint8Array | undefined;
    let buffer: Uint8Array = small;
    // The side to blame if the next call fails.
    let failing = fromSide;
    try {
      while (true) {
        failing = fromSide;
        const n = await from.read(buffer);
        if (n === null) break;
        failing = toSide;
        await writeAll(to, buffer.subarray(0, n));
        count(n);
        counters.lastActivity = Date.now();
        if (n === buffer.length) {
          buffer = large ??= takeLargeBuffer();
        } else if (n < SMALL_BUFFER_SIZE && large) {
          giveLargeBuffer(large);
          large = undefined;
          buffer = small;
        }
      }
      if (firstClosed === undefined) {
        firstClosed = fromSide;
        arm();
      }
      failing = toSide;
      await to.closeWrite();
    } catch (error) {
      // An error raised by our own closeBoth() is not news.
      if (closed) return;
      firstClosed ??= failing;
      firstError ??= error instanceof Error ? error : new Error(String(error));
      closeBoth();
    } finally {
      // No read or write is using it any more.
      if (large) giveLargeBuffer(large);
    }
  };

  try {
    await Promise.all([
      pump(client, destination, ["client", "destination"], (n) => {
        counters.bytesUp += n;
      }),
      pump(destination, client, ["destination", "client"], (n) => {
        counters.bytesDown += n;
      }),
    ]);
  } finally {
    timer?.cancel();
    options.signal?.removeEventListener("abort", onAbort);
    if (!closed) closeBoth();
  }
  return {
    bytesUp: counters.bytesUp,
    bytesDown: counters.bytesDown,
    firstClosed: firstClosed ?? "client",
    error: firstError,
    aborted: options.signal?.aborted ?? false,
    timedOut,
    idleMs: Date.now() - counters.lastActivity,
  };
}
