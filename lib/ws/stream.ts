/**
 * A tunnel's bytes over an open WebSocket connection, as a {@link Duplex}
 * (the client side of PROTOCOL-DRAFT.md): binary messages carry the bytes,
 * the text message `eof` is a half-close, `ack <n>` from the server opens
 * the send window, and pings keep the connection alive through proxies that
 * drop silent tunnels.
 *
 * ```
 * read()  ◄── inbox ◄── reader loop ◄── FrameDecoder ◄── inner.read()
 *                          │ pong, close reply, ack, eof
 * write() ──► binary frames (window) ─┐
 * heartbeat ──► ping ─────────────────┴──► send queue ──► inner.write()
 * ```
 *
 * @module
 */

import { closeQuietly, type Duplex } from "../net/duplex.ts";
import { Inbox } from "../net/inbox.ts";
import { printable } from "../proxy/http_head.ts";
import { type CoarseTimer, coarseTimers } from "../time/timers.ts";
import { formatDuration } from "../time/duration.ts";
import {
  CLOSE_CODE,
  closePayload,
  FrameDecoder,
  OPCODE,
  type WsEvent,
  WsProtocolError,
} from "./frame.ts";
import { FrameWriter } from "./frame_writer.ts";

/** The largest binary message this side sends. */
export const MAX_SEND_MESSAGE_BYTES = 64 * 1024;

/** Most tunnel bytes sent and not yet acknowledged by the server. */
export const SEND_WINDOW_BYTES = 1024 * 1024;

/** The default time between pings: 30 s. */
export const DEFAULT_HEARTBEAT_MS = 30_000;

// Received tunnel bytes held for read(): past this the socket is not read,
// so that a slow local reader slows the server through TCP.
const INBOX_LIMIT_BYTES = 256 * 1024;

// How long close() waits for its close frame to be written.
const CLOSE_WRITE_LIMIT_MS = 1_000;

const READ_CHUNK_BYTES = 64 * 1024;

const EOF = "eof";

/**
 * How a WebSocket tunnel ended other than cleanly: `heartbeat` (nothing
 * from the server for twice the heartbeat), `reset` (the server closed with
 * 1011: the target reset or failed), `closed` (the server closed with
 * another code before `eof`), `protocol` (the server broke the protocol),
 * `connection` (the connection under the WebSocket failed).
 */
export type WsTunnelProblem =
  | "heartbeat"
  | "reset"
  | "closed"
  | "protocol"
  | "connection";

/** A WebSocket tunnel ended badly; the message says how, for the log. */
export class WsTunnelError extends Error {
  /** How it ended. */
  readonly problem: WsTunnelProblem;

  /**
   * @param problem How it ended.
   * @param message What happened, naming the server.
   * @param options The underlying cause.
   */
  constructor(
    problem: WsTunnelProblem,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "WsTunnelError";
    this.problem = problem;
  }
}

/** Options of {@link WsStream}. */
export interface WsStreamOptions {
  /** `host:port` of the server, for messages. */
  readonly server: string;
  /** Time between pings; the tunnel ends after twice this with nothing received. @default 30 s */
  readonly heartbeatMs?: number;
  /**
   * Whether writes wait for the server's `ack <n>` (v1); a v2 session does
   * its own flow control per stream. @default true
   */
  readonly windowed?: boolean;
  /** Fills an array with random bytes, for masking keys. @default crypto.getRandomValues */
  readonly random?: (bytes: Uint8Array) => Uint8Array;
}

/** A tunnel over a WebSocket connection, on the stream that carries it. */
export class WsStream implements Duplex {
  readonly #inner: Duplex;
  readonly #server: string;
  readonly #heartbeatMs: number;
  readonly #windowBytes: number;
  readonly #random: (bytes: Uint8Array) => Uint8Array;
  readonly #decoder = new FrameDecoder({ masked: false });

