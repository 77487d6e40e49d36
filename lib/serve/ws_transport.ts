/**
 * A WebSocket that serve speaks itself (RFC 6455, the server's side) on a
 * TLS connection it accepted, as the {@link ServerTransport} of a v2
 * session: no relay to `Deno.serve`, no event per message. Binary
 * messages carry session frame bytes; a text message is a protocol
 * error. Client frames must be masked, server frames are not; pings are
 * answered, and a client silent for the idle timeout's first half is
 * pinged and closed (1001) when the second half brings nothing either, as
 * `Deno.upgradeWebSocket`'s `idleTimeout` does. A close from the client is
 * answered and ends the connection; a close from serve waits a bounded
 * time for the client's answer. Frames sent during a write go together
 * in the next ({@link FrameWriter}); the bytes not yet written are the
 * backlog the session layer holds back on.
 *
 * ```
 * conn.read ─▶ FrameDecoder (masked) ─┬─ binary ─▶ handlers.bytes
 *                                     ├─ ping ─▶ pong ─┐
 *                                     └─ close ─▶ close ┤
 * send(parts) ─▶ FrameWriter (unmasked) ──────────────┴─▶ one write at a time ─▶ conn.write
 * heartbeat ─▶ ping, or close 1001 ────────────────────┘
 * ```
 *
 * @module
 */

import { errorMessage } from "../errors.ts";
import { closeQuietly, type Duplex } from "../net/duplex.ts";
import { logger } from "../observe/log.ts";
import { printable } from "../proxy/http_head.ts";
import { type CoarseTimer, coarseTimers } from "../time/timers.ts";
import {
  CLOSE_CODE,
  closePayload,
  FrameDecoder,
  MAX_MESSAGE_BYTES,
  OPCODE,
  type WsEvent,
  WsProtocolError,
} from "../ws/frame.ts";
import { FrameWriter } from "../ws/frame_writer.ts";
import {
  CLOSE_CODES,
  type ServerTransport,
  type TransportCloseReason,
  type TransportEnd,
  type TransportHandlers,
} from "./transport.ts";

const log = logger("serve");

/** How long a close from serve waits for the client's close. */
export const CLOSE_ANSWER_MS = 2_000;

// What the close of a client that answers no ping says, as Deno's does.
const NO_PONG = "No response from ping frame.";
// The codes a close event reports (RFC 6455 §7.4.1) for a close frame
// without a code, and for a connection that ended without a close frame.
const NO_STATUS = 1005;
const ABNORMAL = 1006;

// Decrypted bytes asked for by each read.
const READ_BYTES = 256 * 1024;

/** Options of {@link WsConnection}. */
export interface WsConnectionOptions {
  /** Written before any frame: the 101 answer. */
  readonly head: Uint8Array;
  /** Bytes the client sent past its request head, already read. @default none */
  readonly initial?: Uint8Array;
  /**
   * How long the client may send nothing: pinged after half of it, closed
   * after the rest.
   */
  readonly idleTimeoutMs: number;
  /** The client, for the log. */
  readonly peer: string;
  /** The largest message accepted, fragments together. @default 1 MiB */
  readonly maxMessageBytes?: number;
}

/** A WebSocket on a connection serve accepted, carrying a v2 session. */
export class WsConnection implements ServerTransport {
  /** For the log. */
  readonly name = "WebSocket";
  /** For /status. */
  readonly kind = "websocket";
  /** Settles once the connection is closed. */
  readonly done: Promise<void>;
  readonly #conn: Duplex;
  readonly #options: WsConnectionOptions;
  readonly #decoder: FrameDecoder;
  #handlers: TransportHandlers | undefined;
  readonly #writer: FrameWriter;
  #closeSent = false;
  #told = false;
  #closed = false;
  #markClosed!: () => void;
  // Bytes came in since the last heartbeat tick; a ping waits for them.
  #received = false;
  #pinged = false;
  #heartbeat: CoarseTimer | undefined;
  #closeWait: CoarseTimer | undefined;

