/**
 * One end of a session at work: the {@link Session} state machine driven
 * by a transport, and each of its streams as a {@link Duplex}. The
 * transport glue (serve's WebSocket, the client's session pool) decodes
 * frames and hands them to {@link SessionEndpoint.receive}; the endpoint
 * sends what the session has to send through the attached
 * {@link FrameSink}, as long as the sink's backlog stays under a high-water
 * mark, so a slow transport slows the streams (their windows fill) instead
 * of growing a queue.
 *
 * ```
 * SessionStream.read/write/closeWrite/close ─▶ Session ─ nextFrame ─▶ FrameSink
 *            ▲ wake                                ▲ receive(frames)
 *            └──────── events ◀────────────────────┘◀── transport glue
 * ```
 *
 * @module
 */

import type { Duplex } from "../net/duplex.ts";
import { SessionError } from "./errors.ts";
import { encodeFrameParts, type Frame, type RefuseCode } from "./frame.ts";
import type { Session } from "./session.ts";

/** Where an endpoint's encoded frames go: the current transport. */
export interface FrameSink {
  /**
   * Sends encoded frames, in order, as one transport message of at most
   * {@link BATCH_BYTES}. The pieces are copied (or sent) before this
   * returns.
   */
  send(parts: readonly Uint8Array[]): void;
  /** Bytes given to {@link send} that are not yet on the wire. */
  readonly backlog: number;
}

/** Frames are sent while the sink holds less than this. */
export const SINK_HIGH_WATER_BYTES = 1024 * 1024;

/**
 * Frames are batched into one transport message up to this size: each
 * message costs a WebSocket frame, its mask and a wake-up of the peer. A
 * message stays below 128 KiB, from where glibc maps each allocation
 * afresh when `MALLOC_MMAP_THRESHOLD_` is set (as `deno task start` does),
 * which costs page faults on every message.
 */
export const BATCH_BYTES = 128 * 1024 - 1024;
const RETRY_MS = 5;
/**
 * How long ACKs of small progress wait for other frames to travel with:
 * an answer to a request, usually. ACKs of a step or an EOF go at once,
 * so bulk transfers never wait for these.
 */
export const ACK_DELAY_MS = 20;

/** Callbacks of a {@link SessionEndpoint}. */
export interface EndpointHooks {
  /**
   * The peer opened a stream (the server side): answer with
   * `endpoint.accept` or `endpoint.refuse`.
   */
  readonly onOpen?: (stream: SessionStream, host: string, port: number) => void;
  /** The peer said it is closing this transport. */
  readonly onGoaway?: (reason: string) => void;
  /** The last stream is gone. */
  readonly onIdle?: () => void;
}

/** A stream the far end did not open. */
export class StreamRefusedError extends Error {
  /** Why, as the frame's code. */
  readonly code: RefuseCode;
  /** Why, as the peer wrote it. */
  readonly reason: string;

  /**
   * @param code The refusal code.
   * @param reason The peer's reason.
   */
  constructor(code: RefuseCode, reason: string) {
    super(`refused (${code}): ${reason}`);
    this.name = "StreamRefusedError";
    this.code = code;
    this.reason = reason;
  }
}

/** A session driven by one transport at a time. */
export class SessionEndpoint {
  /** The session's state. */
  readonly session: Session;
  readonly #hooks: EndpointHooks;
  readonly #streams = new Map<number, SessionStream>();
  #sink: FrameSink | undefined;
  #retry: ReturnType<typeof setTimeout> | undefined;
  #ackTimer: ReturnType<typeof setTimeout> | undefined;
  #openTimer: ReturnType<typeof setTimeout> | undefined;

  /**
   * @param session The session (already connected, or waiting for its
   *   transport).
   * @param hooks What to tell the owner.
   */
  constructor(session: Session, hooks: EndpointHooks = {}) {
    this.session = session;
    this.#hooks = hooks;
  }

  /** Streams with a {@link SessionStream}, both directions. */
  get streamCount(): number {
    return this.#streams.size;
  }

  /** The streams, for status pages. */
  streams(): IterableIterator<SessionStream> {
    return this.#streams.values();
  }

  /**
   * Sends the session's frames through `sink` from now on.
   *
   * @param sink The new transport.
   */
  attach(sink: FrameSink): void {
    this.#sink = sink;
    this.flush();
  }

