/**
 * The far end of protocol httptunneling.v2: each WebSocket carries one
 * session (lib/session/) of many streams. The first binary message holds
 * the client's HELLO; the {@link SessionTable} answers it (a new session,
 * or the client's own one resumed, bound to the token that authenticated
 * the upgrade), and from then on binary messages carry session frames both
 * ways. A WebSocket that ends other than with close 1000 leaves its session
 * waiting for a resume for the resume window; a sweep then resets the
 * streams of sessions whose window passed. Opening each stream's target is
 * the caller's (`onOpen`), with the same rules as a v1 tunnel.
 *
 * ```
 * run(socket) ─ HELLO ─▶ SessionTable.hello ─▶ WELCOME ─▶ SessionEndpoint ◀─▶ binary messages
 *                                                             └─ OPEN ─▶ onOpen (allow, connect, relay)
 * ```
 *
 * @module
 */

import { errorMessage } from "../errors.ts";
import { concat } from "../net/bytes.ts";
import { logger } from "../observe/log.ts";
import { SessionEndpoint, type SessionStream } from "../session/endpoint.ts";
import { SessionError } from "../session/errors.ts";
import {
  encodeFrame,
  FrameDecoder,
  type HelloFrame,
  type WelcomeFrame,
} from "../session/frame.ts";
import type { Session } from "../session/session.ts";
import { sessionLabel, SessionTable } from "../session/table.ts";
import { formatDuration } from "../time/duration.ts";

const log = logger("serve");

/** How long a new WebSocket may take to send its HELLO. */
export const HELLO_TIMEOUT_MS = 10_000;

/** Who a session belongs to, for the log and /status. */
export interface SessionOwner {
  /** The token's name. */
  readonly token: string;
  /** The client's address as the log writes it. */
  readonly client: string;
  /** The session id's loggable form. */
  readonly label: string;
}

/** Options of {@link ServeSessions}. */
export interface ServeSessionsOptions {
  /** How long a session without a transport is kept for a resume. */
  readonly resumeWindowMs: number;
  /** Most streams per session. @default the session layer's */
  readonly maxStreams?: number;
  /**
   * A client opened a stream: accept it with `endpoint.accept` (and relay
   * it), or refuse it with `endpoint.refuse`.
   */
  readonly onOpen: (
    endpoint: SessionEndpoint,
    stream: SessionStream,
    host: string,
    port: number,
    owner: SessionOwner,
  ) => void;
}

/** A session as /status shows it. */
export interface SessionState extends SessionOwner {
  /** Whether a WebSocket carries it now. */
  readonly connected: boolean;
  /** Its streams. */
  readonly streams: number;
}

interface Held {
  readonly endpoint: SessionEndpoint;
  owner: SessionOwner;
}

/** The v2 sessions of a far end. */
export class ServeSessions {
  readonly #options: ServeSessionsOptions;
  readonly #table: SessionTable<WebSocket>;
  readonly #held = new Map<Session, Held>();
  readonly #sockets = new Set<WebSocket>();
  // Told when a newer WebSocket takes their session: read nothing more.
  readonly #replacedHooks = new WeakMap<WebSocket, () => void>();
  #sweep: ReturnType<typeof setInterval> | undefined;

