/**
 * A queue of byte chunks with its byte count: what a stream received and
 * its reader has not taken yet, or what waits to be sent. Taking cuts a
 * chunk where the count asks. Pure.
 *
 * @module
 */

/** Byte chunks in order, taken from the front by count. */
export class ChunkQueue {
  #chunks: Uint8Array[] = [];
  #bytes = 0;

  /** The bytes queued. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Adds a chunk at the end (kept, not copied).
   *
   * @param chunk The bytes.
   */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#bytes += chunk.length;
  }

  /**
   * Removes up to `max` bytes from the front, cutting the last chunk it
   * takes where needed.
   *
   * @param max The most bytes to take.
   * @returns The bytes taken, in order, as views of the queued chunks.
   *
   * @example
   * ```ts
   * const queue = new ChunkQueue();
   * queue.push(Uint8Array.of(1, 2));
   * queue.push(Uint8Array.of(3, 4));
   * queue.take(3); // [Uint8Array [1, 2], Uint8Array [3]]; queue.bytes is 1
   * ```
   */
  take(max: number): Uint8Array[] {
    const taken: Uint8Array[] = [];
    let size = 0;
    while (this.#chunks.length > 0 && size < max) {
      const first = this.#chunks[0];
      const n = Math.min(first.length, max - size);
      taken.push(first.subarray(0, n));
      size += n;
      if (n === first.length) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
    }
    this.#bytes -= size;
    return taken;
  }

  /**
   * Removes the first chunk whole, handed over without a copy.
   *
   * @returns The chunk, or `undefined` when the queue is empty.
   */
  shift(): Uint8Array | undefined {
    const chunk = this.#chunks.shift();
    if (chunk !== undefined) this.#bytes -= chunk.length;
    return chunk;
  }

  /**
   * Moves bytes from the front into `buffer`, as many as fit.
   *
   * @param buffer Where to copy them.
   * @returns How many bytes were moved.
   */
  readInto(buffer: Uint8Array): number {
    let n = 0;
    for (const part of this.take(buffer.length)) {
      buffer.set(part, n);
      n += part.length;
    }
    return n;
  }
}
