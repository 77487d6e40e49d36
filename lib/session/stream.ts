/**
 * One stream's state inside a session, both directions, without I/O.
 *
 * Sending: the bytes the application wrote are kept from the peer's last
 * cumulative acknowledgement on, at most `sendBufferBytes` of them, so they
 * can be sent again after a reconnect; a full buffer makes `writable`
 * false and the application waits. Bytes go out only below the limit the
 * peer granted (its acknowledged offset plus its window).
 *
 * Receiving: DATA must continue the byte sequence (a frame that repeats
 * bytes already received, as a resend may, delivers only its new part), and
 * must stay within the window granted; received bytes wait in the inbox
 * until the application reads them, and reading is what opens the window
 * again. A stalled reader therefore stops its own stream only.
 *
 * Early data: the opener may send {@link EARLY_WINDOW} bytes (and its EOF)
 * right behind OPEN, before OPENED says the peer's real window; the
 * accepter holds them, and refuses more, until its application accepts
 * the stream.
 *
 * @module
 */

import { SessionError } from "./errors.ts";
import {
  type AckFrame,
  type DataFrame,
  type EofFrame,
  MAX_DATA_PAYLOAD,
  type ResumeEntry,
} from "./frame.ts";

/** Bounds of one stream. */
export interface StreamOptions {
  /**
   * Most bytes written but not yet acknowledged by the peer.
   * @default 2097152
   */
  readonly sendBufferBytes?: number;
  /**
   * Most bytes received but not yet read by the application: the window
   * granted to the peer.
   * @default 2097152
   */
  readonly receiveWindow?: number;
}

/** Default of {@link StreamOptions.sendBufferBytes}. */
export const DEFAULT_SEND_BUFFER_BYTES = 2 * 1024 * 1024;
/** Default of {@link StreamOptions.receiveWindow}. */
export const DEFAULT_RECEIVE_WINDOW = 2 * 1024 * 1024;
/**
 * Bytes an opener may send before OPENED: the window it assumes until the
 * peer's real one arrives. A protocol constant; every receive window a
 * session announces is at least this.
 */
export const EARLY_WINDOW = 16 * 1024;
/**
 * Most progress an ACK waits for before it is due (less for windows under
 * four times this: a quarter window). The peer's own bounds on bytes it
 * keeps unacknowledged (its `sendBufferBytes`, its session's
 * `sessionBufferBytes`) are not told to this side: a step above them would
 * never be reached, and the peer would stall until an ACK of small progress
 * went out.
 */
export const ACK_STEP_BYTES = 64 * 1024;

// Written bytes are copied into blocks of a full DATA frame's payload, so
// that many small writes do not make a long list to walk for every DATA
// frame, and a frame is a view of one block, not a copy.
const BLOCK_BYTES = MAX_DATA_PAYLOAD;
// Acknowledged blocks kept for the next writes instead of new ones: a
// bulk stream frees a block for about every one it fills. They are let go
// once the peer has every byte, so an idle stream keeps none. The sink has
// copied a DATA frame's bytes before it returns (FrameSink's contract), so
// nothing views a block once the peer has acknowledged it.
const SPARE_BLOCKS = 4;

/**
 * A block of kept bytes: `bytes[start, length)` are not yet acknowledged.
 * Bytes below `length` never change, so DATA frames may view them.
 */
interface Block {
  readonly bytes: Uint8Array;
  start: number;
  length: number;
}

/** Both directions of one stream. */
export class Stream {
  /** The stream's id in its session. */
  readonly id: number;
  readonly #sendLimit: number;
  readonly #window: number;

  // Send side. Offsets count bytes of the stream from its start.
  #blocks: Block[] = [];
  #spare: Uint8Array[] = [];
  #acked = 0; // the peer has every byte before this; the first byte kept
  #next = 0; // the next byte to put into a DATA frame
  #written = 0; // bytes the application wrote
  #highest = 0; // the end of the furthest DATA frame ever sent
  #peerLimit = 0; // bytes below this offset may be sent
  #finishing = false; // the application will write no more
  #eofSent = false;
  #eofAcked = false;

  // Receive side.
  #inbox: Uint8Array[] = [];
  #received = 0; // the next byte expected
  #read = 0; // bytes the application has read
  #peerEnd: number | undefined; // the peer's final offset, once its EOF came
  #ackedTo = 0; // the offset of the last ACK sent
  #grantedTo = 0; // the limit (offset + window) of the last ACK sent
  #eofAckSent = false;
  #cap = Infinity; // bytes accepted in all until the stream is accepted

