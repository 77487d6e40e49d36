/**
 * The client's sessions (protocol httptunneling.v2) to `serve` far ends:
 * a route whose last hop is ws:// or wss:// opens its tunnel as a stream
 * of a session, and the pool keeps one session per route and token, so a
 * second tunnel needs no proxy handshake, no TLS and no upgrade (`mux`).
 * Past `max-streams` streams another session is opened.
 *
 * When a session's connection is lost the pool reconnects it (`resume`):
 * the whole chain again (the proxies before the server, their
 * authentication, failover to another alternative), HELLO with the
 * session's id, and each stream goes on from the bytes the server has.
 * Attempts back off exponentially with jitter, each one logged; a session
 * that cannot come back within `resume-window` ends its streams with that
 * reason. A session left without streams closes its connection (close
 * 1000, which tells the server to forget it) after a short idle time.
 *
 * ```
 * dialRoute ─▶ SessionPool.open ─┬─ a session with room ─▶ OPEN a stream
 *                                └─ none ─▶ TransportChoice.dial (chain, TLS, v2 upgrade or poll) ─▶ HELLO/WELCOME
 * connection lost ─▶ backoff ─▶ TransportChoice.dial ─▶ HELLO(id) ─▶ WELCOME(resumed) ─▶ streams resend
 * ```
 *
 * @module
 */

import { errorMessage, WsRefusedError } from "../errors.ts";
import { formatHostPort, type HostPort } from "../net/address.ts";
import type { DialOptions } from "../net/dialer.ts";
import { closeQuietly, type Duplex, writeAll } from "../net/duplex.ts";
import { logger } from "../observe/log.ts";
import { NoSessionProtocolError } from "../proxy/ws_connect.ts";
import { type FrameSink, SessionEndpoint } from "../session/endpoint.ts";
import {
  encodeFrame,
  type Frame,
  FrameDecoder,
  type RefuseCode,
} from "../session/frame.ts";
import { Session } from "../session/session.ts";
import { sessionLabel } from "../session/table.ts";
import { formatDuration } from "../time/duration.ts";
import type { WsRefusal } from "../ws/handshake.ts";
import type { FailoverContext } from "./failover.ts";
import {
  type RouteTransportView,
  type SessionConnection,
  type SessionTransport,
  TransportChoice,
  type TransportChoiceOptions,
} from "./transport_choice.ts";
import type { Hop } from "./types.ts";

const log = logger("session");

/** Default of `resume-window`: 10 minutes. */
export const DEFAULT_RESUME_WINDOW_MS = 10 * 60_000;
/** Default of `max-streams`. */
export const DEFAULT_STREAMS_PER_SESSION = 100;
/** How long a session without streams keeps its connection. */
export const IDLE_SESSION_MS = 30_000;
/** The first reconnect delay; each attempt doubles it, up to the cap. */
export const RECONNECT_BASE_MS = 200;
/** The longest reconnect delay. */
export const RECONNECT_MAX_MS = 15_000;

/**
 * The delay before reconnect attempt `attempt` (from 1): exponential from
 * {@link RECONNECT_BASE_MS} up to {@link RECONNECT_MAX_MS}, then "equal
 * jitter" (half fixed, half random) so that many clients cut at once do
 * not come back at once. Pure.
 *
 * @param attempt The attempt, from 1.
 * @param random A number in [0, 1).
 * @returns Milliseconds.
 *
 * @example
 * ```ts
 * reconnectDelay(1, 0); // 100
 * reconnectDelay(3, 0.5); // 600
 * ```
 */
export function reconnectDelay(attempt: number, random: number): number {
  const ceiling = Math.min(
    RECONNECT_MAX_MS,
    RECONNECT_BASE_MS * 2 ** Math.min(attempt - 1, 30),
  );
  return Math.round(ceiling / 2 + (ceiling / 2) * random);
}

