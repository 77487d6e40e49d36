/**
 * A session: many streams over one transport at a time, kept across
 * transports. Pure state, no I/O: the transport pump feeds received frames
 * to {@link Session.receive} and sends what {@link Session.nextFrame}
 * gives; the application opens, writes, reads and closes streams, and
 * learns what happened from {@link Session.drainEvents}.
 *
 * ```
 * application ── open/write/read/finish/reset ──▶ Session ◀── receive(frame) ── transport
 *             ◀──────── drainEvents() ────────── Session ─── nextFrame() ───▶ transport
 * ```
 *
 * Outbound order: control frames (OPEN, OPENED, REFUSE, RESET, GOAWAY)
 * first, then ACKs that moved by a step (a quarter window, at most
 * `ACK_STEP_BYTES`), then DATA and EOF one frame per stream in turn (round
 * robin), then any ACK still owed. A stream whose peer window is closed
 * is skipped, so it never holds up the others.
 * The session does not say when a frame becomes ready: the pump drains
 * {@link Session.nextFrame} after every call that may have made one (a
 * received frame, a write, a read, an open, a finish, a reset).
 *
 * A stream's first bytes travel right behind its OPEN, within
 * {@link EARLY_WINDOW}: the accepter holds them until its application
 * accepts (they are read then) or refuses (they are dropped), and
 * acknowledges nothing before its OPENED.
 *
 * When the transport dies, {@link Session.transportLost} keeps every
 * unacknowledged byte; on the next transport both sides exchange their
 * receive offsets (HELLO, WELCOME) and {@link Session.resume} rewinds each
 * stream to what the peer has. A session not resumed within the resume
 * window expires: {@link Session.expire} resets its streams.
 *
 * @module
 */

import { sameBytes } from "../net/bytes.ts";
import { SessionError } from "./errors.ts";
import {
  clipReason,
  type Frame,
  MAX_RESUME_ENTRIES,
  type RefuseCode,
  type ResumeEntry,
  SESSION_ID_BYTES,
  type WelcomeFrame,
} from "./frame.ts";
import { EARLY_WINDOW, Stream, type StreamOptions } from "./stream.ts";

/** Which end: the client opens odd stream ids, the server even ones. */
export type SessionRole = "client" | "server";

/** Bounds and clock of a {@link Session}. */
export interface SessionOptions extends StreamOptions {
  /** Which end this is. */
  readonly role: SessionRole;
  /**
   * Most streams open at once, both directions together; a peer's OPEN
   * past it is refused with `limit`.
   * @default 256
   */
  readonly maxStreams?: number;
  /**
   * Most unacknowledged bytes kept for all streams together.
   * @default 4194304
   */
  readonly sessionBufferBytes?: number;
  /**
   * Most payload bytes per DATA frame: smaller frames interleave streams
   * more finely, larger ones cost less per byte.
   * @default 65536
   */
  readonly maxPayload?: number;
  /**
   * How long after its transport died the session may still be resumed.
   * @default 60000
   */
  readonly resumeWindowMs?: number;
  /**
   * The clock, in milliseconds.
   * @default Date.now
   */
  readonly now?: () => number;
}

/** Default of {@link SessionOptions.maxStreams}. */
export const DEFAULT_MAX_STREAMS = 256;
/** Default of {@link SessionOptions.sessionBufferBytes}. */
export const DEFAULT_SESSION_BUFFER_BYTES = 4 * 1024 * 1024;
/** Default of {@link SessionOptions.maxPayload}. */
export const DEFAULT_MAX_PAYLOAD = 64 * 1024;
/** Default of {@link SessionOptions.resumeWindowMs}. */
export const DEFAULT_RESUME_WINDOW_MS = 60_000;
// Control frames queued beyond one per stream before a peer that keeps
// opening past the cap is cut off.
const CONTROL_SLACK = 64;

/** The reason streams are reset with when the resume window passed. */
export const EXPIRED_REASON = "resume window expired";

