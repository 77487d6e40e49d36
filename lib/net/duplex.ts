/**
 * The byte-stream interface the relay and the proxy handshake work on:
 * the part of `Deno.Conn` they use, so that a tunnel through a proxy and a
 * test double both fit.
 *
 * @module
 */

/** A two-way byte stream that can shut down its sending side. */
export interface Duplex {
  /** Reads into `buffer`; resolves to the byte count, or `null` at end of stream. */
  read(buffer: Uint8Array): Promise<number | null>;
  /** Writes some of `data`; resolves to how many bytes were written. */
  write(data: Uint8Array): Promise<number>;
  /** Sends end of stream (TCP FIN) while reading goes on. */
  closeWrite(): Promise<void>;
  /** Closes both directions and frees the resource. */
  close(): void;
}

/**
 * A {@link Duplex} whose first reads return bytes already taken from the
 * underlying stream, e.g. what a proxy sent right after its `200`.
 */
export class PrefixedDuplex implements Duplex {
  #inner: Duplex;
  #prefix: Uint8Array;

  /**
   * @param inner The underlying stream.
   * @param prefix Bytes to return before reading from `inner`.
   */
  constructor(inner: Duplex, prefix: Uint8Array) {
    this.#inner = inner;
    this.#prefix = prefix;
  }

  /** Returns buffered bytes first, then reads from the underlying stream. */
  read(buffer: Uint8Array): Promise<number | null> {
    if (this.#prefix.length === 0) return this.#inner.read(buffer);
    const n = Math.min(buffer.length, this.#prefix.length);
    buffer.set(this.#prefix.subarray(0, n));
    this.#prefix = this.#prefix.subarray(n);
    return Promise.resolve(n);
  }

  /** The underlying stream, once no buffered bytes are left. */
  unwrap(): Duplex | undefined {
    return this.#prefix.length === 0 ? this.#inner : undefined;
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

/**
 * Tells whether `stream` is a plain TCP socket: not TLS, not wrapped.
 *
 * @param stream The stream to check.
 * @returns `true` for a `Deno.TcpConn`.
 */
export function isPlainTcp(stream: Duplex): stream is Deno.TcpConn {
  return "setNoDelay" in stream && !("handshake" in stream);
}

/**
 * Writes all of `data`, however many calls the stream needs.
 *
 * @param stream Where to write.
 * @param data The bytes to write.
 */
export async function writeAll(
  stream: Duplex,
  data: Uint8Array,
): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    offset += await stream.write(data.subarray(offset));
  }
}

/**
 * Closes a stream that may already be closed.
 *
 * @param stream The stream to close.
 */
export function closeQuietly(stream: Duplex): void {
  try {
    stream.close();
  } catch (error) {
    if (!(error instanceof Deno.errors.BadResource)) throw error;
  }
}