/** An open stream and the path its session took. */
export interface PooledStream {
  /** The stream, whose bytes are the destination's. */
  readonly stream: Duplex;
  /** e.g. `via http://squid:3128 -> ws://far:8080 (session 1a2b3c4d… stream 3)`. */
  readonly path: string;
  /**
   * Settles when the far end accepted the stream; rejects with its
   * refusal ({@link WsRefusedError}), which the stream's reads and writes
   * throw too. Already settled when the stream came after OPENED.
   */
  readonly accepted: Promise<void>;
}

/** A route's session transport and its sessions, as /status shows them. */
export interface SessionRouteView extends RouteTransportView {
  /** Sessions open on the route now, connected or reconnecting. */
  readonly sessions: number;
}

/** The sessions of one process, by route and token. */
export class SessionPool {
  readonly #groups = new Map<string, ClientSession[]>();
  // Routes whose server speaks v1 only: their tunnels are v1 WebSockets.
  readonly #v1Only = new Set<string>();
  readonly #transports: TransportChoice;
  readonly #random: () => number;
  #closed = false;

  /**
   * @param random Jitter source. @default Math.random
   * @param choice How transports are chosen (the WebSocket retry interval).
   */
  constructor(
    random: () => number = Math.random,
    choice: TransportChoiceOptions = {},
  ) {
    this.#random = random;
    this.#transports = new TransportChoice(choice);
  }

  /**
   * Opens a stream to `destination` over a session through `hops`, whose
   * last hop is ws:// or wss://.
   *
   * @param hops The chain; the last hop is the far end.
   * @param destination Where the stream leads.
   * @param options Limits, trust, token, `mux`, `resume`, `resume-window`,
   *   `max-streams`.
   * @param context Proxy failure memory.
   * @param signal Gives up when aborted.
   * @returns The stream and its path; `undefined` when the server speaks
   *   v1 only, and the caller should open a v1 tunnel. On a session that
   *   is connected already the stream comes at once, before the far end
   *   answered its OPEN, so that its first bytes travel with the OPEN; a
   *   refusal then comes through `accepted` and the stream. A new or
   *   reconnecting session's stream comes once it was accepted.
   * @throws the chain's failures, or {@link WsRefusedError} when the far
   *   end refused the session (or the stream, before it came).
   */
  async open(
    hops: readonly Hop[],
    destination: HostPort,
    options: DialOptions,
    context: FailoverContext,
    signal?: AbortSignal,
  ): Promise<PooledStream | undefined> {
    if (this.#closed) throw new Deno.errors.Interrupted("shutting down");
    const mux = options.mux !== false;
    const shared = poolKey(hops, options);
    if (this.#v1Only.has(shared)) return undefined;
    const key = mux ? shared : crypto.randomUUID();
    const cap = options.maxStreams ?? DEFAULT_STREAMS_PER_SESSION;
    const group = this.#groups.get(key) ?? [];
    let session = mux
      ? group.find((each) => each.usable && each.load < cap)
      : undefined;
    if (session === undefined) {
      const dial = (abort: AbortSignal, reconnect: boolean) =>
        this.#transports.dial(shared, hops, options, context, abort, reconnect);
      session = new ClientSession(shared, dial, options, this.#random, () => {
        const left = (this.#groups.get(key) ?? []).filter((each) =>
          each !== session
        );
        if (left.length === 0) this.#groups.delete(key);
        else this.#groups.set(key, left);
      }, mux);
      group.push(session);
      this.#groups.set(key, group);
    }
    try {
      return await session.openStream(destination, signal);
    } catch (error) {
      if (!(error instanceof NoSessionProtocolError)) throw error;
      if (!this.#v1Only.has(shared)) {
        log.info(
          `${error.message} (an older serve?): its tunnels use one WebSocket each, without mux or resume`,
        );
        this.#v1Only.add(shared);
      }
      return undefined;
    }
  }

  /**
   * Each route's transport and how many sessions it carries.
   *
   * @returns One view per route that dialed, in the order they first did.
   */
  routes(): SessionRouteView[] {
    const sessions = [...this.#groups.values()].flat();
    return this.#transports.routes().map(({ key, view }) => ({
      ...view,
      sessions: sessions.filter((each) => each.route === key).length,
    }));
  }

  /**
   * Ends every session: their connections close, their streams reset.
   *
   * @returns Settles when the connections have said goodbye (or given up
   *   within a short limit), so the server forgets the sessions at once
   *   rather than keeping them for a resume; await it before exiting.
   */
  async close(): Promise<void> {
    this.#closed = true;
    const ends: Promise<void>[] = [];
    for (const group of [...this.#groups.values()]) {
      for (const session of group) ends.push(session.end("shutting down"));
    }
    this.#groups.clear();
    await Promise.all(ends);
  }
}