/** What happened, for the application. */
export type SessionEvent =
  /** The peer asks for a stream to `host:port`: accept or refuse it. */
  | {
    readonly kind: "open";
    readonly stream: number;
    readonly host: string;
    readonly port: number;
  }
  /**
   * A stream this side opened was accepted: the peer's window replaces
   * the early window.
   */
  | { readonly kind: "opened"; readonly stream: number }
  /** A stream this side opened was refused; it is gone. */
  | {
    readonly kind: "refused";
    readonly stream: number;
    readonly code: RefuseCode;
    readonly reason: string;
  }
  /** Bytes wait to be read. */
  | { readonly kind: "readable"; readonly stream: number }
  /** A stream whose write fell short may take bytes again. */
  | { readonly kind: "writable"; readonly stream: number }
  /** The peer will send no more; what was received may still be read. */
  | { readonly kind: "eof"; readonly stream: number }
  /** Both directions finished; the stream is gone. */
  | { readonly kind: "closed"; readonly stream: number }
  /** The stream was abandoned (by the peer, or by expiry); it is gone. */
  | { readonly kind: "reset"; readonly stream: number; readonly reason: string }
  /** The peer is closing this transport; the session lives on. */
  | { readonly kind: "goaway"; readonly reason: string };

/** How far a stream has got in being opened. */
type Phase =
  | "opening" // this side sent OPEN, no answer yet
  | "accepting" // the peer sent OPEN, the application has not answered
  | "open";

interface Entry {
  readonly stream: Stream;
  readonly local: boolean;
  readonly host: string;
  readonly port: number;
  phase: Phase;
}

/**
 * A session's streams and their outbound frames.
 *
 * @example
 * ```ts
 * const client = new Session({ role: "client" });
 * const id = client.open("db.internal", 5432); // 1
 * client.write(id, new TextEncoder().encode("hello"));
 * client.hello(); // the transport sends this first, then:
 * // client.welcome(welcomeFrameFromServer);
 * // for (let f; (f = client.nextFrame());) send(encodeFrame(f));
 * // for (const f of decoder.push(bytes)) client.receive(f);
 * // for (const event of client.drainEvents()) ...
 * ```
 */
export class Session {
  readonly #role: SessionRole;
  readonly #streamOptions: StreamOptions;
  readonly #maxStreams: number;
  readonly #bufferLimit: number;
  readonly #maxPayload: number;
  readonly #resumeWindowMs: number;
  readonly #now: () => number;

  #id: Uint8Array | undefined;
  #entries = new Map<number, Entry>();
  #order: number[] = []; // ids in the order the round robin visits them
  #cursor = 0;
  #control: Frame[] = [];
  #ackCandidates = new Set<number>();
  #blockedWriters = new Set<number>();
  // Streams this side reset, with the reason, so that a RESET lost in a
  // cut can be sent again; the oldest are forgotten past maxStreams.
  #resets = new Map<number, string>();
  #events: SessionEvent[] = [];
  #nextId: number;
  #highestPeerId = 0;
  #connected = false;
  #lostAt: number;
  #expired = false;

