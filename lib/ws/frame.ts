/**
 * WebSocket framing (RFC 6455 §5): frames encoded with 7-, 16- or 64-bit
 * lengths and the client's mask, and an incremental decoder that turns
 * received bytes into messages and control frames, refusing anything the
 * RFC forbids and any message over its size limit. Pure: bytes in, values
 * out.
 *
 * @module
 */

import { concat } from "../net/bytes.ts";
import { maskBytes } from "./mask.ts";

/** Frame opcodes (RFC 6455 §5.2). */
export const OPCODE = {
  continuation: 0x0,
  text: 0x1,
  binary: 0x2,
  close: 0x8,
  ping: 0x9,
  pong: 0xa,
} as const;

/** Close codes this tool sends or reads (RFC 6455 §7.4.1). */
export const CLOSE_CODE = {
  normal: 1000,
  goingAway: 1001,
  protocolError: 1002,
  invalidData: 1007,
  tooBig: 1009,
  internalError: 1011,
} as const;

/** The largest payload a control frame may carry. */
export const MAX_CONTROL_PAYLOAD = 125;

/** The largest message the decoder accepts by default: 1 MiB. */
export const MAX_MESSAGE_BYTES = 1024 * 1024;

/** What the decoder hands out: a whole message or a control frame. */
export type WsEvent =
  | { readonly kind: "binary"; readonly data: Uint8Array }
  | { readonly kind: "text"; readonly text: string }
  | { readonly kind: "ping"; readonly data: Uint8Array }
  | { readonly kind: "pong"; readonly data: Uint8Array }
  | {
    readonly kind: "close";
    /** The peer's close code; absent when its close frame had none. */
    readonly code?: number;
    readonly reason: string;
  };

/**
 * The peer broke the protocol; `closeCode` is what to close the connection
 * with (1002, 1007 or 1009).
 */
export class WsProtocolError extends Error {
  /** The close code the connection should end with. */
  readonly closeCode: number;

  /**
   * @param closeCode The close code to send.
   * @param message What the peer did wrong.
   */
  constructor(closeCode: number, message: string) {
    super(message);
    this.name = "WsProtocolError";
    this.closeCode = closeCode;
  }
}

/** Options of {@link encodeFrame}. */
export interface EncodeOptions {
  /**
   * The 4-byte masking key; a client must mask every frame (RFC 6455
   * §5.3), a server must not. @default unmasked
   */
  readonly mask?: Uint8Array;
  /** Whether this frame ends its message. @default true */
  readonly fin?: boolean;
}

/**
 * Encodes one frame.
 *
 * @param opcode One of {@link OPCODE}.
 * @param payload The payload, or its pieces in order; not modified.
 * @param options The masking key, and whether the frame ends its message.
 * @returns The frame's bytes.
 *
 * @example
 * ```ts
 * // RFC 6455 §5.7: a single-frame unmasked text message
 * encodeFrame(OPCODE.text, new TextEncoder().encode("Hello"));
 * // 0x81 0x05 0x48 0x65 0x6c 0x6c 0x6f
 * ```
 */
export function encodeFrame(
  opcode: number,
  payload: Uint8Array | readonly Uint8Array[],
  options: EncodeOptions = {},
): Uint8Array {
  const parts = payload instanceof Uint8Array ? [payload] : payload;
  const frame = new Uint8Array(
    frameBytes(payloadBytes(parts), options.mask !== undefined),
  );
  encodeFrameInto(frame, opcode, parts, options);
  return frame;
}

/**
 * The size of a frame.
 *
 * @param length The payload's length.
 * @param masked Whether the frame carries a masking key.
 * @returns The header's and the payload's bytes.
 */
export function frameBytes(length: number, masked: boolean): number {
  const lengthBytes = length < 126 ? 0 : length <= 0xffff ? 2 : 8;
  return 2 + lengthBytes + (masked ? 4 : 0) + length;
}

/**
 * Encodes one frame at the start of `out`, which must hold
 * {@link frameBytes} of it: for a writer that puts frames back to back in
 * a buffer it reuses.
 *
 * @param out Where the frame goes.
 * @param opcode One of {@link OPCODE}.
 * @param parts The payload's pieces, in order; not modified.
 * @param options The masking key, and whether the frame ends its message.
 * @returns The frame's bytes written.
 */
export function encodeFrameInto(
  out: Uint8Array,
  opcode: number,
  parts: readonly Uint8Array[],
  options: EncodeOptions = {},
): number {
  const { mask, fin = true } = options;
  const length = payloadBytes(parts);
  const lengthBytes = length < 126 ? 0 : length <= 0xffff ? 2 : 8;
  const headerBytes = frameBytes(length, mask !== undefined) - length;
  out[0] = (fin ? 0x80 : 0) | opcode;
  const maskBit = mask ? 0x80 : 0;
  if (lengthBytes === 0) {
    out[1] = maskBit | length;
  } else if (lengthBytes === 2) {
    out[1] = maskBit | 126;
    out[2] = length >>> 8;
    out[3] = length & 0xff;
  } else {
    out[1] = maskBit | 127;
    new DataView(out.buffer, out.byteOffset, 10).setBigUint64(
      2,
      BigInt(length),
    );
  }
  let at = headerBytes;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  if (mask) {
    out.set(mask.subarray(0, 4), headerBytes - 4);
    maskBytes(out.subarray(headerBytes, at), mask);
  }
  return at;
}

