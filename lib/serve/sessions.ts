/**
 * The far end of protocol httptunneling.v2: each transport (a WebSocket,
 * or a poll: ./transport.ts) carries one session (lib/session/) of many
 * streams. The first bytes hold the client's HELLO; the
 * {@link SessionTable} answers it (a new session, or the client's own one
 * resumed, bound to the token that authenticated the transport), and from
 * then on the transport carries session frames both ways. A transport that
 * ends other than cleanly (close 1000, a poll's close) leaves its session
 * waiting for a resume for the resume window; a sweep then resets the
 * streams of sessions whose window passed. Opening each stream's target is
 * the caller's (`onOpen`), with the same rules as a v1 tunnel.
 *
 * ```
 * run(transport) ─ HELLO ─▶ SessionTable.hello ─▶ WELCOME ─▶ SessionEndpoint ◀─▶ frame bytes
 *                                                             └─ OPEN ─▶ onOpen (allow, connect, relay)
 * ```
 *
 * @module
 */

import { errorMessage } from "../errors.ts";
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
import type { ServerTransport } from "./transport.ts";

const log = logger("serve");

/** How long a new transport may take to send its HELLO. */
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
  /** Whether a transport carries it now. */
  readonly connected: boolean;
  /** What carries it now; `null` while it waits for a resume. */
  readonly transport: ServerTransport["kind"] | null;
  /** Its streams. */
  readonly streams: number;
}

interface Held {
  readonly endpoint: SessionEndpoint;
  owner: SessionOwner;
  /** The transport that carries it now. */
  transport?: ServerTransport;
}

/** The v2 sessions of a far end. */
export class ServeSessions {
  readonly #options: ServeSessionsOptions;
  readonly #table: SessionTable<ServerTransport>;
  readonly #held = new Map<Session, Held>();
  readonly #transports = new Set<ServerTransport>();
  // Told when a newer transport takes their session: read nothing more.
  readonly #replacedHooks = new WeakMap<ServerTransport, () => void>();
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
    return [...this.#held.values()].map(({ endpoint, owner, transport }) => ({
      ...owner,
      connected: endpoint.session.connected,
      transport: endpoint.session.connected && transport
        ? transport.kind
        : null,
      streams: endpoint.streamCount,
    }));
  }

  /**
   * Carries the session a new transport asks for.
   *
   * @param transport A newly upgraded WebSocket, or a newly opened poll.
   * @param token The name of the token that authenticated it.
   * @param client The client's address, for the log.
   */
  run(transport: ServerTransport, token: string, client: string): void {
    this.#transports.add(transport);
    const decoder = new FrameDecoder();
    let held: Held | undefined;
    let replaced = false;
    const helloTimer = setTimeout(() => {
      log.warn(
        `client ${client} token ${token}: no HELLO within ${
          formatDuration(HELLO_TIMEOUT_MS)
        }`,
      );
      transport.close("protocol", "no HELLO");
    }, HELLO_TIMEOUT_MS);
    transport.start({
      bytes: (data) => {
        if (replaced) return;
        try {
          const frames = decoder.push(data, true);
          if (held === undefined) {
            const [hello, ...rest] = frames;
            if (hello === undefined) return;
            if (hello.type !== "hello") {
              throw new Error(`${hello.type} frame before HELLO`);
            }
            clearTimeout(helloTimer);
            const attached = this.#hello(
              hello,
              token,
              client,
              transport,
              () => {
                replaced = true;
              },
            );
            held = attached.held;
            held.transport = transport;
            transport.send([encodeFrame(attached.welcome)]);
            held.endpoint.attach(transport);
            held.endpoint.receive(rest);
            return;
          }
          held.endpoint.receive(frames);
        } catch (error) {
          log.warn(
            `client ${client} token ${token}${
              held ? ` session ${held.owner.label}` : ""
            }: ${errorMessage(error)}; closing its ${transport.name}`,
          );
          const limit = error instanceof SessionError &&
            error.problem === "limit";
          transport.close(
            limit ? "limit" : "protocol",
            limit ? "too many sessions" : "protocol error",
          );
        }
      },
      ended: ({ clean, detail }) => {
        clearTimeout(helloTimer);
        this.#transports.delete(transport);
        if (replaced || held === undefined) return;
        const { endpoint, owner } = held;
        endpoint.detach();
        if (clean) {
          // The client ended the session itself.
          this.#table.remove(endpoint.session);
          this.#held.delete(endpoint.session);
          endpoint.expire("the client ended the session");
          log.info(`session ${owner.label} ended: token ${owner.token}`);
          this.#stopSweepWhenEmpty();
          return;
        }
        this.#table.detach(endpoint.session, transport);
        log.info(
          `session ${owner.label} lost its ${detail}: token ${owner.token} client ${owner.client}; ${endpoint.streamCount} stream(s) wait up to ${
            formatDuration(this.#options.resumeWindowMs)
          } for a resume`,
        );
      },
    });
  }

  /** Closes every session's transport and stops the sweep. */
  close(): void {
    for (const transport of this.#transports) {
      transport.close("shutdown", "server shutting down");
    }
    clearInterval(this.#sweep);
    this.#sweep = undefined;
  }

  #hello(
    frame: HelloFrame,
    token: string,
    client: string,
    transport: ServerTransport,
    onReplaced: () => void,
  ): { held: Held; welcome: WelcomeFrame } {
    const attachment = this.#table.hello(frame, token, transport);
    const label = sessionLabel(attachment.session.id!);
    if (attachment.replaced) {
      const old = attachment.replaced.transport;
      this.#replacedHooks.get(old)?.();
      old.send([encodeFrame(attachment.replaced.goaway)]);
      old.close("replaced", `session moved to a newer ${transport.name}`);
    }
    this.#replacedHooks.set(transport, onReplaced);
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
          } without a transport); ${streams} stream(s) reset`,
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