  // Received tunnel bytes not yet read; done once the server sent eof or
  // the stream closed.
  readonly #inbox = new Inbox(INBOX_LIMIT_BYTES, () => {
    if (this.#failure) throw this.#failure;
    return !this.#ended && !this.#closed;
  });
  // The server sent eof, or closed normally.
  #ended = false;
  #failure: Error | undefined;
  #closed = false;

  // Flow control: tunnel bytes sent, and acknowledged by the server.
  #sent = 0;
  #acked = 0;
  #wakeWriter: (() => void) | undefined;
  #eofSent = false;

  // Writes go out one after the other: data, pings, pongs, the close;
  // those sent during a write go together in the next.
  readonly #writer: FrameWriter;
  // The masking key of the frame being encoded (copied into it).
  readonly #key = new Uint8Array(4);

  #lastReceived = Date.now();
  #heartbeat: CoarseTimer | undefined;

  /**
   * Starts reading the server's frames and sending heartbeats.
   *
   * @param inner The stream the WebSocket runs on, after the 101 (bytes
   *   read past the 101 still buffered in it).
   * @param options The server's name, the heartbeat, a random source.
   */
  constructor(inner: Duplex, options: WsStreamOptions) {
    this.#inner = inner;
    this.#writer = new FrameWriter(inner);
    this.#server = options.server;
    this.#heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    this.#windowBytes = options.windowed === false
      ? Infinity
      : SEND_WINDOW_BYTES;
    this.#random = options.random ??
      ((bytes) => crypto.getRandomValues(bytes));
    this.#scheduleHeartbeat();
    // Never rejects: every failure ends the tunnel through #fail.
    this.#readLoop();
  }

  /** Returns received tunnel bytes; `null` once the server sent `eof`. */
  read(buffer: Uint8Array): Promise<number | null> {
    return this.#inbox.read(buffer);
  }

  /**
   * Returns the next received bytes as they came (a message, or what a
   * {@link read} left of it), handed over to the caller: no copy.
   *
   * @returns The bytes; `null` once the server sent `eof`.
   */
  readChunk(): Promise<Uint8Array | null> {
    return this.#inbox.readChunk();
  }

  /**
   * Sends up to {@link MAX_SEND_MESSAGE_BYTES} of `data` as one binary
   * message, once the server's acks leave room in the window.
   */
  async write(data: Uint8Array): Promise<number> {
    if (this.#failure) throw this.#failure;
    if (this.#closed) throw new Deno.errors.BadResource("tunnel closed");
    if (this.#eofSent) throw new Deno.errors.BrokenPipe("eof already sent");
    while (this.#sent - this.#acked >= this.#windowBytes) {
      if (this.#failure) throw this.#failure;
      if (this.#closed) throw new Deno.errors.BadResource("tunnel closed");
      await new Promise<void>((resolve) => this.#wakeWriter = resolve);
    }
    if (this.#failure) throw this.#failure;
    const room = this.#windowBytes - (this.#sent - this.#acked);
    const n = Math.min(data.length, MAX_SEND_MESSAGE_BYTES, room);
    this.#sent += n;
    await this.#send(OPCODE.binary, data.subarray(0, n));
    return n;
  }

  /**
   * Sends `parts`, joined, as one binary message, without waiting for
   * acks: for a stream that is not windowed (v2), whose session bounds
   * its messages itself. The parts are copied before this returns.
   *
   * @param parts The message's bytes, in pieces.
   * @returns Settles once the message is written.
   */
  sendMessage(parts: readonly Uint8Array[]): Promise<void> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#closed) {
      return Promise.reject(new Deno.errors.BadResource("tunnel closed"));
    }
    return this.#send(OPCODE.binary, parts);
  }

  /** Sends `eof`: no more tunnel bytes from this side. */
  async closeWrite(): Promise<void> {
    if (this.#eofSent) return;
    this.#eofSent = true;
    await this.#send(OPCODE.text, new TextEncoder().encode(EOF));
  }

  /**
   * Sends a close frame (1000) and closes the stream underneath once it is
   * written, or after a short limit.
   *
   * @returns Settles when the stream underneath is closed, for a caller
   *   about to exit the process, which would cut the frame off.
   */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#finish();
    const frame = this.#send(
      OPCODE.close,
      closePayload(CLOSE_CODE.normal, "client closed"),
    );
    const timer = coarseTimers.after(
      CLOSE_WRITE_LIMIT_MS,
      () => closeQuietly(this.#inner),
    );
    return frame.catch(() => {}).finally(() => {
      timer.cancel();
      closeQuietly(this.#inner);
    });
  }

  // Stops the heartbeat and wakes every waiter; the stream is done.
  #finish(): void {
    this.#closed = true;
    this.#heartbeat?.cancel();
    this.#heartbeat = undefined;
    this.#inbox.wake();
    this.#resumeWriter();
  }

  #resumeWriter(): void {
    const wake = this.#wakeWriter;
    this.#wakeWriter = undefined;
    wake?.();
  }

  // Ends the tunnel with an error: read and write reject with it.
  #fail(error: Error, closeCode?: number): void {
    if (this.#closed) return;
    this.#failure ??= error;
    this.#finish();
    if (closeCode === undefined) {
      closeQuietly(this.#inner);
      return;
    }
    this.#send(OPCODE.close, closePayload(closeCode, error.message))
      .catch(() => {}).finally(() => closeQuietly(this.#inner));
  }

  #send(
    opcode: number,
    payload: Uint8Array | readonly Uint8Array[],
  ): Promise<void> {
    return this.#writer.send(
      opcode,
      payload instanceof Uint8Array ? [payload] : payload,
      { mask: this.#random(this.#key) },
    );
  }

  #scheduleHeartbeat(): void {
    this.#heartbeat = coarseTimers.after(this.#heartbeatMs, () => {
      if (this.#closed) return;
      const silentMs = Date.now() - this.#lastReceived;
      // A full inbox stops the reads: the silence is then this side's own.
      if (
        silentMs >= 2 * this.#heartbeatMs &&
        !this.#inbox.full
      ) {
        this.#fail(
          new WsTunnelError(
            "heartbeat",
            `no pong from ${this.#server} within ${
              formatDuration(2 * this.#heartbeatMs)
            }`,
          ),
        );
        return;
      }
      this.#send(OPCODE.ping, new Uint8Array(0)).catch(() => {});
      this.#scheduleHeartbeat();
    });
  }

  async #readLoop(): Promise<void> {
    const chunk = new Uint8Array(READ_CHUNK_BYTES);
    try {
      while (!this.#closed) {
        while (this.#inbox.full && !this.#closed) await this.#inbox.room();
        if (this.#closed) return;
        const n = await this.#inner.read(chunk);
        if (n === null) {
          this.#fail(
            new WsTunnelError(
              "connection",
              `the connection to ${this.#server} ended without a WebSocket close`,
            ),
          );
          return;
        }
        this.#lastReceived = Date.now();
        for (const event of this.#decoder.push(chunk.subarray(0, n))) {
          if (this.#handle(event)) return;
        }
      }
    } catch (error) {
      if (this.#closed) return;
      if (error instanceof WsProtocolError) {
        this.#fail(
          new WsTunnelError(
            "protocol",
            `server ${this.#server} broke the WebSocket protocol: ${error.message}`,
          ),
          error.closeCode,
        );
      } else {
        this.#fail(
          new WsTunnelError(
            "connection",
            `the connection to ${this.#server} failed: ${
              error instanceof Error ? error.message : String(error)
            }`,
            { cause: error },
          ),
        );
      }
    }
  }

  // Acts on one event; true when the connection is over.
  #handle(event: WsEvent): boolean {
    switch (event.kind) {
      case "binary":
        if (event.data.length === 0) return false;
        if (this.#ended) {
          throw new WsProtocolError(
            CLOSE_CODE.protocolError,
            "tunnel bytes after eof",
          );
        }
        this.#inbox.push(event.data);
        return false;
      case "text":
        this.#text(event.text);
        return false;
      case "ping":
        this.#send(OPCODE.pong, event.data).catch(() => {});
        return false;
      case "pong":
        return false;
      case "close":
        this.#closeReceived(event.code, event.reason);
        return true;
    }
  }

  #text(text: string): void {
    if (text === EOF) {
      this.#ended = true;
      this.#inbox.wakeReader();
      return;
    }
    const ack = /^ack (\d{1,15})$/.exec(text);
    if (!ack) {
      throw new WsProtocolError(
        CLOSE_CODE.protocolError,
        `an unknown text message of ${text.length} characters`,
      );
    }
    const acked = Number(ack[1]);
    if (acked < this.#acked || acked > this.#sent) {
      throw new WsProtocolError(
        CLOSE_CODE.protocolError,
        `ack ${acked} outside the bytes sent (${this.#acked} to ${this.#sent})`,
      );
    }
    this.#acked = acked;
    this.#resumeWriter();
  }

  // The server closed: answer with a close (RFC 6455 §5.5.1) and end.
  #closeReceived(code: number | undefined, reason: string): void {
    // 1001 is no clean end: the server is going away, or saw no pong.
    const normal = code === undefined || code === CLOSE_CODE.normal;
    const said = reason === "" ? "" : `: ${printable(reason)}`;
    if (normal) {
      // What was received stays readable; then read() says end of stream.
      this.#ended = true;
      this.#closed = true;
      this.#heartbeat?.cancel();
      this.#inbox.wakeReader();
      this.#resumeWriter();
      this.#send(OPCODE.close, closePayload(code ?? CLOSE_CODE.normal))
        .catch(() => {}).finally(() => closeQuietly(this.#inner));
      return;
    }
    const problem = code === CLOSE_CODE.internalError ? "reset" : "closed";
    this.#fail(
      new WsTunnelError(
        problem,
        `server ${this.#server} ended the tunnel (close ${code}${said})`,
      ),
      code,
    );
  }
}
