/**
 * Test data that checks itself: deterministic pseudo-random chunks, and
 * their sha256 on the sending and the receiving side, so that a transfer
 * is verified without storing what was sent.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { writeAll } from "./net.ts";

/**
 * Deterministic pseudo-random bytes (xorshift32), so both ends of a
 * transfer can check it without storing it.
 *
 * @param seed Picks the sequence; the same seed gives the same bytes.
 * @param total How many bytes in all.
 * @param chunkSize The size of each chunk but the last.
 */
export function* pseudoRandomChunks(
  seed: number,
  total: number,
  chunkSize = 64 * 1024,
): Generator<Uint8Array> {
  let state = seed >>> 0 || 1;
  for (let done = 0; done < total; done += chunkSize) {
    const chunk = new Uint8Array(Math.min(chunkSize, total - done));
    const words = new Uint32Array(chunk.buffer, 0, chunk.length >>> 2);
    for (let i = 0; i < words.length; i++) {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      words[i] = state;
    }
    yield chunk;
  }
}

/** The sha256 of everything `chunks` yields, in hex. */
export function sha256Of(chunks: Iterable<Uint8Array>): string {
  const hash = createHash("sha256");
  for (const chunk of chunks) hash.update(chunk);
  return hash.digest("hex");
}

/** Writes every chunk to `conn`. */
export async function sendChunks(
  conn: Deno.Conn,
  chunks: Iterable<Uint8Array>,
): Promise<void> {
  for (const chunk of chunks) await writeAll(conn, chunk);
}

/** Reads exactly `length` bytes and returns their sha256 in hex. */
export async function hashExactly(
  conn: Deno.Conn,
  length: number,
): Promise<string> {
  const hash = createHash("sha256");
  const buffer = new Uint8Array(64 * 1024);
  for (let got = 0; got < length;) {
    const n = await conn.read(
      buffer.subarray(0, Math.min(buffer.length, length - got)),
    );
    if (n === null) {
      throw new Error(`stream ended after ${got} of ${length} bytes`);
    }
    hash.update(buffer.subarray(0, n));
    got += n;
  }
  return hash.digest("hex");
}
