/**
 * The one buffered reader every protocol parser uses: exact-length reads,
 * line reads and skips over a {@link Duplex}, bounded in size, with the
 * bytes read ahead handed on. Once a handshake is done, the same object is
 * the tunnel's stream: its first reads return what the parser read past the
 * handshake (e.g. what a destination sent right after the proxy's `200`).
 *
 * @module
 */

import { concat } from "./bytes.ts";
import type { Duplex } from "./duplex.ts";

/** Options for {@link BufferedDuplex}. */
export interface BufferedDuplexOptions {
  /** Bytes already read from the stream, returned first. @default none */
  readonly initial?: Uint8Array;
  /**
   * Makes the error thrown when the stream ends in the middle of a
   * {@link BufferedDuplex.take}, {@link BufferedDuplex.line} or
   * {@link BufferedDuplex.skip}; the protocol names what was cut short.
   * @default an Error saying the stream ended early
   */
  readonly onEnd?: () => Error;
  /** How many bytes each read from the stream asks for. @default 16384 */
  readonly chunkBytes?: number;
}

// Shared by every drained buffer, so that a tunnel does not keep its
// handshake's read chunk alive through an empty view of it.
const EMPTY = new Uint8Array(0);
const decoder = new TextDecoder();

/** A {@link Duplex} with read-ahead, for parsing a handshake and then relaying. */
export class BufferedDuplex implements Duplex {
  #inner: Duplex;
  #buffer: Uint8Array;
  #onEnd: () => Error;
  #chunkBytes: number;
  /** Bytes handed out so far, by reads, takes, lines and skips. */
  consumed = 0;

  /**
   * @param inner The stream to read from.
   * @param options Bytes already read, and the error for an early end.
   */
  constructor(inner: Duplex, options: BufferedDuplexOptions = {}) {
    this.#inner = inner;
    this.#buffer = options.initial ?? EMPTY;
    this.#onEnd = options.onEnd ??
      (() => new Error("the stream ended in the middle of a message"));
    this.#chunkBytes = options.chunkBytes ?? 16 * 1024;
  }

  /** The bytes read ahead and not yet handed out. */
  get buffered(): Uint8Array {
    return this.#buffer;
  }

  /**
   * Reads once more from the stream into the buffer.
   *
   * @returns `false` at end of stream.
   */
  async fill(): Promise<boolean> {
    const chunk = new Uint8Array(this.#chunkBytes);
    const n = await this.#inner.read(chunk);
    if (n === null) return false;
    this.#buffer = this.#buffer.length === 0
      ? chunk.subarray(0, n)
      : concat(this.#buffer, chunk.subarray(0, n));
    return true;
  }

  async #fillOrThrow(): Promise<void> {
    if (!(await this.fill())) throw this.#onEnd();
  }

  /**
   * Reads exactly `n` bytes.
   *
   * @param n How many bytes; the caller bounds it.
   * @returns A copy of the bytes.
   * @throws the `onEnd` error when the stream ends first.
   */
  async take(n: number): Promise<Uint8Array> {
    while (this.#buffer.length < n) await this.#fillOrThrow();
    const out = this.#buffer.slice(0, n);
    this.#drop(n);
    return out;
  }

  /**
   * Reads one line ending in LF; a CR before the LF is dropped.
   *
   * @param maxBytes The longest line accepted.
   * @param tooLong Makes the error for a longer line.
   * @returns The line, without its end.
   * @throws `tooLong()` past `maxBytes`; the `onEnd` error when the stream ends first.
   */
  async line(maxBytes: number, tooLong: () => Error): Promise<string> {
    let end: number;
    let scanned = 0;
    while ((end = this.#buffer.indexOf(0x0a, scanned)) < 0) {
      if (this.#buffer.length > maxBytes) throw tooLong();
      scanned = this.#buffer.length;
      await this.#fillOrThrow();
    }
    if (end > maxBytes) throw tooLong();
    const line = decoder.decode(this.#buffer.subarray(0, end));
    this.#drop(end + 1);
    return line.endsWith("\r") ? line.slice(0, -1) : line;
  }

  /**
   * Reads past `n` bytes.
   *
   * @param n How many bytes; the caller bounds it.
   * @throws the `onEnd` error when the stream ends first.
   */
  async skip(n: number): Promise<void> {
    let left = n;
    while (left > 0) {
      if (this.#buffer.length === 0) await this.#fillOrThrow();
      const take = Math.min(left, this.#buffer.length);
      this.#drop(take);
      left -= take;
    }
  }

  /** Returns buffered bytes first, then reads from the underlying stream. */
  read(buffer: Uint8Array): Promise<number | null> {
    if (this.#buffer.length === 0) return this.#inner.read(buffer);
    const n = Math.min(buffer.length, this.#buffer.length);
    buffer.set(this.#buffer.subarray(0, n));
    this.#drop(n);
    return Promise.resolve(n);
  }

  #drop(n: number): void {
    this.#buffer = n === this.#buffer.length ? EMPTY : this.#buffer.subarray(n);
    this.consumed += n;
  }

  /**
   * The underlying stream, once no buffered bytes are left (e.g. to start
   * TLS on the socket itself).
   */
  unwrap(): Duplex | undefined {
    return this.#buffer.length === 0 ? this.#inner : undefined;
  }

  /** Writes to the underlying stream. */
  write(data: Uint8Array): Promise<number> {
    return this.#inner.write(data);
  }

  /** Shuts down the underlying stream's sending side. */
  closeWrite(): Promise<void> {
    return this.#inner.closeWrite();
  }

  /** Closes the underlying stream. */
  close(): void {
    this.#inner.close();
  }
}
