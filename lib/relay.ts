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

import {
  closeQuietly,
  type Duplex,
  isPlainTcp,
  writeAll,
} from "./net/duplex.ts";
import { type CoarseTimer, coarseTimers } from "./time/timers.ts";

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
  /**
   * Receives, as the relay starts, a function that stops it from outside
   * (at shutdown, or a drain timeout) by closing both streams. A function
   * rather than an AbortSignal: a listener on a signal is most of what an
   * idle tunnel would hold beyond its sockets (README, Performance).
   */
  readonly onStart?: (stop: () => void) => void;
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
  /** Whether the relay was ended through the function given to `onStart`. */
  readonly aborted: boolean;
  /** Set when a time limit ended the relay. */
  readonly timedOut?: "idle" | "linger";
  /** How long nothing had moved when the relay ended. */
  readonly idleMs: number;
}

/** Read buffer of an idle or slow direction. */
export const SMALL_BUFFER_SIZE = 512;
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
 * @param options Live counters, time limits, and a way to stop it.
 * @returns Byte counts, which side ended first, and the error if any.
 */
export function relay(
  client: Duplex,
  destination: Duplex,
  options: RelayOptions = {},
): Promise<RelayResult> {
  return new Relay(client, destination, options).run();
}

// A class rather than closures: thousands of idle tunnels share its
// methods, and each holds only its fields.
class Relay {
  #client: Duplex;
  #destination: Duplex;
  #options: RelayOptions;
  #counters: RelayCounters;
  #firstClosed: Side | undefined;
  #firstError: Error | undefined;
  #closed = false;
  #stopped = false;
  #timedOut: "idle" | "linger" | undefined;
  #timer: CoarseTimer | undefined;
  // One coarse timer per tunnel, re-armed lazily from the last activity, so
  // the hot path only stores a timestamp.
  #arm = () => this.#rearm();

  constructor(client: Duplex, destination: Duplex, options: RelayOptions) {
    this.#client = client;
    this.#destination = destination;
    this.#options = options;
    this.#counters = options.counters ?? newCounters();
  }

  // Not an async function: its frame would stay alive as long as the tunnel.
  run(): Promise<RelayResult> {
    this.#options.onStart?.(() => this.#stop());
    this.#arm();
    return Promise.all([
      this.#pump(this.#client, this.#destination, "client", "destination"),
      this.#pump(this.#destination, this.#client, "destination", "client"),
    ]).then(() => this.#end());
  }

  #end(): RelayResult {
    this.#timer?.cancel();
    if (!this.#closed) this.#closeBoth();
    const counters = this.#counters;
    return {
      bytesUp: counters.bytesUp,
      bytesDown: counters.bytesDown,
      firstClosed: this.#firstClosed ?? "client",
      error: this.#firstError,
      aborted: this.#stopped,
      timedOut: this.#timedOut,
      idleMs: Date.now() - counters.lastActivity,
    };
  }

  #stop(): void {
    this.#stopped = true;
    if (!this.#closed) this.#closeBoth();
  }

  #closeBoth(): void {
    this.#closed = true;
    this.#timer?.cancel();
    closeQuietly(this.#client);
    closeQuietly(this.#destination);
  }

  // The time limit in force: idle, or after a half-close the shorter of
  // linger and idle.
  #limit(): number | undefined {
    const { idleTimeoutMs, lingerTimeoutMs } = this.#options;
    return this.#firstClosed === undefined
      ? idleTimeoutMs
      : Math.min(lingerTimeoutMs ?? Infinity, idleTimeoutMs ?? Infinity);
  }

  #rearm(): void {
    this.#timer?.cancel();
    const ms = this.#limit();
    if (ms === undefined || ms === Infinity || this.#closed) return;
    const idle = Date.now() - this.#counters.lastActivity;
    if (idle < ms) {
      this.#timer = coarseTimers.after(ms - idle, this.#arm);
      return;
    }
    this.#timedOut =
      this.#firstClosed !== undefined && ms === this.#options.lingerTimeoutMs
        ? "linger"
        : "idle";
    this.#closeBoth();
  }

  async #pump(
    from: Duplex,
    to: Duplex,
    fromSide: Side,
    toSide: Side,
  ): Promise<void> {
    const counters = this.#counters;
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
        if (fromSide === "client") counters.bytesUp += n;
        else counters.bytesDown += n;
        counters.lastActivity = Date.now();
        if (n === buffer.length) {
          buffer = large ??= takeLargeBuffer();
        } else if (n < SMALL_BUFFER_SIZE && large) {
          giveLargeBuffer(large);
          large = undefined;
          buffer = small;
        }
      }
      if (this.#firstClosed === undefined) {
        this.#firstClosed = fromSide;
        this.#rearm();
      }
      // The second side to finish: #end closes both, and closing a TCP
      // socket sends the FIN a shutdown would have sent, one call sooner
      // (TLS needs its close_notify, which only the shutdown sends).
      if (this.#firstClosed !== fromSide && isPlainTcp(to)) return;
      failing = toSide;
      await to.closeWrite();
    } catch (error) {
      // An error raised by our own #closeBoth() is not news.
      if (this.#closed) return;
      this.#firstClosed ??= failing;
      this.#firstError ??= error instanceof Error
        ? error
        : new Error(String(error));
      this.#closeBoth();
    } finally {
      // No read or write is using it any more.
      if (large) giveLargeBuffer(large);
    }
  }
}
