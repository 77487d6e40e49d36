/**
 * The session layer's binary frames, and an incremental decoder for them.
 * Pure: bytes in, frames out, no I/O.
 *
 * Every frame starts with a fixed 12-byte header, big-endian:
 *
 * ```
 * 0 version  u8   FRAME_VERSION; any other value is refused
 * 1 type     u8   FrameType
 * 2 flags    u8   per type; unknown bits are refused
 * 3 reserved u8   0
 * 4 stream   u32  0 for HELLO, WELCOME, GOAWAY; otherwise the stream's id
 * 8 length   u32  body bytes that follow, at most MAX_FRAME_BODY
 * ```
 *
 * Byte offsets are 53-bit unsigned integers, written as u64. Strings are
 * a length (u8 for a host, u16 for a reason) and UTF-8 bytes.
 *
 * @module
 */

import { isHostName, isIPv6 } from "../net/address.ts";
import { concat } from "../net/bytes.ts";
import { FrameError } from "./errors.ts";

/** The protocol version this build speaks. */
export const FRAME_VERSION = 1;
/** Bytes in a frame header. */
export const HEADER_BYTES = 12;
/** Most payload bytes in one DATA frame. */
export const MAX_DATA_PAYLOAD = 64 * 1024;
/** Largest body of any frame: a full DATA frame's offset and payload. */
export const MAX_FRAME_BODY: number = 8 + MAX_DATA_PAYLOAD;
/** Most UTF-8 bytes in a REFUSE, RESET or GOAWAY reason. */
export const MAX_REASON_BYTES = 512;
/**
 * Most per-stream entries in a HELLO or WELCOME: a full list (17 bytes an
 * entry) still fits in {@link MAX_FRAME_BODY}.
 */
export const MAX_RESUME_ENTRIES = 2048;
/** Bytes in a session id: 128 bits. */
export const SESSION_ID_BYTES = 16;
/** Largest flow-control window one side may grant. */
export const MAX_WINDOW = 0x7fff_ffff;

/** The wire number of each frame type. */
export const FrameType = {
  hello: 1,
  welcome: 2,
  open: 3,
  opened: 4,
  refuse: 5,
  data: 6,
  ack: 7,
  eof: 8,
  reset: 9,
  goaway: 10,
} as const;

/** Why a stream was refused; the wire number is the index in this list. */
export const REFUSE_CODES = [
  "not-allowed",
  "unreachable",
  "refused",
  "timeout",
  "auth",
  "limit",
] as const;

/** Why the far end did not open a stream. */
export type RefuseCode = typeof REFUSE_CODES[number];

/** What HELLO's sender (or WELCOME's) has of one stream, for resumption. */
export interface ResumeEntry {
  /** The stream's id. */
  readonly stream: number;
  /** Bytes of the stream received so far: the peer resends from here. */
  readonly offset: number;
  /** Bytes past `offset` the sender will accept. */
  readonly window: number;
  /** Whether the peer's EOF has been received. */
  readonly eof: boolean;
  /**
   * Set when the sender reset the stream and the peer may not know: the
   * peer then waits for the RESET that follows (with its reason) instead
   * of resending. Offset and window are then 0.
   */
  readonly reset?: true;
}

/** Client → server, first on every transport: a new session, or a resume. */
export interface HelloFrame {
  /** The frame type. */
  readonly type: "hello";
  /** The session to resume; absent for a new one. */
  readonly session?: Uint8Array;
  /** The client's receive state of each stream (empty for a new session). */
  readonly streams: readonly ResumeEntry[];
}

/**
 * Server → client, the answer to HELLO. `refused`: the session asked for
 * is unknown, expired or not the client's; `session` is then a new one.
 */
export type ResumeOutcome = "new" | "resumed" | "refused";

/** Server → client: the session id and the server's receive state. */
export interface WelcomeFrame {
  /** The frame type. */
  readonly type: "welcome";
  /** The session's id, {@link SESSION_ID_BYTES} bytes. */
  readonly session: Uint8Array;
  /** Whether the asked-for session was resumed. */
  readonly resume: ResumeOutcome;
  /** The server's receive state of each stream (empty unless resumed). */
  readonly streams: readonly ResumeEntry[];
}