function payloadBytes(parts: readonly Uint8Array[]): number {
  let length = 0;
  for (const part of parts) length += part.length;
  return length;
}

/**
 * The payload of a close frame: the code, then the reason in UTF-8, cut
 * at a character boundary so that the whole fits a control frame.
 *
 * @param code The close code.
 * @param reason Why, for the peer's log.
 * @returns At most {@link MAX_CONTROL_PAYLOAD} bytes.
 */
export function closePayload(code: number, reason = ""): Uint8Array {
  let text = new TextEncoder().encode(reason);
  if (text.length > MAX_CONTROL_PAYLOAD - 2) {
    let end = MAX_CONTROL_PAYLOAD - 2;
    // Back up over UTF-8 continuation bytes to a character's start.
    while (end > 0 && (text[end] & 0xc0) === 0x80) end--;
    text = text.subarray(0, end);
  }
  const payload = new Uint8Array(2 + text.length);
  new DataView(payload.buffer).setUint16(0, code);
  payload.set(text, 2);
  return payload;
}

/**
 * Reads a close frame's payload.
 *
 * @param payload The close frame's payload.
 * @returns The code (absent for an empty payload) and the reason.
 * @throws {WsProtocolError} for a 1-byte payload, a code no endpoint may
 *   send, or a reason that is not UTF-8.
 */
export function parseClosePayload(
  payload: Uint8Array,
): { code?: number; reason: string } {
  if (payload.length === 0) return { reason: "" };
  if (payload.length === 1) {
    throw new WsProtocolError(
      CLOSE_CODE.protocolError,
      "a close frame with a 1-byte payload",
    );
  }
  const code = (payload[0] << 8) | payload[1];
  if (!isSendableCloseCode(code)) {
    throw new WsProtocolError(
      CLOSE_CODE.protocolError,
      `close code ${code} may not be sent`,
    );
  }
  return { code, reason: decodeUtf8(payload.subarray(2), "close reason") };
}

// RFC 6455 §7.4: 1004-1006 and 1015 are reserved, and below 1000 unused.
function isSendableCloseCode(code: number): boolean {
  if (code >= 3000 && code <= 4999) return true;
  return code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 &&
    code !== 1006;
}

function decodeUtf8(bytes: Uint8Array, what: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new WsProtocolError(
      CLOSE_CODE.invalidData,
      `the ${what} is not valid UTF-8`,
    );
  }
}

/** Options of {@link FrameDecoder}. */
export interface FrameDecoderOptions {
  /**
   * Whether received frames must be masked: `true` on a server, `false` on
   * a client (RFC 6455 §5.1). @default false
   */
  readonly masked?: boolean;
  /** The largest message accepted, fragments together. @default 1 MiB */
  readonly maxMessageBytes?: number;
}

const EMPTY = new Uint8Array(0);

/**
 * Turns received bytes into {@link WsEvent}s, frame by frame: fragments
 * are joined into their message, control frames between fragments come
 * out as they arrive. Each frame's payload is copied once, into a buffer
 * of the size its header announced, after the size is checked.
 */
export class FrameDecoder {
  readonly #masked: boolean;
  readonly #maxMessageBytes: number;
  // The current frame's header, as it arrives.
  #header = new Uint8Array(14);
  #headerFilled = 0;
  // Set once the header is complete.
  #frame:
    | {
      fin: boolean;
      opcode: number;
      mask?: Uint8Array;
      payload: Uint8Array;
      filled: number;
    }
    | undefined;
  // The fragmented message being joined, if any.
  #fragments: Uint8Array[] = [];
  #fragmentBytes = 0;
  #fragmentOpcode: number | undefined;

  /** @param options Whether frames must be masked, and the size limit. */
  constructor(options: FrameDecoderOptions = {}) {
    this.#masked = options.masked ?? false;
    this.#maxMessageBytes = options.maxMessageBytes ?? MAX_MESSAGE_BYTES;
  }