  /**
   * A stream with nothing sent or received.
   *
   * @param id The stream's id.
   * @param options The stream's bounds.
   */
  constructor(id: number, options: StreamOptions = {}) {
    this.id = id;
    this.#sendLimit = options.sendBufferBytes ?? DEFAULT_SEND_BUFFER_BYTES;
    this.#window = options.receiveWindow ?? DEFAULT_RECEIVE_WINDOW;
    this.#grantedTo = this.#window;
  }

  /** The window this side grants, for OPEN and OPENED. */
  get receiveWindow(): number {
    return this.#window;
  }

  /** Bytes written and not yet acknowledged: what a reconnect may resend. */
  get buffered(): number {
    return this.#written - this.#acked;
  }

  /** Whether {@link write} would take at least one byte. */
  get writable(): boolean {
    return !this.#finishing && this.buffered < this.#sendLimit;
  }

  /** Bytes received and not yet read. */
  get readable(): number {
    return this.#received - this.#read;
  }

  /** Whether the peer's EOF came and every byte before it has been read. */
  get ended(): boolean {
    return this.#peerEnd !== undefined && this.#read === this.#peerEnd;
  }

  /** Whether the peer's EOF came (bytes before it may still be unread). */
  get peerEnded(): boolean {
    return this.#peerEnd !== undefined;
  }

  /**
   * Whether both directions are over: the peer acknowledged this side's
   * EOF, and the application read up to the peer's EOF and the peer was
   * told so.
   */
  get done(): boolean {
    return this.#eofAcked && this.ended && this.#eofAckSent;
  }

  /** Whether this side's EOF went out: it has nothing more to send. */
  get sentAll(): boolean {
    return this.#eofSent;
  }

