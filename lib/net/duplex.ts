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
export function closeQuietly(stream: Pick<Duplex, "close">): void {
  try {
    stream.close();
  } catch (error) {
    if (!(error instanceof Deno.errors.BadResource)) throw error;
  }
}