  /** The transport is gone: nothing is sent until the next {@link attach}. */
  detach(): void {
    this.#sink = undefined;
    clearTimeout(this.#retry);
    this.#retry = undefined;
    clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    clearTimeout(this.#openTimer);
    this.#openTimer = undefined;
  }

  /**
   * Takes frames the peer sent, then sends what they made due.
   *
   * @param frames Decoded frames, in order.
   * @throws {SessionError} when the peer broke the session's rules: drop
   *   the transport.
   */
  receive(frames: readonly Frame[]): void {
    try {
      for (const frame of frames) this.session.receive(frame);
    } finally {
      this.#dispatch();
    }
    this.flush();
  }

  /**
   * Opens a stream to `host:port` at the far end (the client side). It
   * may be written to at once: the first bytes travel with the OPEN.
   * {@link SessionStream.opened} says when the far end accepted it; a
   * refusal is thrown by `opened`, and by reads and writes waiting then.
   *
   * @param host A host name or address.
   * @param port The port.
   * @param refusal The error a refusal becomes for this stream's users.
   *   @default the {@link StreamRefusedError} itself
   * @returns The stream.
   * @throws {SessionError} (`limit`) past the session's stream limit.
   */
  open(
    host: string,
    port: number,
    refusal?: (error: StreamRefusedError) => Error,
  ): SessionStream {
    const id = this.session.open(host, port);
    const stream = new SessionStream(this, id, "the client closed", refusal);
    this.#streams.set(id, stream);
    // The OPEN waits for the bytes written before the next turn of the
    // event loop (what a client sent already is read by then), so that
    // they go in its message; a stream nobody writes to yet opens then.
    this.#openTimer ??= setTimeout(() => {
      this.#openTimer = undefined;
      this.flush();
    }, 0);
    return stream;
  }

  /**
   * Accepts a stream the peer opened.
   *
   * @param stream The stream, from `onOpen`.
   */
  accept(stream: SessionStream): void {
    this.session.accept(stream.id);
    stream.markOpen();
    this.flush();
  }

  /**
   * Refuses a stream the peer opened.
   *
   * @param stream The stream, from `onOpen`.
   * @param code Why, as a code.
   * @param reason Why, for the peer's log.
   */
  refuse(stream: SessionStream, code: RefuseCode, reason: string): void {
    this.session.refuse(stream.id, code, reason);
    this.#forget(stream.id);
    stream.markReset(`refused: ${reason}`);
    this.flush();
  }

  /**
   * Ends the session: every stream is reset with `reason`.
   *
   * @param reason Why, e.g. the resume window passed.
   */
  expire(reason: string): void {
    this.session.expire(reason);
    this.#dispatch();
    this.detach();
  }

  /**
   * Sends what the session has, while the sink's backlog allows; tries
   * again shortly when it does not (a sink that calls this once it
   * drained is served then, without waiting for that retry).
   */
  flush(): void {
    this.#send(false);
  }

  #send(eagerAcks: boolean): void {
    const sink = this.#sink;
    if (sink !== undefined) {
      let batch: Uint8Array[] = [];
      let size = 0;
      let full = false;
      while (true) {
        if (sink.backlog + size >= SINK_HIGH_WATER_BYTES) {
          full = true;
          break;
        }
        const frame = this.session.nextFrame(eagerAcks);
        if (frame === undefined) break;
        const parts = encodeFrameParts(frame);
        let bytes = 0;
        for (const part of parts) bytes += part.length;
        // A frame that would take the batch past the bound starts the
        // next one.
        if (size + bytes > BATCH_BYTES && batch.length > 0) {
          sink.send(batch);
          batch = [];
          size = 0;
        }
        batch.push(...parts);
        size += bytes;
      }
      if (batch.length > 0) sink.send(batch);
      if (full) {
        // A sink that cannot say when it drained (serve's WebSocket) is
        // looked at again shortly.
        this.#retry ??= setTimeout(() => {
          this.#retry = undefined;
          this.flush();
        }, RETRY_MS);
      } else if (this.#ackTimer === undefined && this.session.acksOwed) {
        this.#ackTimer = setTimeout(() => {
          this.#ackTimer = undefined;
          this.#send(true);
        }, ACK_DELAY_MS);
      }
    }
    this.#dispatch();
  }

  #forget(id: number): void {
    this.#streams.delete(id);
    if (this.#streams.size === 0) this.#hooks.onIdle?.();
  }

  #dispatch(): void {
    for (const event of this.session.drainEvents()) {
      if (event.kind === "goaway") {
        this.#hooks.onGoaway?.(event.reason);
        continue;
      }
      if (event.kind === "open") {
        const stream = new SessionStream(
          this,
          event.stream,
          "the target's connection closed",
        );
        this.#streams.set(event.stream, stream);
        this.#hooks.onOpen?.(stream, event.host, event.port);
        continue;
      }
      const stream = this.#streams.get(event.stream);
      if (stream === undefined) continue;
      switch (event.kind) {
        case "opened":
          stream.markOpen();
          break;
        case "refused":
          this.#forget(event.stream);
          stream.markRefused(new StreamRefusedError(event.code, event.reason));
          break;
        case "readable":
        case "eof":
          stream.wakeReader();
          break;
        case "writable":
          stream.wakeWriter();
          break;
        case "closed":
          this.#forget(event.stream);
          stream.wakeReader();
          stream.wakeWriter();
          break;
        case "reset":
          this.#forget(event.stream);
          stream.markReset(event.reason);
          break;
      }
    }
  }

  /** @internal A stream's close: reset unless both directions finished. */
  closeStream(stream: SessionStream, reason: string): void {
    if (!this.#streams.has(stream.id)) return;
    if (stream.finished && this.session.ended(stream.id)) {
      // The last ACKs still have to cross; the session forgets the
      // stream when they have.
      return;
    }
    this.session.reset(stream.id, reason);
    this.#forget(stream.id);
    stream.markReset(reason);
    this.flush();
  }
}