/** One session and the connection that carries it now. */
class ClientSession {
  /** Its route's key (hops, token, trust), shared by the route's sessions. */
  readonly route: string;
  readonly #dial: (
    signal: AbortSignal,
    reconnect: boolean,
  ) => Promise<SessionTransport>;
  readonly #options: DialOptions;
  readonly #random: () => number;
  readonly #onEnded: () => void;
  readonly #mux: boolean;
  readonly #endpoint: SessionEndpoint;
  readonly #abort = new AbortController();
  readonly #ready: Promise<void>;
  #transport: SessionConnection | undefined;
  #server = "";
  #path = "";
  #opening = 0;
  #reconnecting = false;
  #ended = false;
  #idle: ReturnType<typeof setTimeout> | undefined;
  #sleep:
    | { timer: ReturnType<typeof setTimeout>; wake: () => void }
    | undefined;

  constructor(
    route: string,
    dial: (
      signal: AbortSignal,
      reconnect: boolean,
    ) => Promise<SessionTransport>,
    options: DialOptions,
    random: () => number,
    onEnded: () => void,
    mux: boolean,
  ) {
    this.route = route;
    this.#dial = dial;
    this.#options = options;
    this.#random = random;
    this.#onEnded = onEnded;
    this.#mux = mux;
    this.#endpoint = new SessionEndpoint(
      new Session({
        role: "client",
        maxStreams: Math.max(
          options.maxStreams ?? DEFAULT_STREAMS_PER_SESSION,
          1,
        ),
      }),
      { onIdle: () => this.#becameIdle() },
    );
    this.#ready = this.#connect(this.#abort.signal, false);
    this.#ready.catch((error) => this.end(errorMessage(error)));
  }

  /** Whether new streams may go on this session. */
  get usable(): boolean {
    return !this.#ended;
  }

  /** Streams on it, and streams being opened. */
  get load(): number {
    return this.#endpoint.streamCount + this.#opening;
  }

  get #label(): string {
    const id = this.#endpoint.session.id;
    return id === undefined ? "(new)" : sessionLabel(id);
  }

  async openStream(
    destination: HostPort,
    signal?: AbortSignal,
  ): Promise<PooledStream> {
    clearTimeout(this.#idle);
    this.#idle = undefined;
    // A session that carries streams now takes the first bytes with the
    // OPEN; one still connecting (or reconnecting) may yet fail, and its
    // stream waits to be accepted, as a refusal then is still the opening's.
    const early = this.#transport !== undefined && !this.#reconnecting;
    // Counted until the stream exists: the endpoint counts it from then on.
    this.#opening++;
    try {
      await this.#ready;
    } finally {
      this.#opening--;
    }
    if (this.#ended) throw new Deno.errors.Interrupted("session ended");
    signal?.throwIfAborted();
    const server = this.#server;
    const stream = this.#endpoint.open(
      destination.host,
      destination.port,
      (refusal) =>
        refusedError(server, destination, refusal.code, refusal.reason),
    );
    if (!early) await stream.opened;
    return {
      stream,
      path: `${this.#path} (session ${this.#label} stream ${stream.id})`,
      accepted: stream.opened,
    };
  }

  /**
   * Ends the session: the connection is closed with 1000 (the server
   * forgets the session), streams left are reset with `reason`.
   */
  async end(reason: string): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    this.#abort.abort();
    clearTimeout(this.#idle);
    this.#wakeSleep();
    const transport = this.#transport;
    this.#transport = undefined;
    this.#endpoint.expire(reason);
    const closed = transport?.close();
    this.#onEnded();
    await closed;
  }

  #becameIdle(): void {
    if (this.#ended || this.load > 0 || this.#idle !== undefined) return;
    if (!this.#mux) {
      this.end("its only tunnel ended");
      return;
    }
    this.#idle = setTimeout(() => {
      this.#idle = undefined;
      if (this.load === 0) this.end("no tunnels for a while");
    }, IDLE_SESSION_MS);
  }

  // The whole chain, the transport (a v2 upgrade, or a poll), HELLO and
  // WELCOME; then the session runs on the new connection.
  async #connect(signal: AbortSignal, reconnect: boolean): Promise<void> {
    const { stream, path, server } = await this.#dial(signal, reconnect);
    try {
      const { session } = this.#endpoint;
      await writeAll(stream, encodeFrame(session.hello()));
      const decoder = new FrameDecoder();
      const frames = await readWelcome(
        stream,
        decoder,
        this.#options.handshakeTimeoutMs,
        server,
      );
      const [welcome, ...rest] = frames;
      if (welcome.type !== "welcome") {
        throw new Error(`${server} sent ${welcome.type} before WELCOME`);
      }
      const asked = session.id;
      session.welcome(welcome);
      if (this.#ended) throw new Deno.errors.Interrupted("session ended");
      if (asked !== undefined && welcome.resume !== "resumed") {
        log.warn(
          `session ${
            sessionLabel(asked)
          } to ${server}: the server did not resume it (its resume window passed, or it restarted); its streams were reset, going on as session ${this.#label}`,
        );
      }
      this.#server = server;
      this.#path = path;
      this.#transport = stream;
      this.#endpoint.attach(queueSink(stream, this.#endpoint));
      this.#endpoint.receive(rest);
      this.#readLoop(stream, decoder);
    } catch (error) {
      closeQuietly(stream);
      throw error;
    }
  }

  async #readLoop(
    stream: SessionConnection,
    decoder: FrameDecoder,
  ): Promise<void> {
    let why = "the server closed the connection";
    try {
      while (this.#transport === stream) {
        const chunk = await stream.readChunk();
        if (chunk === null) break;
        const frames = decoder.push(chunk, true);
        if (this.#transport !== stream) return;
        this.#endpoint.receive(frames);
      }
    } catch (error) {
      why = errorMessage(error);
    }
    if (this.#transport !== stream) return;
    this.#lost(stream, why);
  }

  #lost(stream: Duplex, why: string): void {
    this.#transport = undefined;
    this.#endpoint.detach();
    this.#endpoint.session.transportLost();
    closeQuietly(stream);
    if (this.#options.resume === false || this.load === 0) {
      log.info(
        `session ${this.#label} to ${this.#server} ended: ${why}${
          this.load === 0 ? "" : " (resume=off)"
        }`,
      );
      this.end(`the connection to ${this.#server} was lost: ${why}`);
      return;
    }
    log.warn(
      `session ${this.#label} to ${this.#server} lost its connection (${why}); reconnecting, ${this.#endpoint.streamCount} stream(s) waiting`,
    );
    this.#reconnect();
  }

  async #reconnect(): Promise<void> {
    if (this.#reconnecting) return;
    this.#reconnecting = true;
    const windowMs = this.#options.resumeWindowMs ?? DEFAULT_RESUME_WINDOW_MS;
    const started = Date.now();
    try {
      for (let attempt = 1; !this.#ended; attempt++) {
        const delay = reconnectDelay(attempt, this.#random());
        const left = started + windowMs - Date.now();
        if (delay >= left) {
          await this.#pause(Math.max(0, left));
          if (this.#ended) return;
          const count = this.#endpoint.streamCount;
          const reason = `resume window of ${
            formatDuration(windowMs)
          } passed without reconnecting to ${this.#server}`;
          log.warn(
            `session ${this.#label}: ${reason} (${
              attempt - 1
            } attempts); ${count} stream(s) end`,
          );
          this.end(reason);
          return;
        }
        log.info(
          `session ${this.#label} to ${this.#server}: reconnect attempt ${attempt} in ${
            formatDuration(delay)
          }`,
        );
        await this.#pause(delay);
        if (this.#ended) return;
        try {
          await this.#connect(this.#abort.signal, true);
          log.info(
            `session ${this.#label} resumed on attempt ${attempt} after ${
              formatDuration(Date.now() - started)
            }: ${this.#path}, ${this.#endpoint.streamCount} stream(s)`,
          );
          return;
        } catch (error) {
          log.warn(
            `session ${this.#label} to ${this.#server}: reconnect attempt ${attempt} failed: ${
              errorMessage(error)
            }`,
          );
        }
      }
    } finally {
      this.#reconnecting = false;
    }
  }

  #pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#sleep = undefined;
        resolve();
      }, ms);
      this.#sleep = { timer, wake: resolve };
    });
  }

  #wakeSleep(): void {
    const sleep = this.#sleep;
    this.#sleep = undefined;
    if (sleep === undefined) return;
    clearTimeout(sleep.timer);
    sleep.wake();
  }
}