/** Opens a stream to `host:port` at the far end. */
export interface OpenFrame {
  /** The frame type. */
  readonly type: "open";
  /** The stream's id. */
  readonly stream: number;
  /** A host name, IPv4 or IPv6 address (no brackets). */
  readonly host: string;
  /** 1–65535. */
  readonly port: number;
  /** Bytes the opener will accept before its first ACK. */
  readonly window: number;
}

/** The far end reached the target; data may flow. */
export interface OpenedFrame {
  /** The frame type. */
  readonly type: "opened";
  /** The stream's id. */
  readonly stream: number;
  /** Bytes the far end will accept before its first ACK. */
  readonly window: number;
}

/** The far end did not open the stream. */
export interface RefuseFrame {
  /** The frame type. */
  readonly type: "refuse";
  /** The stream's id. */
  readonly stream: number;
  /** Why, as a code. */
  readonly code: RefuseCode;
  /** Why, for the peer's log. */
  readonly reason: string;
}

/** Bytes of a stream, starting at byte `offset` of its sequence. */
export interface DataFrame {
  /** The frame type. */
  readonly type: "data";
  /** The stream's id. */
  readonly stream: number;
  /** Where in the stream's byte sequence the payload starts. */
  readonly offset: number;
  /** At most {@link MAX_DATA_PAYLOAD} bytes. */
  readonly payload: Uint8Array;
}

/** Cumulative acknowledgement and window of one stream. */
export interface AckFrame {
  /** The frame type. */
  readonly type: "ack";
  /** The stream's id. */
  readonly stream: number;
  /** Every byte before this offset has been received. */
  readonly offset: number;
  /** Bytes past `offset` the sender of the ACK will accept. */
  readonly window: number;
  /** The peer's EOF has been received too. */
  readonly eof: boolean;
}

/** The sender will send no more bytes on the stream; `offset` is its length. */
export interface EofFrame {
  /** The frame type. */
  readonly type: "eof";
  /** The stream's id. */
  readonly stream: number;
  /** The stream's length: every byte the sender sent. */
  readonly offset: number;
}

/** The stream is abandoned in both directions. */
export interface ResetFrame {
  /** The frame type. */
  readonly type: "reset";
  /** The stream's id. */
  readonly stream: number;
  /** Why, for the peer's log. */
  readonly reason: string;
}

/** The transport is about to close; the session itself lives on. */
export interface GoawayFrame {
  /** The frame type. */
  readonly type: "goaway";
  /** Why, for the peer's log. */
  readonly reason: string;
}

/** Any frame. */
export type Frame =
  | HelloFrame
  | WelcomeFrame
  | OpenFrame
  | OpenedFrame
  | RefuseFrame
  | DataFrame
  | AckFrame
  | EofFrame
  | ResetFrame
  | GoawayFrame;

const FLAG_RESUME = 0x01; // HELLO: a session id follows
const FLAG_EOF = 0x01; // ACK: the peer's EOF was received
const ENTRY_EOF = 0x01; // resume entry: the peer's EOF was received
const ENTRY_RESET = 0x02; // resume entry: the sender reset the stream
const OUTCOMES: readonly ResumeOutcome[] = ["new", "resumed", "refused"];
const TYPE_NAMES = Object.fromEntries(
  Object.entries(FrameType).map(([name, number]) => [number, name]),
) as Record<number, Frame["type"]>;
const MAX_OFFSET = Number.MAX_SAFE_INTEGER;
const utf8 = new TextEncoder();
// An offset on the wire: u64.
const OFFSET_BYTES = 8;
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Encodes one frame.
 *
 * @param frame The frame.
 * @returns Its bytes, header included.
 * @throws {RangeError} when a field is out of its bound (a caller's bug:
 *   reasons should be cut with {@link clipReason} first).
 *
 * @example
 * ```ts
 * const bytes = encodeFrame({ type: "eof", stream: 1, offset: 10 });
 * new FrameDecoder().push(bytes); // [{ type: "eof", stream: 1, offset: 10 }]
 * ```
 */
