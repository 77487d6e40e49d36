/**
 * Copying an HTTP/1.1 message body from one stream to another as it
 * arrives: a fixed length, a chunked body (RFC 9112 §7.1) checked and
 * written anew, or everything until the sender closes. No more than one
 * read of the body is held at a time. {@link readBody} reads a body,
 * bounded, into memory with the same decoding.
 *
 * Chunked bodies are re-framed, not passed through: every chunk size is
 * checked and written again in canonical hex, chunk extensions and
 * trailer fields are read within bounds and dropped (the Trailer field is
 * hop-by-hop and goes too, RFC 9110 §6.5.1 lets a recipient discard
 * trailers), so the next hop never sees framing it might read differently.
 *
 * @module
 */

import type { BufferedDuplex } from "../net/buffered.ts";
import { concat } from "../net/bytes.ts";
import { type Duplex, writeAll } from "../net/duplex.ts";
import { type BodyFraming, HttpMessageError } from "./http1.ts";

/** Options for {@link copyBody}. */
export interface CopyBodyOptions {
  /**
   * Write the body with chunked coding, each piece as it arrives as one
   * chunk; `false` writes the bare bytes (to an HTTP/1.0 client, or for a
   * length the receiver was told). Frame the head to match with
   * `frameHeaders`.
   * @default true for a chunked body, false otherwise
   */
  readonly chunked?: boolean;
  /** The longest chunk-size line, chunk extensions included. @default 4096 */
  readonly maxChunkLineBytes?: number;
  /** The largest trailer section, which is dropped. @default 16384 */
  readonly maxTrailerBytes?: number;
}

const encoder = new TextEncoder();
const CRLF = encoder.encode("\r\n");
const LAST_CHUNK = encoder.encode("0\r\n\r\n");

/**
 * Copies one message body from `from` to `to`, stopping where it ends:
 * what follows (the next request on a persistent connection) stays
 * buffered in `from`. Time is bounded by the caller, by closing the
 * streams.
 *
 * @param from The sender's stream, positioned after the head.
 * @param to The receiver's stream.
 * @param framing How the body is delimited, from `requestFraming` or
 *   `responseFraming`.
 * @param options How to write it, and the bounds of chunk framing.
 * @returns The body's length: its bytes without chunk framing.
 * @throws {HttpMessageError} 400 for a chunk size that is not hex, above
 *   2^53, or on a line too long, chunk data not followed by CRLF, or a
 *   trailer section too large (the caller copying a response closes the
 *   client's connection instead of answering); the error `from` makes for
 *   an early end when the sender closes inside a length or chunked body;
 *   what `to` throws on a write.
 */
export async function copyBody(
  from: BufferedDuplex,
  to: Duplex,
  framing: BodyFraming,
  options: CopyBodyOptions = {},
): Promise<number> {
  if (framing.kind === "none") return 0;
  const chunked = options.chunked ?? framing.kind === "chunked";
  // Pieces are never empty: an empty chunk would end the body.
  const emit = chunked
    ? (piece: Uint8Array) =>
      writeAll(
        to,
        concat(encoder.encode(`${piece.length.toString(16)}\r\n`), piece, CRLF),
      )
    : (piece: Uint8Array) => writeAll(to, piece);
  let length: number;
  switch (framing.kind) {
    case "length":
      length = await copyLength(from, framing.length, emit);
      break;
    case "chunked":
      length = await copyChunks(
        from,
        emit,
        options.maxChunkLineBytes ?? 4096,
        options.maxTrailerBytes ?? 16 * 1024,
      );
      break;
    case "close":
      length = await copyToEnd(from, emit);
  }
  if (chunked) await writeAll(to, LAST_CHUNK);
  return length;
}

/**
 * Reads one message body into one array, decoded as {@link copyBody}
 * decodes it, refusing one larger than `maxBytes` before holding more.
 * What follows the body stays buffered in `from`.
 *
 * @param from The sender's stream, positioned after the head.
 * @param framing How the body is delimited, from `responseFraming`.
 * @param maxBytes The largest body accepted.
 * @param tooLarge Makes the error for a larger body.
 * @returns The body's bytes.
 * @throws `tooLarge()` past `maxBytes` (a declared length is refused
 *   before its first byte is read); what {@link copyBody} throws.
 *
 * @example
 * ```ts
 * const body = await readBody(input, { kind: "chunked" }, 1 << 20, () =>
 *   new Error("larger than 1 MiB"));
 * ```
 */