// Reads until WELCOME (and whatever came with it), within the handshake
// limit.
async function readWelcome(
  stream: SessionConnection,
  decoder: FrameDecoder,
  timeoutMs: number,
  server: string,
): Promise<Frame[]> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      closeQuietly(stream);
      reject(
        new Error(
          `${server} sent no WELCOME within ${formatDuration(timeoutMs)}`,
        ),
      );
    }, timeoutMs);
  });
  try {
    while (true) {
      const chunk = await Promise.race([stream.readChunk(), deadline]);
      if (chunk === null) {
        throw new Error(`${server} closed the connection before WELCOME`);
      }
      const frames = decoder.push(chunk, true);
      if (frames.length > 0) return frames;
    }
  } finally {
    clearTimeout(timer);
  }
}

// A sink that sends each batch as one message (the connection writes them
// one after the other), and asks the endpoint for more when it has
// written what it had.
function queueSink(
  stream: SessionConnection,
  endpoint: SessionEndpoint,
): FrameSink {
  let backlog = 0;
  return {
    send(parts) {
      let size = 0;
      for (const part of parts) size += part.length;
      backlog += size;
      stream.sendMessage(parts).then(() => {
        backlog -= size;
        if (backlog === 0) endpoint.flush();
      }, () => {
        // The read loop sees the connection fail, and reconnects.
        backlog -= size;
      });
    },
    get backlog() {
      return backlog;
    },
  };
}

// The same error a v1 upgrade refused with that status would have been,
// so failover and the log treat both alike.
function refusedError(
  server: string,
  destination: HostPort,
  code: RefuseCode,
  reason: string,
): WsRefusedError {
  const [status, word]: [number, WsRefusal] = {
    "not-allowed": [403, "not-allowed"],
    unreachable: [502, "unreachable"],
    refused: [502, "refused"],
    timeout: [504, "timeout"],
    auth: [401, "auth"],
    limit: [503, "busy"],
  }[code] as [number, WsRefusal];
  return new WsRefusedError(
    server,
    formatHostPort(destination),
    status,
    word,
    reason,
  );
}

// What makes two tunnels able to share a session: the same hops (with
// their credentials), the same token and trust, the same transport.
function poolKey(hops: readonly Hop[], options: DialOptions): string {
  return JSON.stringify([
    hops,
    options.token ?? null,
    options.fingerprint ? [...options.fingerprint] : null,
    options.clientCert ?? null,
    options.caCerts ?? null,
    options.heartbeatMs ?? null,
    options.transport ?? "auto",
  ]);
}