export function encodeFrame(frame: Frame): Uint8Array {
  if (frame.type === "data") return concat(...encodeFrameParts(frame));
  const body = new Writer();
  let flags = 0;
  let stream = 0;
  switch (frame.type) {
    case "hello":
      if (frame.session) {
        flags |= FLAG_RESUME;
        body.bytes(sessionId(frame.session));
      }
      body.entries(frame.streams);
      break;
    case "welcome":
      body.bytes(sessionId(frame.session));
      body.u8(known(OUTCOMES.indexOf(frame.resume), "outcome"));
      body.entries(frame.streams);
      break;
    case "open": {
      stream = frame.stream;
      if (!validHost(frame.host)) {
        throw new RangeError(`OPEN host "${frame.host}" is not a host name`);
      }
      const host = utf8.encode(frame.host);
      body.u8(host.length);
      body.bytes(host);
      body.u16(port(frame.port));
      body.u32(window(frame.window));
      break;
    }
    case "opened":
      stream = frame.stream;
      body.u32(window(frame.window));
      break;
    case "refuse":
      stream = frame.stream;
      body.u8(known(REFUSE_CODES.indexOf(frame.code), "refuse code"));
      body.reason(frame.reason);
      break;
    case "ack":
      stream = frame.stream;
      if (frame.eof) flags |= FLAG_EOF;
      body.offset(frame.offset);
      body.u32(window(frame.window));
      break;
    case "eof":
      stream = frame.stream;
      body.offset(frame.offset);
      break;
    case "reset":
      stream = frame.stream;
      body.reason(frame.reason);
      break;
    case "goaway":
      body.reason(frame.reason);
      break;
  }
  const payload = body.finish();
  const out = new Uint8Array(HEADER_BYTES + payload.length);
  writeHeader(out, frame.type, flags, stream, payload.length);
  out.set(payload, HEADER_BYTES);
  return out;
}

/**
 * Encodes a frame as pieces to be sent one after the other: a DATA frame
 * as its header and offset, then its payload as given (not copied), so
 * that a batch of frames is copied once, into the message that carries
 * it; any other frame as {@link encodeFrame} does.
 *
 * @param frame The frame.
 * @returns Its bytes, in pieces.
 * @throws {RangeError} as {@link encodeFrame}.
 */
export function encodeFrameParts(frame: Frame): Uint8Array[] {
  if (frame.type !== "data") return [encodeFrame(frame)];
  if (frame.payload.length > MAX_DATA_PAYLOAD) {
    throw new RangeError(
      `DATA payload of ${frame.payload.length} bytes is over ${MAX_DATA_PAYLOAD}`,
    );
  }
  const head = new Uint8Array(HEADER_BYTES + OFFSET_BYTES);
  writeHeader(
    head,
    "data",
    0,
    frame.stream,
    OFFSET_BYTES + frame.payload.length,
  );
  const body = new Writer();
  body.offset(frame.offset);
  head.set(body.finish(), HEADER_BYTES);
  return [head, frame.payload];
}

// The 12-byte header at the start of `out`.
function writeHeader(
  out: Uint8Array,
  type: Frame["type"],
  flags: number,
  stream: number,
  length: number,
): void {
  const connection = type === "hello" || type === "welcome" ||
    type === "goaway";
  if (!connection && (stream < 1 || stream > 0xffff_ffff)) {
    throw new RangeError(`stream id ${stream} is not 1–4294967295`);
  }
  const view = new DataView(out.buffer, out.byteOffset, HEADER_BYTES);
  view.setUint8(0, FRAME_VERSION);
  view.setUint8(1, FrameType[type]);
  view.setUint8(2, flags);
  view.setUint32(4, stream);
  view.setUint32(8, length);
}

/**
 * Cuts a reason to {@link MAX_REASON_BYTES} of UTF-8, at a character
 * boundary, so any text can go into REFUSE, RESET or GOAWAY.
 *
 * @param reason The text.
 * @returns The text, or its longest prefix that fits.
 */
export function clipReason(reason: string): string {
  if (utf8.encode(reason).length <= MAX_REASON_BYTES) return reason;
  let out = "";
  let bytes = 0;
  for (const char of reason) {
    const size = utf8.encode(char).length;
    if (bytes + size > MAX_REASON_BYTES) break;
    out += char;
    bytes += size;
  }
  return out;
}

/**
 * Decodes frames from a byte stream cut anywhere. Holds at most one
 * frame's bytes ({@link HEADER_BYTES} + {@link MAX_FRAME_BODY}); a header
 * announcing more is refused before its body is read. After an error every
 * later push throws it again: the stream has lost its framing.
 */
export class FrameDecoder {
  // The header being gathered, then the whole frame being gathered: each
  // byte is copied once however small the chunks.
  #header = new Uint8Array(HEADER_BYTES);
  #headerFill = 0;
  #frame: Uint8Array | undefined;
  #frameFill = 0;
  #error: FrameError | undefined;