export async function readBody(
  from: BufferedDuplex,
  framing: BodyFraming,
  maxBytes: number,
  tooLarge: () => Error,
): Promise<Uint8Array> {
  if (framing.kind === "none") return new Uint8Array(0);
  if (framing.kind === "length") {
    if (framing.length > maxBytes) throw tooLarge();
    // Straight into the array: no piece is held twice.
    const body = new Uint8Array(framing.length);
    for (let offset = 0; offset < body.length;) {
      const n = await from.read(body.subarray(offset));
      // skip() reads once more and throws the owner's early-end error.
      if (n === null) await from.skip(body.length - offset);
      offset += n ?? 0;
    }
    return body;
  }
  const pieces: Uint8Array[] = [];
  let length = 0;
  const sink: Duplex = {
    read: () => Promise.resolve(null),
    write(data) {
      length += data.length;
      if (length > maxBytes) throw tooLarge();
      pieces.push(data.slice());
      return Promise.resolve(data.length);
    },
    closeWrite: () => Promise.resolve(),
    close() {},
  };
  await copyBody(from, sink, framing, { chunked: false });
  return pieces.length === 1 ? pieces[0] : concat(...pieces);
}

type Emit = (piece: Uint8Array) => Promise<void>;

async function copyLength(
  from: BufferedDuplex,
  length: number,
  emit: Emit,
): Promise<number> {
  for (let left = length; left > 0;) {
    if (from.buffered.length === 0 && !(await from.fill())) {
      // skip() reads once more and throws the early-end error that the
      // stream's owner chose.
      await from.skip(left);
    }
    const piece = from.buffered.subarray(0, left);
    await emit(piece);
    await from.skip(piece.length);
    left -= piece.length;
  }
  return length;
}

async function copyToEnd(from: BufferedDuplex, emit: Emit): Promise<number> {
  let length = 0;
  while (from.buffered.length > 0 || (await from.fill())) {
    const piece = from.buffered;
    await emit(piece);
    await from.skip(piece.length);
    length += piece.length;
  }
  return length;
}

async function copyChunks(
  from: BufferedDuplex,
  emit: Emit,
  maxChunkLineBytes: number,
  maxTrailerBytes: number,
): Promise<number> {
  const notCrlf = () =>
    new HttpMessageError(400, "chunk data is not followed by CRLF");
  let length = 0;
  while (true) {
    const size = chunkSize(
      await from.line(maxChunkLineBytes, () =>
        new HttpMessageError(
          400,
          `a chunk size line is longer than ${maxChunkLineBytes} bytes`,
        )),
    );
    if (size === 0) break;
    await copyLength(from, size, emit);
    length += size;
    if ((await from.line(1, notCrlf)) !== "") throw notCrlf();
  }
  const start = from.consumed;
  const tooLarge = () =>
    new HttpMessageError(
      400,
      `the trailer section is larger than ${maxTrailerBytes} bytes`,
    );
  while (
    (await from.line(maxTrailerBytes - (from.consumed - start) - 1, tooLarge))
      .length > 0
  ) { /* trailer fields are dropped */ }
  return length;
}

/**
 * The size in a chunk-size line (RFC 9112 §7.1): hex digits, then
 * optionally `;` and extensions, which are dropped.
 *
 * @param line The line without its end.
 * @returns The size, at most 2^53 - 1.
 * @throws {HttpMessageError} 400 for anything else.
 */
export function chunkSize(line: string): number {
  const match = /^([0-9A-Fa-f]+)(?:[ \t]*;[\t\x20-\x7e\x80-\uffff]*)?$/
    .exec(line);
  if (!match) {
    throw new HttpMessageError(400, "a chunk size is not a hex number");
  }
  const digits = match[1].replace(/^0+(?=.)/, "");
  const size = digits.length <= 14 ? parseInt(digits, 16) : Infinity;
  if (!Number.isSafeInteger(size)) {
    throw new HttpMessageError(400, "a chunk size is larger than 2^53");
  }
  return size;
}