/** One stream of a session as a byte stream. */
export class SessionStream implements Duplex {
  /** The stream's id in its session. */
  readonly id: number;
  /**
   * Settles when the far end answered the OPEN (this side's streams):
   * rejects with the refusal.
   */
  readonly opened: Promise<void>;
  readonly #endpoint: SessionEndpoint;
  readonly #closeReason: string;
  readonly #refusal: ((error: StreamRefusedError) => Error) | undefined;
  #resolveOpen!: () => void;
  #rejectOpen!: (error: Error) => void;
  #wakeRead: (() => void) | undefined;
  #wakeWrite: (() => void) | undefined;
  #reset: string | undefined;
  #refused: Error | undefined;
  #finished = false;
  #closed = false;

  /**
   * @param endpoint The endpoint the stream belongs to.
   * @param id The stream's id.
   * @param closeReason The reset reason when {@link close} cuts it short.
   * @param refusal The error a refusal becomes. @default the refusal
   */
  constructor(
    endpoint: SessionEndpoint,
    id: number,
    closeReason: string,
    refusal?: (error: StreamRefusedError) => Error,
  ) {
    this.#endpoint = endpoint;
    this.id = id;
    this.#closeReason = closeReason;
    this.#refusal = refusal;
    this.opened = new Promise((resolve, reject) => {
      this.#resolveOpen = resolve;
      this.#rejectOpen = reject;
    });
    // A refusal nobody waits for (the server's streams) is not unhandled.
    this.opened.catch(() => {});
  }

  /** Why the stream was reset, if it was. */
  get resetReason(): string | undefined {
    return this.#reset;
  }

  /** Bytes received and not yet read. */
  get readable(): number {
    return this.#endpoint.session.readable(this.id);
  }

  /** Whether this side's sending is over. */
  get finished(): boolean {
    return this.#finished;
  }

  /** Reads received bytes; `null` once the peer's EOF was read up to. */
  async read(buffer: Uint8Array): Promise<number | null> {
    const { session } = this.#endpoint;
    while (true) {
      if (this.#closed) return null;
      const n = session.readInto(this.id, buffer);
      if (n > 0) {
        this.#endpoint.flush();
        return n;
      }
      if (this.#reset !== undefined) throw this.#resetError();
      if (session.ended(this.id)) return null;
      await new Promise<void>((resolve) => this.#wakeRead = resolve);
    }
  }

  /** Keeps bytes to send; waits while the stream's buffers are full. */
  async write(data: Uint8Array): Promise<number> {
    const { session } = this.#endpoint;
    while (true) {
      if (this.#reset !== undefined) throw this.#resetError();
      if (this.#closed) throw new Deno.errors.BadResource("stream closed");
      let taken: number;
      try {
        taken = session.write(this.id, data);
      } catch (error) {
        if (!(error instanceof SessionError)) throw error;
        throw this.#reset === undefined
          ? new Deno.errors.BrokenPipe(error.message)
          : this.#resetError();
      }
      if (taken > 0) {
        this.#endpoint.flush();
        return taken;
      }
      await new Promise<void>((resolve) => this.#wakeWrite = resolve);
    }
  }

  /** Half-close: EOF follows the bytes written. */
  closeWrite(): Promise<void> {
    if (this.#finished || this.#reset !== undefined || this.#closed) {
      return Promise.resolve();
    }
    this.#finished = true;
    try {
      this.#endpoint.session.finish(this.id);
    } catch (error) {
      if (!(error instanceof SessionError)) throw error;
    }
    this.#endpoint.flush();
    return Promise.resolve();
  }

  /** Closes the stream; one not finished both ways is reset. */
  close(): void {
    if (this.#closed) return;
    this.#endpoint.closeStream(this, this.#closeReason);
    this.#closed = true;
    this.wakeReader();
    this.wakeWriter();
  }

  /** @internal The far end accepted the stream. */
  markOpen(): void {
    this.#resolveOpen();
  }

  /**
   * @internal The far end refused the stream, perhaps after bytes were
   * written to it: a reader or writer waiting is woken to throw the
   * refusal.
   */
  markRefused(error: StreamRefusedError): void {
    this.#reset = error.message;
    this.#refused = this.#refusal?.(error) ?? error;
    this.#rejectOpen(this.#refused);
    this.wakeReader();
    this.wakeWriter();
  }

  /** @internal The stream was reset. */
  markReset(reason: string): void {
    this.#reset ??= reason;
    this.#rejectOpen(new Deno.errors.ConnectionReset(reason));
    this.wakeReader();
    this.wakeWriter();
  }

  /** @internal Bytes or the EOF arrived. */
  wakeReader(): void {
    const wake = this.#wakeRead;
    this.#wakeRead = undefined;
    wake?.();
  }

  /** @internal Room to write again. */
  wakeWriter(): void {
    const wake = this.#wakeWrite;
    this.#wakeWrite = undefined;
    wake?.();
  }

  #resetError(): Error {
    return this.#refused ??
      new Deno.errors.ConnectionReset(`stream reset: ${this.#reset}`);
  }
}