  /**
   * Queues the 101; nothing is read until {@link start}.
   *
   * @param conn The decrypted connection.
   * @param options The 101, bytes read ahead, the idle timeout, the peer.
   */
  constructor(conn: Duplex, options: WsConnectionOptions) {
    this.#conn = conn;
    this.#options = options;
    this.#decoder = new FrameDecoder({
      masked: true,
      maxMessageBytes: options.maxMessageBytes ?? MAX_MESSAGE_BYTES,
    });
    this.done = new Promise((resolve) => this.#markClosed = resolve);
    this.#writer = new FrameWriter(
      conn,
      (error) => this.#lost(`writing failed: ${errorMessage(error)}`),
    );
    this.#writer.sendBytes(options.head);
  }

  /** Bytes queued and not yet written. */
  get backlog(): number {
    return this.#closed ? 0 : this.#writer.backlog;
  }

  /** Sends `parts`, joined, as one binary message (one copy). */
  send(parts: readonly Uint8Array[]): void {
    if (this.#closeSent || this.#closed) return;
    this.#writer.send(OPCODE.binary, parts);
  }

  /** Starts reading the client's frames and the heartbeat. */
  start(handlers: TransportHandlers): void {
    this.#handlers = handlers;
    this.#scheduleHeartbeat();
    // Never rejects: every failure ends the connection inside.
    this.#readLoop();
  }

  /**
   * Sends a close and waits, a bounded time, for the client's.
   *
   * @param why The kind of close: its code.
   * @param reason A short text for the client.
   */
  close(why: TransportCloseReason, reason: string): void {
    this.#sendClose(CLOSE_CODES[why], reason);
  }

  async #readLoop(): Promise<void> {
    const buffer = new Uint8Array(READ_BYTES);
    try {
      if (this.#options.initial?.length) {
        if (this.#handle(this.#decoder.push(this.#options.initial))) return;
      }
      while (!this.#closed) {
        const n = await this.#conn.read(buffer);
        if (n === null) {
          this.#lost("the connection ended without a close");
          return;
        }
        this.#received = true;
        if (this.#handle(this.#decoder.push(buffer.subarray(0, n)))) return;
      }
    } catch (error) {
      if (this.#closed) return;
      if (!(error instanceof WsProtocolError)) {
        this.#lost(errorMessage(error));
        return;
      }
      log.warn(
        `WebSocket from ${this.#options.peer} broke the protocol: ${error.message}; closing it (${error.closeCode})`,
      );
      this.#tell(false, error.closeCode, error.message);
      this.#sendClose(error.closeCode, error.message);
      // Failed (RFC 6455 §7.1.7): no answer is waited for.
      this.#writer.idle.then(() => this.#shutdown());
    }
  }

  // Acts on decoded events; true when the connection is over.
  #handle(events: WsEvent[]): boolean {
    for (const event of events) {
      switch (event.kind) {
        case "binary":
          // What comes after serve's close is not read (RFC 6455 §1.4).
          if (!this.#closeSent) this.#handlers!.bytes(event.data);
          break;
        case "text":
          this.close("protocol", "text message in a v2 session");
          break;
        case "ping":
          if (!this.#closeSent) {
            this.#writer.send(OPCODE.pong, [event.data]);
          }
          break;
        case "pong":
          break;
        case "close":
          this.#closeReceived(event.code, event.reason);
          return true;
      }
    }
    return false;
  }

  // The client closed, first or in answer: answer it if serve has not
  // closed yet, then end the connection once the answer is written.
  #closeReceived(code: number | undefined, reason: string): void {
    this.#tell(code === CLOSE_CODE.normal, code ?? NO_STATUS, reason);
    if (!this.#closeSent) {
      this.#sendClose(code, "");
    }
    this.#writer.idle.then(() => this.#shutdown());
  }

  // Sends a close frame (none twice); the connection is closed at the
  // latest CLOSE_ANSWER_MS later, whether the client answered or the
  // frame could be written, or not.
  #sendClose(code: number | undefined, reason: string): void {
    if (this.#closeSent || this.#closed) return;
    this.#closeSent = true;
    this.#writer.send(
      OPCODE.close,
      code === undefined ? [] : [closePayload(code, reason)],
    );
    this.#closeWait = coarseTimers.after(CLOSE_ANSWER_MS, () => {
      this.#tell(
        false,
        code ?? NO_STATUS,
        "the client did not answer the close",
      );
      this.#shutdown();
    });
  }

  // The connection failed or ended without a close.
  #lost(why: string): void {
    if (this.#closed) return;
    log.debug(`WebSocket from ${this.#options.peer}: ${why}`);
    this.#shutdown();
  }

  // Tells the session layer how the transport ended, once.
  #tell(clean: boolean, code: number, reason: string): void {
    if (this.#told || this.#handlers === undefined) return;
    this.#told = true;
    const end: TransportEnd = {
      clean,
      detail: `WebSocket (${code}${reason ? ` ${printable(reason)}` : ""})`,
    };
    this.#handlers.ended(end);
  }

  #shutdown(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#heartbeat?.cancel();
    this.#closeWait?.cancel();
    closeQuietly(this.#conn);
    this.#tell(false, ABNORMAL, "");
    this.#markClosed();
  }

  // Every half of the idle timeout: a client that sent nothing is pinged,
  // and one that sent nothing since the ping is closed.
  #scheduleHeartbeat(): void {
    this.#heartbeat = coarseTimers.after(
      this.#options.idleTimeoutMs / 2,
      () => {
        if (this.#closed || this.#closeSent) return;
        if (this.#received) {
          this.#received = false;
          this.#pinged = false;
        } else if (this.#pinged) {
          log.debug(`WebSocket from ${this.#options.peer}: ${NO_PONG}`);
          this.#tell(false, CLOSE_CODE.goingAway, NO_PONG);
          this.#sendClose(CLOSE_CODE.goingAway, NO_PONG);
          return;
        } else {
          this.#pinged = true;
          this.#writer.send(OPCODE.ping, []);
        }
        this.#scheduleHeartbeat();
      },
    );
  }
}