  /**
   * A session with no streams and no transport yet.
   *
   * @param options Role, bounds and clock.
   * @throws {RangeError} for a `receiveWindow` below {@link EARLY_WINDOW}.
   */
  constructor(options: SessionOptions) {
    if (
      options.receiveWindow !== undefined &&
      options.receiveWindow < EARLY_WINDOW
    ) {
      throw new RangeError(
        `receiveWindow is ${options.receiveWindow} bytes; it must be at least ${EARLY_WINDOW} (EARLY_WINDOW), what a peer may send before OPENED`,
      );
    }
    this.#role = options.role;
    this.#streamOptions = {
      sendBufferBytes: options.sendBufferBytes,
      receiveWindow: options.receiveWindow,
    };
    // Resume entries list the streams and as many reset ones.
    this.#maxStreams = Math.min(
      options.maxStreams ?? DEFAULT_MAX_STREAMS,
      MAX_RESUME_ENTRIES / 2,
    );
    this.#bufferLimit = options.sessionBufferBytes ??
      DEFAULT_SESSION_BUFFER_BYTES;
    this.#maxPayload = options.maxPayload ?? DEFAULT_MAX_PAYLOAD;
    this.#resumeWindowMs = options.resumeWindowMs ?? DEFAULT_RESUME_WINDOW_MS;
    this.#now = options.now ?? Date.now;
    this.#nextId = this.#role === "client" ? 1 : 2;
    this.#lostAt = this.#now();
  }

  /** The session's id, once the server gave one. */
  get id(): Uint8Array | undefined {
    return this.#id;
  }

  /** Whether a transport carries the session now. */
  get connected(): boolean {
    return this.#connected;
  }

  /** Streams in the session, both directions. */
  get streamCount(): number {
    return this.#entries.size;
  }

  /** Unacknowledged bytes kept, all streams together. */
  get buffered(): number {
    let total = 0;
    for (const { stream } of this.#entries.values()) total += stream.buffered;
    return total;
  }

  /** Received bytes not yet read, all streams together. */
  get unread(): number {
    let total = 0;
    for (const { stream } of this.#entries.values()) total += stream.readable;
    return total;
  }

  /**
   * Opens a stream to `host:port` at the far end. Bytes may be written at
   * once: the first {@link EARLY_WINDOW} of them go out right behind the
   * OPEN, the rest after the peer's OPENED.
   *
   * @param host A host name or IP address (IPv6 without brackets).
   * @param port 1–65535.
   * @returns The stream's id.
   * @throws {SessionError} (`limit`) at `maxStreams`, (`state`) after expiry.
   */
  open(host: string, port: number): number {
    this.#checkAlive();
    if (this.#entries.size >= this.#maxStreams) {
      throw new SessionError(
        "limit",
        `cannot open a stream to ${host}:${port}: ${this.#maxStreams} streams are open, the session's limit (maxStreams)`,
      );
    }
    const id = this.#nextId;
    this.#nextId += 2;
    const stream = new Stream(id, this.#streamOptions);
    stream.grant(EARLY_WINDOW);
    this.#add({ stream, local: true, host, port, phase: "opening" });
    this.#control.push({
      type: "open",
      stream: id,
      host,
      port,
      window: stream.receiveWindow,
    });
    return id;
  }

  /**
   * Accepts a stream the peer asked for (an `open` event).
   *
   * @param id The stream.
   * @throws {SessionError} (`state`) when the stream is not waiting for it.
   */
  accept(id: number): void {
    const entry = this.#pending(id, "accept");
    entry.phase = "open";
    entry.stream.accepted();
    this.#control.push({
      type: "opened",
      stream: id,
      window: entry.stream.receiveWindow,
    });
    // Early bytes and an early EOF are acknowledged from now on.
    this.#ackCandidates.add(id);
  }

  /**
   * Refuses a stream the peer asked for (an `open` event); bytes it sent
   * early are dropped with it.
   *
   * @param id The stream.
   * @param code Why, as a code.
   * @param reason Why, for the peer's log.
   * @throws {SessionError} (`state`) when the stream is not waiting for it.
   */
  refuse(id: number, code: RefuseCode, reason: string): void {
    this.#pending(id, "refuse");
    this.#remove(id);
    this.#control.push({
      type: "refuse",
      stream: id,
      code,
      reason: clipReason(reason),
    });
  }

  /**
   * Keeps bytes to send on a stream, as many as its bound and the
   * session's bound allow.
   *
   * @param id The stream.
   * @param bytes The bytes (copied).
   * @returns How many were taken; fewer than all means wait for a
   *   `writable` event before writing the rest.
   * @throws {SessionError} (`state`) for a stream that is not open for
   *   writing.
   */
  write(id: number, bytes: Uint8Array): number {
    const entry = this.#writableEntry(id);
    const room = Math.max(0, this.#bufferLimit - this.buffered);
    const taken = entry.stream.write(bytes, room);
    if (taken < bytes.length) this.#blockedWriters.add(id);
    return taken;
  }

  /**
   * Takes received bytes of a stream; reading opens the peer's window.
   *
   * @param id The stream.
   * @param max Most bytes.
   * @returns The bytes, empty when none wait.
   */
  read(id: number, max = Infinity): Uint8Array {
    const readable = this.#entries.get(id)?.stream.readable ?? 0;
    const out = new Uint8Array(Math.min(max, readable));
    this.readInto(id, out);
    return out;
  }

  /**
   * Takes received bytes of a stream into `buffer`; reading opens the
   * peer's window.
   *
   * @param id The stream.
   * @param buffer Where to put them.
   * @returns How many bytes were taken: 0 when none wait.
   */
  readInto(id: number, buffer: Uint8Array): number {
    const entry = this.#entries.get(id);
    if (!entry) return 0;
    const n = entry.stream.readInto(buffer);
    if (n > 0) this.#owe(entry);
    this.#settle(entry);
    return n;
  }

  /**
   * Bytes of a stream received and not yet read.
   *
   * @param id The stream.
   */
  readable(id: number): number {
    return this.#entries.get(id)?.stream.readable ?? 0;
  }

  /**
   * Whether a stream ended: the peer's EOF came and everything before it
   * was read.
   *
   * @param id The stream.
   */
  ended(id: number): boolean {
    return this.#entries.get(id)?.stream.ended ?? true;
  }

  /**
   * Closes the sending side of a stream (half-close): EOF follows the
   * bytes written; the other direction goes on.
   *
   * @param id The stream.
   */
  finish(id: number): void {
    this.#writableEntry(id).stream.finish();
  }

  /**
   * Abandons a stream in both directions and tells the peer.
   *
   * @param id The stream.
   * @param reason Why, for the peer's log.
   */
  reset(id: number, reason: string): void {
    if (!this.#entries.has(id)) return;
    this.#remove(id);
    const clipped = clipReason(reason);
    this.#resets.set(id, clipped);
    if (this.#resets.size > this.#maxStreams) {
      this.#resets.delete(this.#resets.keys().next().value!);
    }
    this.#control.push({ type: "reset", stream: id, reason: clipped });
  }

  /**
   * Tells the peer this transport is closing (shutdown, or a newer
   * transport took over); the session can be resumed on another.
   *
   * @param reason Why.
   */
  goaway(reason: string): void {
    this.#control.push({ type: "goaway", reason: clipReason(reason) });
  }

  /**
   * The next frame to send, or `undefined` when there is none (or no
   * transport). Frames taken count as sent: if the transport dies before
   * they arrive, {@link resume} sends their bytes again.
   *
   * @param eagerAcks Whether to give ACKs of any progress (not only of a
   *   step, or of an EOF) when nothing else waits. A transport may hold
   *   these back briefly, so that a request and its answer do not each
   *   cost a message of their own for an ACK.
   */
  nextFrame(eagerAcks = true): Frame | undefined {
    if (!this.#connected) return undefined;
    const control = this.#control.shift();
    if (control) return control;
    return this.#takeAck(false) ?? this.#takeStreamFrame() ??
      (eagerAcks ? this.#takeAck(true) : undefined);
  }

  /** Whether some stream may owe the peer an ACK of any progress. */
  get acksOwed(): boolean {
    return this.#connected && this.#ackCandidates.size > 0;
  }

  /**
   * Takes a frame the peer sent (any but HELLO and WELCOME, which
   * {@link SessionTable} and {@link welcome} take).
   *
   * @param frame The frame.
   * @throws {SessionError} (`protocol`) for a frame the session's state
   *   forbids; the transport should then be closed. (`state`) while no
   *   transport carries the session.
   */
  receive(frame: Frame): void {
    if (!this.#connected) {
      throw new SessionError(
        "state",
        `${frame.type} frame for a session without a transport (read after the transport was lost or replaced)`,
      );
    }
    if (frame.type === "hello" || frame.type === "welcome") {
      throw new SessionError(
        "protocol",
        `${frame.type} frame in the middle of a session`,
      );
    }
    if (frame.type === "goaway") {
      this.#events.push({ kind: "goaway", reason: frame.reason });
      return;
    }
    if (frame.type === "open") {
      this.#peerOpen(frame.stream, frame.host, frame.port, frame.window);
      return;
    }
    const entry = this.#entries.get(frame.stream);
    if (!entry) {
      this.#unknownStream(frame.stream, frame.type);
      return;
    }
    const { stream } = entry;
    switch (frame.type) {
      case "opened":
        this.#expectLocal(entry, frame.type);
        checkWindow(frame.stream, frame.type, frame.window);
        stream.grant(frame.window);
        if (entry.phase === "opening") {
          entry.phase = "open";
          this.#events.push({ kind: "opened", stream: stream.id });
        }
        break;
      case "refuse":
        this.#expectLocal(entry, frame.type);
        if (entry.phase !== "opening") {
          throw new SessionError(
            "protocol",
            `stream ${stream.id}: REFUSE after the stream was opened`,
          );
        }
        this.#remove(stream.id);
        this.#events.push({
          kind: "refused",
          stream: stream.id,
          code: frame.code,
          reason: frame.reason,
        });
        break;
      case "data":
        if (stream.onData(frame) > 0) {
          this.#events.push({ kind: "readable", stream: stream.id });
        }
        this.#owe(entry);
        break;
      case "eof":
        stream.onEof(frame);
        this.#events.push({ kind: "eof", stream: stream.id });
        this.#owe(entry);
        break;
      case "ack":
        stream.onAck(frame);
        this.#wakeWriters();
        break;
      case "reset":
        this.#remove(stream.id);
        this.#events.push({
          kind: "reset",
          stream: stream.id,
          reason: frame.reason,
        });
        return;
    }
    this.#settle(entry);
  }

  /** Events since the last call, oldest first. */
  drainEvents(): SessionEvent[] {
    const events = this.#events;
    this.#events = [];
    return events;
  }

  /**
   * The client's HELLO for a new transport: a new session, or this one
   * with its receive state.
   *
   * @returns The frame to send first.
   */
  hello(): Frame {
    if (!this.#id) return { type: "hello", streams: [] };
    return { type: "hello", session: this.#id, streams: this.resumeEntries() };
  }

  /**
   * The client takes the server's WELCOME: the session goes on (`resumed`,
   * streams rewound to what the server has), starts (`new`), or is
   * replaced by a new one (`refused`: every stream is reset).
   *
   * @param frame The WELCOME.
   * @throws {SessionError} (`protocol`) for a WELCOME that contradicts
   *   this side's state.
   */
  welcome(frame: WelcomeFrame): void {
    if (frame.resume === "resumed") {
      if (!this.#id || !sameBytes(this.#id, frame.session)) {
        throw new SessionError(
          "protocol",
          "the server resumed a session this client did not ask for",
        );
      }
      this.resume(frame.streams);
      return;
    }
    this.#checkAlive();
    // A session asked for and not resumed is gone at the server, and with
    // it every stream the server knew.
    if (this.#id) {
      this.#resets.clear();
      this.#resetAll(
        "the server did not resume the session (its resume window passed, or it restarted)",
      );
    }
    this.#id = frame.session.slice();
    this.#connected = true;
  }

  /**
   * This side's receive state of every stream, for HELLO or WELCOME.
   *
   * @returns One entry per stream.
   */
  resumeEntries(): ResumeEntry[] {
    const entries = [...this.#entries.values()].map(({ stream }) =>
      stream.resumeEntry()
    );
    for (const stream of this.#resets.keys()) {
      entries.push({ stream, offset: 0, window: 0, eof: false, reset: true });
    }
    return entries;
  }

  /**
   * Sets the session's id (the server's {@link SessionTable} does).
   *
   * @param id {@link SESSION_ID_BYTES} bytes.
   */
  assignId(id: Uint8Array): void {
    if (id.length !== SESSION_ID_BYTES) {
      throw new RangeError(`a session id has ${SESSION_ID_BYTES} bytes`);
    }
    this.#id = id.slice();
  }

  /**
   * Starts the session on a transport without resumption (a new session).
   */
  connect(): void {
    this.#checkAlive();
    this.#connected = true;
  }

  /**
   * The transport died: frames in flight are lost, nothing else. Unacked
   * bytes stay for {@link resume}; the resume window starts.
   */
  transportLost(): void {
    if (!this.#connected) return;
    this.#connected = false;
    this.#lostAt = this.#now();
    this.#control = [];
  }

  /**
   * Goes on over a new transport from the peer's receive state: each
   * stream resends from the offset the peer has (the resent frames come
   * out of {@link nextFrame}); a stream this side opened whose OPEN never
   * arrived is opened again; a RESET the peer did not get is sent again. A
   * stream the peer no longer has was finished by it: its unread bytes
   * can still be read (if this side had finished too; else it is reset).
   *
   * @param peer The peer's entries (its HELLO or WELCOME).
   * @throws {SessionError} (`protocol`) when an entry claims bytes never
   *   sent.
   */
  resume(peer: readonly ResumeEntry[]): void {
    this.#checkAlive();
    this.#control = [];
    const entries = new Map(peer.map((entry) => [entry.stream, entry]));
    for (const entry of [...this.#entries.values()]) {
      const { stream, local, phase } = entry;
      const theirs = entries.get(stream.id);
      if (theirs?.reset) continue; // its RESET follows, with the reason
      if (theirs) {
        stream.rewind(theirs);
        // The peer may not have seen OPENED; a repeated one changes nothing.
        if (!local && phase === "open") {
          this.#control.push({
            type: "opened",
            stream: stream.id,
            window: stream.receiveWindow,
          });
        }
        this.#owe(entry);
      } else if (local && phase === "opening" && stream.restart()) {
        // The OPEN never arrived, or its REFUSE was lost: ask again, with
        // the early bytes from the start (none can have been received).
        this.#control.push({
          type: "open",
          stream: stream.id,
          host: entry.host,
          port: entry.port,
          window: stream.receiveWindow,
        });
      } else if (stream.sentAll && stream.peerEnded) {
        // The peer finished the stream and forgot it; what it sent may
        // still wait here to be read.
        stream.peerFinished();
        this.#settle(entry);
      } else {
        this.#remove(stream.id);
        this.#events.push({
          kind: "reset",
          stream: stream.id,
          reason: "the peer no longer had the stream after the reconnect",
        });
      }
    }
    // RESETs the peer did not get, sent again with their reasons.
    for (const entry of peer) {
      const reason = this.#resets.get(entry.stream);
      if (reason !== undefined && !entry.reset) {
        this.#control.push({ type: "reset", stream: entry.stream, reason });
      }
    }
    this.#connected = true;
    this.#wakeWriters();
  }

  /** Whether the transport has been gone for the resume window. */
  get expired(): boolean {
    return this.#expired ||
      (!this.#connected && this.#now() - this.#lostAt >= this.#resumeWindowMs);
  }

  /**
   * Ends the session: every stream is reset with `reason` (a `reset`
   * event each) and the session cannot be used again.
   *
   * @param reason Why, e.g. {@link EXPIRED_REASON}.
   */
  expire(reason: string = EXPIRED_REASON): void {
    this.#resetAll(reason);
    this.#connected = false;
    this.#expired = true;
  }

  #resetAll(reason: string): void {
    for (const id of [...this.#entries.keys()]) {
      this.#remove(id);
      this.#events.push({ kind: "reset", stream: id, reason });
    }
  }

  #checkAlive(): void {
    if (this.#expired) {
      throw new SessionError("state", "the session has expired");
    }
  }

  #add(entry: Entry): void {
    this.#entries.set(entry.stream.id, entry);
    this.#order.push(entry.stream.id);
  }

  #remove(id: number): void {
    const entry = this.#entries.get(id);
    if (!entry) return;
    entry.stream.clear();
    this.#entries.delete(id);
    const at = this.#order.indexOf(id);
    this.#order.splice(at, 1);
    if (at < this.#cursor) this.#cursor--;
    this.#ackCandidates.delete(id);
    this.#blockedWriters.delete(id);
    this.#wakeWriters();
  }

  #pending(id: number, what: string): Entry {
    const entry = this.#entries.get(id);
    if (!entry || entry.phase !== "accepting") {
      throw new SessionError(
        "state",
        `stream ${id}: cannot ${what}, no OPEN from the peer waits for an answer`,
      );
    }
    return entry;
  }

  #writableEntry(id: number): Entry {
    const entry = this.#entries.get(id);
    if (!entry || entry.phase === "accepting") {
      throw new SessionError(
        "state",
        `stream ${id} is not open (never opened, refused, reset or closed)`,
      );
    }
    return entry;
  }

  #expectLocal(entry: Entry, type: string): void {
    if (!entry.local) {
      throw new SessionError(
        "protocol",
        `stream ${entry.stream.id}: ${type} for a stream the peer opened`,
      );
    }
  }

  #isPeerId(id: number): boolean {
    return (id % 2 === 1) === (this.#role === "server");
  }

  #peerOpen(id: number, host: string, port: number, window: number): void {
    if (!this.#isPeerId(id) || this.#entries.has(id)) {
      throw new SessionError(
        "protocol",
        `OPEN of stream ${id}, which is ${
          this.#entries.has(id) ? "in use" : "not the peer's to open"
        }`,
      );
    }
    checkWindow(id, "open", window);
    this.#highestPeerId = Math.max(this.#highestPeerId, id);
    if (this.#entries.size >= this.#maxStreams) {
      // Refusals are the one kind of frame a peer can make this side
      // queue without end: by opening past the cap and not reading.
      if (this.#control.length >= this.#maxStreams + CONTROL_SLACK) {
        throw new SessionError(
          "limit",
          `the peer keeps opening streams past the limit of ${this.#maxStreams} without reading the refusals`,
        );
      }
      this.#control.push({
        type: "refuse",
        stream: id,
        code: "limit",
        reason: `${this.#maxStreams} streams are open, the session's limit`,
      });
      return;
    }
    const stream = new Stream(id, this.#streamOptions);
    stream.grant(window);
    stream.holdEarly();
    this.#add({ stream, local: false, host, port, phase: "accepting" });
    this.#events.push({ kind: "open", stream: id, host, port });
  }

  // Frames for a stream this side has dropped (reset, refused, closed)
  // may still arrive: the peer sent them before it learnt. A stream id
  // never used is the peer's mistake.
  #unknownStream(id: number, type: string): void {
    const used = this.#isPeerId(id)
      ? id <= this.#highestPeerId
      : id < this.#nextId;
    if (!used) {
      throw new SessionError(
        "protocol",
        `${type} frame for stream ${id}, which was never opened`,
      );
    }
  }

  // A stream not accepted yet acknowledges nothing: its ACK would grant
  // the peer its whole window before OPENED. accept() owes it then.
  #owe(entry: Entry): void {
    if (entry.phase !== "accepting") this.#ackCandidates.add(entry.stream.id);
  }

  #settle(entry: Entry): void {
    if (entry.stream.done) {
      this.#remove(entry.stream.id);
      this.#events.push({ kind: "closed", stream: entry.stream.id });
    }
  }

  #wakeWriters(): void {
    if (this.#blockedWriters.size === 0) return;
    if (this.buffered >= this.#bufferLimit) return;
    for (const id of this.#blockedWriters) {
      if (this.#entries.get(id)?.stream.writable) {
        this.#blockedWriters.delete(id);
        this.#events.push({ kind: "writable", stream: id });
      }
    }
  }

  #takeAck(eager: boolean): Frame | undefined {
    for (const id of this.#ackCandidates) {
      const entry = this.#entries.get(id)!;
      if (!entry.stream.ackDue(eager)) {
        if (eager) this.#ackCandidates.delete(id);
        continue;
      }
      const ack = entry.stream.takeAck();
      if (eager || !entry.stream.ackDue(true)) this.#ackCandidates.delete(id);
      this.#settle(entry);
      return ack;
    }
    return undefined;
  }

  #takeStreamFrame(): Frame | undefined {
    const count = this.#order.length;
    for (let i = 0; i < count; i++) {
      const at = (this.#cursor + i) % count;
      const entry = this.#entries.get(this.#order[at])!;
      // An opening stream sends within the early window; one the peer
      // opened waits for the application's answer.
      if (entry.phase === "accepting") continue;
      const frame = entry.stream.takeData(this.#maxPayload) ??
        entry.stream.takeEof();
      if (frame) {
        this.#cursor = (at + 1) % count;
        return frame;
      }
    }
    return undefined;
  }
}

// OPEN and OPENED announce the window the other side may fill; below
// EARLY_WINDOW, early bytes could overrun it.
function checkWindow(stream: number, type: string, window: number): void {
  if (window < EARLY_WINDOW) {
    throw new SessionError(
      "protocol",
      `stream ${stream}: ${type.toUpperCase()} with a window of ${window} bytes, below the early window of ${EARLY_WINDOW}`,
    );
  }
}