  /**
   * Keeps bytes to send.
   *
   * @param bytes The bytes (copied).
   * @param room Most bytes the session's own bound lets this stream take.
   * @returns How many bytes were taken, from the front of `bytes`; fewer
   *   than all when the send buffer is full (then wait for `writable`).
   * @throws {SessionError} (`state`) after {@link finish}.
   */
  write(bytes: Uint8Array, room = Infinity): number {
    if (this.#finishing) {
      throw new SessionError(
        "state",
        `stream ${this.id}: write after its sending side was closed`,
      );
    }
    const take = Math.max(
      0,
      Math.min(bytes.length, this.#sendLimit - this.buffered, room),
    );
    let at = 0;
    while (at < take) {
      let last = this.#blocks.at(-1);
      if (!last || last.length === last.bytes.length) {
        last = {
          bytes: this.#spare.pop() ?? new Uint8Array(BLOCK_BYTES),
          start: 0,
          length: 0,
        };
        this.#blocks.push(last);
      }
      const n = Math.min(take - at, last.bytes.length - last.length);
      last.bytes.set(bytes.subarray(at, at + n), last.length);
      last.length += n;
      at += n;
    }
    this.#written += take;
    return take;
  }

  /** Closes the sending side: EOF follows the bytes already written. */
  finish(): void {
    this.#finishing = true;
  }

  /** Whether a DATA frame may go out now (bytes waiting, window open). */
  get hasData(): boolean {
    return this.#next < this.#written && this.#next < this.#peerLimit;
  }

  /** Whether the EOF may go out now: every byte before it was sent. */
  get eofDue(): boolean {
    return this.#finishing && !this.#eofSent && this.#next === this.#written;
  }

  /**
   * The next DATA frame, if {@link hasData}: at most to the end of the
   * block that holds the next byte.
   *
   * @param maxPayload Most payload bytes.
   * @returns The frame, whose payload views the kept bytes (they stay
   *   kept, unchanged, until acknowledged).
   */
  takeData(maxPayload: number): DataFrame | undefined {
    if (!this.hasData) return undefined;
    // The first block starts at #acked, every block but the last is full.
    let skip = this.#next - this.#acked;
    let index = 0;
    while (skip >= this.#blocks[index].length - this.#blocks[index].start) {
      skip -= this.#blocks[index].length - this.#blocks[index].start;
      index++;
    }
    const block = this.#blocks[index];
    const from = block.start + skip;
    const size = Math.min(
      maxPayload,
      block.length - from,
      this.#peerLimit - this.#next,
    );
    const payload = block.bytes.subarray(from, from + size);
    const frame: DataFrame = {
      type: "data",
      stream: this.id,
      offset: this.#next,
      payload,
    };
    this.#next += size;
    this.#highest = Math.max(this.#highest, this.#next);
    return frame;
  }

  /** The EOF frame, if {@link eofDue}. */
  takeEof(): EofFrame | undefined {
    if (!this.eofDue) return undefined;
    this.#eofSent = true;
    return { type: "eof", stream: this.id, offset: this.#written };
  }

  /**
   * The peer's first window, from OPEN or OPENED ({@link EARLY_WINDOW},
   * assumed, before OPENED): a wider one replaces it.
   *
   * @param window Bytes the peer accepts from offset 0.
   */
  grant(window: number): void {
    this.#peerLimit = Math.max(this.#peerLimit, window);
  }

  /**
   * The peer's ACK: drops what it has, and widens the send limit.
   *
   * @param frame The ACK.
   * @throws {SessionError} (`protocol`) for an ACK of bytes or an EOF that
   *   were never sent.
   */
  onAck(frame: AckFrame): void {
    if (frame.offset > this.#highest) {
      throw new SessionError(
        "protocol",
        `stream ${this.id}: ACK of offset ${frame.offset}, only ${this.#highest} bytes were sent`,
      );
    }
    if (frame.eof && !this.#eofSent) {
      throw new SessionError(
        "protocol",
        `stream ${this.id}: ACK of an EOF that was not sent`,
      );
    }
    this.#release(frame.offset);
    this.#peerLimit = Math.max(this.#peerLimit, frame.offset + frame.window);
    if (frame.eof) this.#eofAcked = true;
  }

  /**
   * The bytes of a DATA frame that are new: a frame that repeats bytes
   * already received gives only the rest, so each byte is delivered once.
   *
   * @param frame The DATA frame.
   * @returns How many new bytes are now readable.
   * @throws {SessionError} (`protocol`) for a gap in the byte sequence,
   *   bytes past the granted window, or bytes past the peer's EOF.
   */
  onData(frame: DataFrame): number {
    const end = frame.offset + frame.payload.length;
    if (frame.offset > this.#received) {
      throw new SessionError(
        "protocol",
        `stream ${this.id}: DATA at offset ${frame.offset}, expected ${this.#received} (bytes missing)`,
      );
    }
    if (this.#peerEnd !== undefined && end > this.#peerEnd) {
      throw new SessionError(
        "protocol",
        `stream ${this.id}: DATA past the EOF at ${this.#peerEnd}`,
      );
    }
    if (end > this.#cap) {
      throw new SessionError(
        "protocol",
        `stream ${this.id}: DATA up to ${end} before the stream was accepted overruns the early window of ${this.#cap} bytes`,
      );
    }
    if (end > this.#read + this.#window) {
      throw new SessionError(
        "protocol",
        `stream ${this.id}: DATA up to ${end} overruns the window, which ends at ${
          this.#read + this.#window
        }`,
      );
    }
    if (end <= this.#received) return 0;
    this.#inbox.push(frame.payload.subarray(this.#received - frame.offset));
    const fresh = end - this.#received;
    this.#received = end;
    return fresh;
  }

  /**
   * The peer's EOF; a repeated one (after a resend) is ignored.
   *
   * @param frame The EOF frame.
   * @throws {SessionError} (`protocol`) when the final offset is not where
   *   the byte sequence stands, or differs from an earlier EOF.
   */
  onEof(frame: EofFrame): void {
    if (this.#peerEnd === frame.offset) return;
    if (this.#peerEnd !== undefined || frame.offset !== this.#received) {
      throw new SessionError(
        "protocol",
        `stream ${this.id}: EOF at ${frame.offset}, but ${this.#received} bytes were received${
          this.#peerEnd === undefined ? "" : ` and EOF was at ${this.#peerEnd}`
        }`,
      );
    }
    this.#peerEnd = frame.offset;
  }

  /**
   * Takes received bytes; reading is what opens the window again.
   *
   * @param max Most bytes to take.
   * @returns The bytes, empty when none are waiting.
   */
  read(max = Infinity): Uint8Array {
    const out = new Uint8Array(Math.min(max, this.readable));
    this.readInto(out);
    return out;
  }

  /**
   * Takes received bytes into `buffer`, copied once from the DATA frames
   * they came in.
   *
   * @param buffer Where to put them.
   * @returns How many bytes were taken: 0 when none are waiting.
   */
  readInto(buffer: Uint8Array): number {
    const size = Math.min(buffer.length, this.readable);
    let filled = 0;
    while (filled < size) {
      const head = this.#inbox[0];
      const n = Math.min(size - filled, head.length);
      buffer.set(n === head.length ? head : head.subarray(0, n), filled);
      filled += n;
      if (n === head.length) this.#inbox.shift();
      else this.#inbox[0] = head.subarray(n);
    }
    this.#read += size;
    return size;
  }

  /**
   * Whether an ACK should go out: the peer's EOF is unacknowledged, or the
   * received offset or the window moved by a step (a quarter of the
   * window, at most {@link ACK_STEP_BYTES}; by anything, when `eager`: the
   * outbound queue is otherwise idle).
   *
   * @param eager Acknowledge any progress.
   */
  ackDue(eager: boolean): boolean {
    if (this.#peerEnd !== undefined && !this.#eofAckSent) return true;
    const step = eager
      ? 1
      : Math.max(1, Math.min(this.#window >>> 2, ACK_STEP_BYTES));
    return this.#received - this.#ackedTo >= step ||
      this.#read + this.#window - this.#grantedTo >= step;
  }

  /** The ACK of everything received, with the window left. */
  takeAck(): AckFrame {
    const entry = this.resumeEntry();
    return {
      type: "ack",
      stream: this.id,
      offset: entry.offset,
      window: entry.window,
      eof: entry.eof,
    };
  }

  /**
   * This side's receive state, for HELLO or WELCOME; it counts as an ACK.
   *
   * @returns The stream's entry.
   */
  resumeEntry(): ResumeEntry {
    this.#ackedTo = this.#received;
    this.#grantedTo = Math.min(this.#read + this.#window, this.#cap);
    if (this.#peerEnd !== undefined) this.#eofAckSent = true;
    return {
      stream: this.id,
      offset: this.#received,
      window: this.#grantedTo - this.#received,
      eof: this.#peerEnd !== undefined,
    };
  }

  /**
   * The peer opened the stream and it is not accepted yet: the peer may
   * send {@link EARLY_WINDOW} bytes, no more, and they are held.
   */
  holdEarly(): void {
    this.#cap = EARLY_WINDOW;
    this.#grantedTo = Math.min(this.#grantedTo, EARLY_WINDOW);
  }

  /** The stream was accepted: OPENED grants the whole window. */
  accepted(): void {
    this.#cap = Infinity;
    this.#grantedTo = Math.max(this.#grantedTo, this.#window);
  }

  /**
   * The peer never got this side's OPEN (or refused it and the refusal
   * was lost): everything goes again from offset 0, within the early
   * window, behind a new OPEN.
   *
   * @returns Whether it can: not when the peer acknowledged bytes of the
   *   stream, which are no longer kept (a peer may do that before OPENED
   *   only through a resume, or if it predates early data).
   */
  restart(): boolean {
    if (this.#acked > 0 || this.#eofAcked) return false;
    this.#next = 0;
    this.#peerLimit = EARLY_WINDOW;
    this.#eofSent = false;
    return true;
  }

  /**
   * After a reconnect, the peer's receive state: sending starts again at
   * the offset the peer has, and an EOF it did not get goes again.
   *
   * @param entry The peer's entry for this stream.
   * @throws {SessionError} (`protocol`) when the peer claims bytes never
   *   sent, or fewer than it had acknowledged.
   */
  rewind(entry: ResumeEntry): void {
    if (entry.offset < this.#acked || entry.offset > this.#highest) {
      throw new SessionError(
        "protocol",
        `stream ${this.id}: the peer resumes at offset ${entry.offset}, outside the ${this.#acked}–${this.#highest} it may have`,
      );
    }
    if (entry.eof && !this.#eofSent) {
      throw new SessionError(
        "protocol",
        `stream ${this.id}: the peer resumes with an EOF that was not sent`,
      );
    }
    this.#release(entry.offset);
    this.#next = entry.offset;
    this.#peerLimit = entry.offset + entry.window;
    this.#eofSent = entry.eof;
    this.#eofAcked = entry.eof;
  }

  /**
   * The peer finished the stream and forgot it (it is not in its resume
   * entries): it had this side's EOF, and knows this side had its EOF.
   * Only the unread bytes are left; the stream is done when they are read.
   */
  peerFinished(): void {
    this.#release(this.#written);
    this.#eofAcked = true;
    this.#eofAckSent = true;
  }

  /** Drops every kept and received byte: the stream was reset. */
  clear(): void {
    this.#blocks = [];
    this.#spare = [];
    this.#inbox = [];
    this.#acked = this.#next = this.#written;
    this.#read = this.#received;
    this.#finishing = true;
  }

  /** Drops kept bytes below `offset`, which the peer has. */
  #release(offset: number): void {
    let drop = offset - this.#acked;
    if (drop <= 0) return;
    this.#acked = offset;
    while (drop > 0) {
      const first = this.#blocks[0];
      const kept = first.length - first.start;
      if (drop < kept) {
        first.start += drop;
        return;
      }
      drop -= kept;
      this.#blocks.shift();
      if (this.#spare.length < SPARE_BLOCKS) this.#spare.push(first.bytes);
    }
    if (this.#blocks.length === 0) this.#spare = [];
  }
}