  /** Bytes received that do not yet make a whole frame. */
  get buffered(): number {
    return this.#frame ? this.#frameFill : this.#headerFill;
  }

  /**
   * Adds bytes and returns the frames they complete.
   *
   * @param chunk The next bytes of the stream (copied where kept, unless
   *   `owned`).
   * @param owned Whether the caller hands `chunk` over, never to change
   *   it: DATA payloads whole in it are then views of it, not copies.
   * @returns The complete frames, in order.
   * @throws {FrameError} when the stream holds a frame that is not valid.
   */
  push(chunk: Uint8Array, owned = false): Frame[] {
    if (this.#error) throw this.#error;
    const frames: Frame[] = [];
    try {
      let at = 0;
      while (at < chunk.length) {
        if (!this.#frame) {
          // Whole frames in the chunk are decoded where they lie.
          if (this.#headerFill === 0 && chunk.length - at >= HEADER_BYTES) {
            const size = HEADER_BYTES +
              checkHeader(chunk.subarray(at, at + HEADER_BYTES));
            if (chunk.length - at >= size) {
              frames.push(decodeBody(chunk.subarray(at, at + size), owned));
              at += size;
              continue;
            }
          }
          const n = Math.min(
            HEADER_BYTES - this.#headerFill,
            chunk.length - at,
          );
          this.#header.set(chunk.subarray(at, at + n), this.#headerFill);
          this.#headerFill += n;
          at += n;
          if (this.#headerFill < HEADER_BYTES) break;
          this.#frame = new Uint8Array(
            HEADER_BYTES + checkHeader(this.#header),
          );
          this.#frame.set(this.#header);
          this.#frameFill = HEADER_BYTES;
          this.#headerFill = 0;
        }
        const n = Math.min(
          this.#frame.length - this.#frameFill,
          chunk.length - at,
        );
        this.#frame.set(chunk.subarray(at, at + n), this.#frameFill);
        this.#frameFill += n;
        at += n;
        if (this.#frameFill === this.#frame.length) {
          const frame = this.#frame;
          this.#frame = undefined;
          // The frame was put together in a buffer of its own.
          frames.push(decodeBody(frame, true));
        }
      }
    } catch (error) {
      if (error instanceof FrameError) this.#error = error;
      throw error;
    }
    return frames;
  }
}

/** Checks a header and returns its body length. */
function checkHeader(header: Uint8Array): number {
  const view = new DataView(header.buffer, header.byteOffset, HEADER_BYTES);
  const version = view.getUint8(0);
  if (version !== FRAME_VERSION) {
    throw new FrameError(
      "version",
      `frame version ${version} is not supported (this build speaks version ${FRAME_VERSION}): use the same httptunneling version at both ends`,
    );
  }
  const type = view.getUint8(1);
  if (!(type in TYPE_NAMES)) {
    throw new FrameError("type", `unknown frame type ${type}`);
  }
  if (view.getUint8(3) !== 0) {
    throw new FrameError("malformed", "reserved header byte is not 0");
  }
  const length = view.getUint32(8);
  if (length > MAX_FRAME_BODY) {
    throw new FrameError(
      "size",
      `${
        TYPE_NAMES[type]
      } frame of ${length} bytes is over the ${MAX_FRAME_BODY}-byte bound`,
    );
  }
  return length;
}

/**
 * Decodes one whole frame whose header has been checked; a DATA payload
 * views `bytes` when they are `owned`, else is a copy.
 */
function decodeBody(bytes: Uint8Array, owned: boolean): Frame {
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  const type = TYPE_NAMES[view.getUint8(1)];
  const flags = view.getUint8(2);
  const stream = view.getUint32(4);
  const body = new Reader(bytes.subarray(HEADER_BYTES), type);
  const allowFlags = (mask: number) => {
    if ((flags & ~mask) !== 0) {
      throw new FrameError(
        "malformed",
        `${type} frame has unknown flags 0x${flags.toString(16)}`,
      );
    }
  };
  const connection = type === "hello" || type === "welcome" ||
    type === "goaway";
  if (connection !== (stream === 0)) {
    throw new FrameError(
      "malformed",
      connection
        ? `${type} frame names stream ${stream}; it belongs to the session (stream 0)`
        : `${type} frame names stream 0; it needs a stream id`,
    );
  }
  let frame: Frame;
  switch (type) {
    case "hello": {
      allowFlags(FLAG_RESUME);
      const session = flags & FLAG_RESUME
        ? body.bytes(SESSION_ID_BYTES)
        : undefined;
      const streams = body.entries();
      frame = session ? { type, session, streams } : { type, streams };
      break;
    }
    case "welcome": {
      allowFlags(0);
      const session = body.bytes(SESSION_ID_BYTES);
      const resume = OUTCOMES[body.u8()];
      if (resume === undefined) {
        throw new FrameError(
          "malformed",
          "welcome frame has an unknown outcome",
        );
      }
      frame = { type, session, resume, streams: body.entries() };
      break;
    }
    case "open": {
      allowFlags(0);
      const host = body.text(body.u8());
      if (!validHost(host)) {
        throw new FrameError(
          "malformed",
          `open frame's host "${
            host.replace(/[^\x21-\x7e]/g, "?")
          }" is not a host name or IP address`,
        );
      }
      const port = body.u16();
      if (port === 0) {
        throw new FrameError("malformed", "open frame's port is 0");
      }
      frame = { type, stream, host, port, window: body.window() };
      break;
    }
    case "opened":
      allowFlags(0);
      frame = { type, stream, window: body.window() };
      break;
    case "refuse": {
      allowFlags(0);
      const code = REFUSE_CODES[body.u8()];
      if (code === undefined) {
        throw new FrameError("malformed", "refuse frame has an unknown code");
      }
      frame = { type, stream, code, reason: body.reason() };
      break;
    }
    case "data": {
      allowFlags(0);
      const offset = body.offset();
      const payload = owned ? body.rest() : body.rest().slice();
      if (payload.length > MAX_DATA_PAYLOAD) {
        throw new FrameError(
          "size",
          `data payload of ${payload.length} bytes is over ${MAX_DATA_PAYLOAD}`,
        );
      }
      if (offset + payload.length > MAX_OFFSET) {
        throw new FrameError("malformed", "data frame ends past 2^53 - 1");
      }
      frame = { type, stream, offset, payload };
      break;
    }
    case "ack":
      allowFlags(FLAG_EOF);
      frame = {
        type,
        stream,
        offset: body.offset(),
        window: body.window(),
        eof: (flags & FLAG_EOF) !== 0,
      };
      break;
    case "eof":
      allowFlags(0);
      frame = { type, stream, offset: body.offset() };
      break;
    case "reset":
      allowFlags(0);
      frame = { type, stream, reason: body.reason() };
      break;
    case "goaway":
      allowFlags(0);
      frame = { type, reason: body.reason() };
      break;
  }
  body.end();
  return frame;
}

function validHost(host: string): boolean {
  return isHostName(host) || isIPv6(host);
}

function known(index: number, what: string): number {
  if (index < 0) throw new RangeError(`unknown ${what}`);
  return index;
}

function sessionId(id: Uint8Array): Uint8Array {
  if (id.length !== SESSION_ID_BYTES) {
    throw new RangeError(
      `session id of ${id.length} bytes; it has ${SESSION_ID_BYTES}`,
    );
  }
  return id;
}

function port(value: number): number {
  if (!Number.isInteger(value) || value < 1 || value > 65535) {
    throw new RangeError(`port ${value} is not 1–65535`);
  }
  return value;
}

function window(value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > MAX_WINDOW) {
    throw new RangeError(`window ${value} is not 0–${MAX_WINDOW}`);
  }
  return value;
}

/** Appends big-endian fields to a growing body. */
class Writer {
  #parts: Uint8Array[] = [];
  #length = 0;