  /**
   * Adds received bytes.
   *
   * @param chunk The bytes just read.
   * @returns The messages and control frames completed by them, in order.
   * @throws {WsProtocolError} at the first violation; the decoder is then
   *   unusable.
   */
  push(chunk: Uint8Array): WsEvent[] {
    const events: WsEvent[] = [];
    let offset = 0;
    while (true) {
      if (this.#frame === undefined) {
        if (offset >= chunk.length) break;
        offset = this.#readHeader(chunk, offset);
        if (this.#frame === undefined) break;
      }
      const frame = this.#frame;
      const take = Math.min(
        frame.payload.length - frame.filled,
        chunk.length - offset,
      );
      frame.payload.set(chunk.subarray(offset, offset + take), frame.filled);
      frame.filled += take;
      offset += take;
      // A frame with an empty payload is complete with its header.
      if (frame.filled < frame.payload.length) break;
      this.#frame = undefined;
      const { mask, payload } = frame;
      if (mask) maskBytes(payload, mask);
      const event = this.#event(frame.fin, frame.opcode, payload);
      if (event) events.push(event);
    }
    return events;
  }

  // Copies header bytes; sets #frame once the header is whole. Returns the
  // offset in `chunk` after what it used.
  #readHeader(chunk: Uint8Array, offset: number): number {
    const header = this.#header;
    const need = () => {
      if (this.#headerFilled < 2) return 2;
      const short = header[1] & 0x7f;
      const lengthBytes = short === 126 ? 2 : short === 127 ? 8 : 0;
      return 2 + lengthBytes + ((header[1] & 0x80) ? 4 : 0);
    };
    while (this.#headerFilled < need() && offset < chunk.length) {
      header[this.#headerFilled++] = chunk[offset++];
      if (this.#headerFilled === 2) this.#checkFirstBytes();
    }
    if (this.#headerFilled < need()) return offset;
    const short = header[1] & 0x7f;
    const view = new DataView(header.buffer);
    let length = short;
    let at = 2;
    if (short === 126) {
      length = view.getUint16(2);
      at = 4;
    } else if (short === 127) {
      const big = view.getBigUint64(2);
      if (big >> 63n) {
        throw new WsProtocolError(
          CLOSE_CODE.protocolError,
          "a frame length with its most significant bit set",
        );
      }
      length = big > BigInt(Number.MAX_SAFE_INTEGER)
        ? Number.MAX_SAFE_INTEGER
        : Number(big);
      at = 10;
    }
    const opcode = header[0] & 0x0f;
    if (opcode < 0x8) {
      const total = this.#fragmentBytes + length;
      if (total > this.#maxMessageBytes) {
        throw new WsProtocolError(
          CLOSE_CODE.tooBig,
          `a message larger than ${this.#maxMessageBytes} bytes`,
        );
      }
    }
    const mask = (header[1] & 0x80) ? header.slice(at, at + 4) : undefined;
    this.#frame = {
      fin: (header[0] & 0x80) !== 0,
      opcode,
      mask,
      payload: length === 0 ? EMPTY : new Uint8Array(length),
      filled: 0,
    };
    this.#headerFilled = 0;
    return offset;
  }

  // Checks what the first two bytes decide: reserved bits, the opcode,
  // control frame rules, masking and fragment order.
  #checkFirstBytes(): void {
    const [first, second] = this.#header;
    const fail = (message: string) =>
      new WsProtocolError(CLOSE_CODE.protocolError, message);
    if (first & 0x70) throw fail("a frame with reserved bits set");
    const opcode = first & 0x0f;
    const fin = (first & 0x80) !== 0;
    if (!Object.values(OPCODE).includes(opcode as never)) {
      throw fail(`a frame with reserved opcode ${opcode}`);
    }
    if (opcode >= 0x8) {
      if (!fin) throw fail("a fragmented control frame");
      if ((second & 0x7f) > MAX_CONTROL_PAYLOAD) {
        throw fail(`a control frame longer than ${MAX_CONTROL_PAYLOAD} bytes`);
      }
    } else if (opcode === OPCODE.continuation) {
      if (this.#fragmentOpcode === undefined) {
        throw fail("a continuation frame without a message to continue");
      }
    } else if (this.#fragmentOpcode !== undefined) {
      throw fail("a new message before the fragmented one ended");
    }
    const masked = (second & 0x80) !== 0;
    if (masked !== this.#masked) {
      throw fail(
        masked ? "a masked frame from the server" : "an unmasked client frame",
      );
    }
  }

  #event(
    fin: boolean,
    opcode: number,
    payload: Uint8Array,
  ): WsEvent | undefined {
    switch (opcode) {
      case OPCODE.ping:
        return { kind: "ping", data: payload };
      case OPCODE.pong:
        return { kind: "pong", data: payload };
      case OPCODE.close:
        return { kind: "close", ...parseClosePayload(payload) };
    }
    if (opcode !== OPCODE.continuation) this.#fragmentOpcode = opcode;
    if (!fin || this.#fragments.length > 0) {
      this.#fragments.push(payload);
      this.#fragmentBytes += payload.length;
      if (!fin) return undefined;
      payload = concat(...this.#fragments);
      this.#fragments = [];
      this.#fragmentBytes = 0;
    }
    const messageOpcode = this.#fragmentOpcode;
    this.#fragmentOpcode = undefined;
    return messageOpcode === OPCODE.text
      ? { kind: "text", text: decodeUtf8(payload, "text message") }
      : { kind: "binary", data: payload };
  }
}
