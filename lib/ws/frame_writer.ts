/**
 * WebSocket frames written to a connection one write at a time: a frame
 * sent while a write is in flight is encoded behind the others waiting, in
 * a second buffer, and they all go as the next write. A session's DATA
 * released by several ACKs, and the ACKs themselves, thus cost one TLS
 * write instead of one each. The two buffers are reused while frames keep
 * coming, grown when a write needs more, and let go once the writer is
 * idle, so an idle connection (one per v1 tunnel) keeps none of them.
 *
 * ```
 * send(frame) ─▶ encode into the filling buffer ─┐ (a write in flight)
 *                                                └─▶ swap ─▶ writeAll ─▶ conn
 * ```
 *
 * @module
 */

import { type Duplex, writeAll } from "../net/duplex.ts";
import { encodeFrameInto, type EncodeOptions, frameBytes } from "./frame.ts";

// The buffers' first size, enough for control frames and small messages
// (a keystroke, an ACK); they grow by doubling to what a burst needs.
const FIRST_BUFFER_BYTES = 256;
// An idle writer's filling buffer: none.
const NO_BUFFER = new Uint8Array(0);

/** Writes frames to a connection, those sent meanwhile joined. */
export class FrameWriter {
  readonly #conn: Duplex;
  readonly #onError: (error: unknown) => void;
  #filling: Uint8Array = NO_BUFFER;
  #filled = 0;
  #spare: Uint8Array | undefined;
  // Settles when the filling buffer has been written.
  #batch: Promise<void> | undefined;
  #settle: ((error?: unknown) => void) | undefined;
  #writing = false;
  #failed: Promise<void> | undefined;
  #backlog = 0;
  #written: Promise<void> = Promise.resolve();

  /**
   * @param conn The connection the frames go to.
   * @param onError Told once when a write fails; every frame then fails.
   */
  constructor(conn: Duplex, onError: (error: unknown) => void = () => {}) {
    this.#conn = conn;
    this.#onError = onError;
  }

  /** Bytes of frames sent and not yet written. */
  get backlog(): number {
    return this.#backlog;
  }

  /** Settles when every frame sent so far is written (or writing failed). */
  get idle(): Promise<void> {
    return this.#written;
  }

  /**
   * Encodes a frame (the payload is copied before this returns) and
   * writes it, with any others sent meanwhile, once the write in flight
   * is done.
   *
   * @param opcode The frame's opcode.
   * @param parts The payload's pieces, in order.
   * @param options The masking key (a client's), and `fin`.
   * @returns Settles when the write that carried the frame is done;
   *   rejects with the connection's error (also for every later frame).
   */
  send(
    opcode: number,
    parts: readonly Uint8Array[],
    options?: EncodeOptions,
  ): Promise<void> {
    let length = 0;
    for (const part of parts) length += part.length;
    return this.#append(
      frameBytes(length, options?.mask !== undefined),
      (out) => encodeFrameInto(out, opcode, parts, options),
    );
  }

  /**
   * Writes bytes that are not a frame (the HTTP head before the frames),
   * in turn with the frames.
   *
   * @param bytes The bytes (copied before this returns).
   * @returns As {@link send}.
   */
  sendBytes(bytes: Uint8Array): Promise<void> {
    return this.#append(bytes.length, (out) => out.set(bytes));
  }

  #append(size: number, fill: (out: Uint8Array) => void): Promise<void> {
    if (this.#failed !== undefined) return this.#failed;
    if (this.#filled + size > this.#filling.length) {
      const grown = new Uint8Array(
        Math.max(
          2 * this.#filling.length,
          this.#filled + size,
          FIRST_BUFFER_BYTES,
        ),
      );
      grown.set(this.#filling.subarray(0, this.#filled));
      this.#filling = grown;
    }
    fill(this.#filling.subarray(this.#filled, this.#filled + size));
    this.#filled += size;
    this.#backlog += size;
    let batch = this.#batch;
    if (batch === undefined) {
      batch = this.#batch = new Promise<void>((resolve, reject) => {
        this.#settle = (error) =>
          error === undefined ? resolve() : reject(error);
      });
      // The failure is told to onError; a sender may ignore it.
      batch.catch(() => {});
    }
    if (!this.#writing) this.#written = this.#drain();
    return batch;
  }

  async #drain(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#filled > 0) {
        const buffer = this.#filling;
        const size = this.#filled;
        const settle = this.#settle!;
        this.#filling = this.#spare ?? NO_BUFFER;
        this.#spare = undefined;
        this.#filled = 0;
        this.#batch = this.#settle = undefined;
        try {
          await writeAll(this.#conn, buffer.subarray(0, size));
        } catch (error) {
          this.#failed = Promise.reject(error);
          this.#failed.catch(() => {});
          settle(error);
          this.#failBatch(error);
          this.#onError(error);
          return;
        }
        this.#backlog -= size;
        this.#spare = buffer;
        settle();
      }
      // Idle: no buffer is kept for the connection's life.
      this.#spare = undefined;
      this.#filling = NO_BUFFER;
    } finally {
      this.#writing = false;
    }
  }

  // Frames sent while the failed write was in flight fail with it.
  #failBatch(error: unknown): void {
    this.#settle?.(error);
    this.#batch = this.#settle = undefined;
    this.#filled = this.#backlog = 0;
  }
}