  /** @param options The resume window, the stream limit, the open handler. */
  constructor(options: ServeSessionsOptions) {
    this.#options = options;
    this.#table = new SessionTable({
      session: {
        resumeWindowMs: options.resumeWindowMs,
        maxStreams: options.maxStreams,
      },
    });
  }

  /** The sessions kept, live or waiting for a resume. */
  list(): SessionState[] {
    return [...this.#held.values()].map(({ endpoint, owner }) => ({
      ...owner,
      connected: endpoint.session.connected,
      streams: endpoint.streamCount,
    }));
  }

  /**
   * Carries the session a newly upgraded WebSocket asks for.
   *
   * @param socket The WebSocket, protocol httptunneling.v2.
   * @param token The name of the token that authenticated it.
   * @param client The client's address, for the log.
   */
  run(socket: WebSocket, token: string, client: string): void {
    socket.binaryType = "arraybuffer";
    this.#sockets.add(socket);
    const decoder = new FrameDecoder();
    let held: Held | undefined;
    let replaced = false;
    const helloTimer = setTimeout(() => {
      log.warn(
        `client ${client} token ${token}: no HELLO within ${
          formatDuration(HELLO_TIMEOUT_MS)
        }`,
      );
      closeSocket(socket, 1002, "no HELLO");
    }, HELLO_TIMEOUT_MS);
    const sink = {
      send(parts: readonly Uint8Array[]) {
        if (socket.readyState !== WebSocket.OPEN) return;
        socket.send(parts.length === 1 ? parts[0] : concat(...parts));
      },
      get backlog() {
        return socket.bufferedAmount;
      },
    };
    socket.onmessage = (event: MessageEvent) => {
      if (replaced) return;
      if (!(event.data instanceof ArrayBuffer)) {
        return closeSocket(socket, 1002, "text message in a v2 session");
      }
      try {
        // Each message is an ArrayBuffer of its own.
        const frames = decoder.push(new Uint8Array(event.data), true);
        if (held === undefined) {
          const [hello, ...rest] = frames;
          if (hello === undefined) return;
          if (hello.type !== "hello") {
            throw new Error(`${hello.type} frame before HELLO`);
          }
          clearTimeout(helloTimer);
          const attached = this.#hello(hello, token, client, socket, () => {
            replaced = true;
          });
          held = attached.held;
          sink.send([encodeFrame(attached.welcome)]);
          held.endpoint.attach(sink);
          held.endpoint.receive(rest);
          return;
        }
        held.endpoint.receive(frames);
      } catch (error) {
        log.warn(
          `client ${client} token ${token}${
            held ? ` session ${held.owner.label}` : ""
          }: ${errorMessage(error)}; closing its WebSocket`,
        );
        // 1013: the server's session limit, worth trying again later.
        const limit = error instanceof SessionError &&
          error.problem === "limit";
        closeSocket(
          socket,
          limit ? 1013 : 1002,
          limit ? "too many sessions" : "protocol error",
        );
      }
    };
    socket.onclose = (event: CloseEvent) => {
      clearTimeout(helloTimer);
      this.#sockets.delete(socket);
      if (replaced || held === undefined) return;
      const { endpoint, owner } = held;
      endpoint.detach();
      if (event.code === 1000) {
        // The client ended the session itself.
        this.#table.remove(endpoint.session);
        this.#held.delete(endpoint.session);
        endpoint.expire("the client ended the session");
        log.info(`session ${owner.label} ended: token ${owner.token}`);
        this.#stopSweepWhenEmpty();
        return;
      }
      this.#table.detach(endpoint.session, socket);
      log.info(
        `session ${owner.label} lost its WebSocket (${event.code}${
          event.reason ? ` ${event.reason}` : ""
        }): token ${owner.token} client ${owner.client}; ${endpoint.streamCount} stream(s) wait up to ${
          formatDuration(this.#options.resumeWindowMs)
        } for a resume`,
      );
    };
  }

  /** Closes every session's WebSocket (1001) and stops the sweep. */
  close(): void {
    for (const socket of this.#sockets) {
      closeSocket(socket, 1001, "server shutting down");
    }
    clearInterval(this.#sweep);
    this.#sweep = undefined;
  }

  #hello(
    frame: HelloFrame,
    token: string,
    client: string,
    socket: WebSocket,
    onReplaced: () => void,
  ): { held: Held; welcome: WelcomeFrame } {
    const attachment = this.#table.hello(frame, token, socket);
    const label = sessionLabel(attachment.session.id!);
    if (attachment.replaced) {
      const old = attachment.replaced.transport;
      this.#replacedHooks.get(old)?.();
      if (old.readyState === WebSocket.OPEN) {
        old.send(encodeFrame(attachment.replaced.goaway));
      }
      closeSocket(old, 4000, "session moved to a newer WebSocket");
    }
    this.#replacedHooks.set(socket, onReplaced);
    let held = this.#held.get(attachment.session);
    if (held === undefined) {
      const owner = { token, client, label };
      const endpoint: SessionEndpoint = new SessionEndpoint(
        attachment.session,
        {
          onOpen: (stream, host, port) =>
            this.#options.onOpen(endpoint, stream, host, port, held!.owner),
        },
      );
      held = { endpoint, owner };
      this.#held.set(attachment.session, held);
      this.#startSweep();
    } else {
      held.owner = { token, client, label };
    }
    const refusal = attachment.refusal
      ? ` (resume refused: ${attachment.refusal})`
      : "";
    const line =
      `session ${label} ${attachment.outcome}${refusal}: token ${token} client ${client}${
        attachment.outcome === "resumed"
          ? `, ${held.endpoint.streamCount} stream(s)`
          : ""
      }`;
    if (attachment.refusal) log.warn(line);
    else log.info(line);
    return { held, welcome: attachment.welcome };
  }

  #startSweep(): void {
    if (this.#sweep !== undefined) return;
    const every = Math.max(
      50,
      Math.min(5_000, this.#options.resumeWindowMs / 4),
    );
    this.#sweep = setInterval(() => {
      for (const ended of this.#table.sweep()) {
        const held = this.#held.get(ended.session);
        this.#held.delete(ended.session);
        const streams = held?.endpoint.streamCount ?? 0;
        held?.endpoint.expire(ended.reason);
        log.warn(
          `session ${ended.label} expired: token ${ended.token}: ${ended.reason} (${
            formatDuration(this.#options.resumeWindowMs)
          } without a WebSocket); ${streams} stream(s) reset`,
        );
      }
      this.#stopSweepWhenEmpty();
    }, every);
  }

  #stopSweepWhenEmpty(): void {
    if (this.#table.size > 0) return;
    clearInterval(this.#sweep);
    this.#sweep = undefined;
  }
}

function closeSocket(socket: WebSocket, code: number, reason: string): void {
  try {
    socket.close(code, reason);
  } catch {
    // Closing already.
  }
}