  u8(value: number): void {
    this.bytes(Uint8Array.of(value));
  }

  u16(value: number): void {
    this.bytes(Uint8Array.of(value >>> 8, value & 0xff));
  }

  u32(value: number): void {
    const out = new Uint8Array(4);
    new DataView(out.buffer).setUint32(0, value);
    this.bytes(out);
  }

  offset(value: number): void {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`offset ${value} is not 0–2^53-1`);
    }
    this.u32(Math.floor(value / 0x1_0000_0000));
    this.u32(value >>> 0);
  }

  reason(text: string): void {
    const bytes = utf8.encode(text);
    if (bytes.length > MAX_REASON_BYTES) {
      throw new RangeError(
        `reason of ${bytes.length} bytes is over ${MAX_REASON_BYTES}`,
      );
    }
    this.u16(bytes.length);
    this.bytes(bytes);
  }

  entries(entries: readonly ResumeEntry[]): void {
    if (entries.length > MAX_RESUME_ENTRIES) {
      throw new RangeError(
        `${entries.length} resume entries; at most ${MAX_RESUME_ENTRIES}`,
      );
    }
    this.u16(entries.length);
    for (const entry of entries) {
      if (entry.stream < 1 || entry.stream > 0xffff_ffff) {
        throw new RangeError(`stream id ${entry.stream} is not 1–4294967295`);
      }
      this.u32(entry.stream);
      this.offset(entry.offset);
      this.u32(window(entry.window));
      this.u8((entry.eof ? ENTRY_EOF : 0) | (entry.reset ? ENTRY_RESET : 0));
    }
  }

  bytes(bytes: Uint8Array): void {
    this.#parts.push(bytes);
    this.#length += bytes.length;
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.#length);
    let at = 0;
    for (const part of this.#parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }
}

/** Reads big-endian fields of one body, refusing to read past its end. */
class Reader {
  #bytes: Uint8Array;
  #view: DataView;
  #at = 0;
  #type: string;

  constructor(bytes: Uint8Array, type: string) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
    this.#type = type;
  }

  #take(n: number): number {
    if (this.#at + n > this.#bytes.length) {
      throw new FrameError("malformed", `${this.#type} frame is too short`);
    }
    const at = this.#at;
    this.#at += n;
    return at;
  }

  u8(): number {
    return this.#view.getUint8(this.#take(1));
  }

  u16(): number {
    return this.#view.getUint16(this.#take(2));
  }

  u32(): number {
    return this.#view.getUint32(this.#take(4));
  }

  offset(): number {
    const high = this.u32();
    const low = this.u32();
    if (high > 0x1f_ffff) {
      throw new FrameError(
        "malformed",
        `${this.#type} frame's offset is past 2^53 - 1`,
      );
    }
    return high * 0x1_0000_0000 + low;
  }

  window(): number {
    const value = this.u32();
    if (value > MAX_WINDOW) {
      throw new FrameError(
        "malformed",
        `${this.#type} frame's window ${value} is over ${MAX_WINDOW}`,
      );
    }
    return value;
  }

  bytes(n: number): Uint8Array {
    const at = this.#take(n);
    return this.#bytes.slice(at, at + n);
  }

  text(n: number): string {
    const at = this.#take(n);
    try {
      return strictUtf8.decode(this.#bytes.subarray(at, at + n));
    } catch {
      throw new FrameError(
        "malformed",
        `${this.#type} frame holds text that is not UTF-8`,
      );
    }
  }

  reason(): string {
    const length = this.u16();
    if (length > MAX_REASON_BYTES) {
      throw new FrameError(
        "size",
        `${this.#type} frame's reason of ${length} bytes is over ${MAX_REASON_BYTES}`,
      );
    }
    return this.text(length);
  }

  entries(): ResumeEntry[] {
    const count = this.u16();
    if (count > MAX_RESUME_ENTRIES) {
      throw new FrameError(
        "size",
        `${this.#type} frame lists ${count} streams; at most ${MAX_RESUME_ENTRIES}`,
      );
    }
    const entries: ResumeEntry[] = [];
    const seen = new Set<number>();
    for (let i = 0; i < count; i++) {
      const stream = this.u32();
      const offset = this.offset();
      const window = this.window();
      const flags = this.u8();
      if (
        stream === 0 || seen.has(stream) ||
        (flags & ~(ENTRY_EOF | ENTRY_RESET)) !== 0
      ) {
        throw new FrameError(
          "malformed",
          `${this.#type} frame's stream entry ${i} is not valid (stream 0, a repeated stream, or unknown flags)`,
        );
      }
      seen.add(stream);
      const eof = (flags & ENTRY_EOF) !== 0;
      entries.push(
        flags & ENTRY_RESET
          ? { stream, offset, window, eof, reset: true }
          : { stream, offset, window, eof },
      );
    }
    return entries;
  }

  rest(): Uint8Array {
    const at = this.#take(this.#bytes.length - this.#at);
    return this.#bytes.subarray(at);
  }

  end(): void {
    if (this.#at !== this.#bytes.length) {
      throw new FrameError(
        "malformed",
        `${this.#type} frame has ${
          this.#bytes.length - this.#at
        } bytes past its fields`,
      );
    }
  }
}
