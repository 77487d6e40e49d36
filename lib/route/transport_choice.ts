/**
 * Which transport carries a route's sessions to `serve`: a WebSocket
 * (`transport=ws`), the poll transport of plain HTTP requests
 * (`transport=poll`, lib/poll/), or the WebSocket first and the poll
 * transport when the upgrade did not happen (`transport=auto`, the
 * default): a proxy on the way removed `Upgrade` (serve answers 426
 * `no-upgrade`), or the answer was no tunnel server's at all. A refusal
 * by serve itself (token, rate limit, shutting down) is never a reason to
 * fall back. The choice is made per route and logged when it changes, and
 * kept for /status ({@link TransportChoice.routes}). A route that fell
 * back tries the WebSocket again when a session reconnects after losing
 * its transport (the path may have changed: another proxy, a new
 * config), at most once per {@link WS_RETRY_MS}, and goes back to it when
 * the upgrade gets through.
 *
 * ```
 * dial ─▶ chain + TLS to the server ─┬─ ws ─▶ v2 upgrade ───────────────────┐
 *                                    │        └ did not happen (auto) ─▶ poll ├─▶ SessionTransport
 *                                    └─ poll ─▶ open + second connection ─────┘
 * ```
 *
 * @module
 */

import { routeFailure, WsRefusedError } from "../errors.ts";
import type { DialOptions } from "../net/dialer.ts";
import { closeQuietly, type Duplex } from "../net/duplex.ts";
import { logger } from "../observe/log.ts";
import { formatDuration } from "../time/duration.ts";
import { NoPollTransportError, openPoll } from "../poll/client.ts";
import {
  describeServer,
  NoSessionProtocolError,
  wsSessionUpgrade,
} from "../proxy/ws_connect.ts";
import { dialWithFailover, type FailoverContext } from "./failover.ts";
import { transportFor } from "./transport.ts";
import { describeProxy, describeRoute, type Hop, type Proxy } from "./types.ts";

const log = logger("session");

/** The values of `transport=`. */
export type TransportMode = "auto" | "ws" | "poll";

/** The values of `transport=`, in the order the usage lists them. */
export const TRANSPORT_MODES: readonly TransportMode[] = ["auto", "ws", "poll"];

/** How often a route that fell back to polling tries the WebSocket again. */
export const WS_RETRY_MS = 5 * 60_000;

/**
 * A byte stream to the far end whose close says goodbye: the returned
 * promise settles once that is sent (or given up on).
 */
export interface SessionConnection extends Duplex {
  /** Closes with a goodbye the server takes as the session's end. */
  close(): void | Promise<void>;
  /** The next received bytes, handed over without a copy; `null` at the end. */
  readChunk(): Promise<Uint8Array | null>;
  /**
   * Sends a batch of frame bytes as one message; the pieces are copied
   * before this returns.
   */
  sendMessage(parts: readonly Uint8Array[]): Promise<void>;
}

/** A connection to the far end that carries session frame bytes. */
export interface SessionTransport {
  /** Frame bytes both ways. */
  readonly stream: SessionConnection;
  /** e.g. `via http://squid:3128 -> wss://far/t (poll)`. */
  readonly path: string;
  /** `host:port/path` of the server, for messages. */
  readonly server: string;
}

/**
 * Whether a failed v2 upgrade means the upgrade did not get through, so
 * that `transport=auto` tries the poll transport: serve said its Upgrade
 * header was removed, or the answer was not a tunnel server's (a 400 or
 * 404 without serve's refusal word, a proxy's own page). Pure.
 *
 * @param error What the upgrade threw.
 * @returns `true` to try the poll transport.
 */
export function upgradeDidNotHappen(error: unknown): boolean {
  if (error instanceof NoSessionProtocolError) return true;
  return error instanceof WsRefusedError &&
    (error.refusal === "no-upgrade" || error.refusal === "not-a-tunnel");
}

/** What {@link retriesWebSocket} weighs. */
export interface WsRetryQuestion {
  /** The dial reconnects a session that lost its transport. */
  readonly reconnect: boolean;
  /** When the route last tried the upgrade to an answer, ms since the epoch. */
  readonly triedAt: number;
  /** Now, ms since the epoch. */
  readonly now: number;
  /** The least time between two tries. */
  readonly everyMs: number;
}

/**
 * Whether a `transport=auto` route that fell back to polling tries the
 * WebSocket upgrade first on this dial: only when a session reconnects
 * after losing its transport, and not sooner than `everyMs` after the
 * last try, so a path that still strips `Upgrade` costs one refused
 * upgrade per interval at most. Pure.
 *
 * @param question The dial, the last try and the interval.
 * @returns `true` to try the WebSocket first.
 *
 * @example
 * ```ts
 * retriesWebSocket({ reconnect: true, triedAt: 0, now: 300_000, everyMs: 300_000 }); // true
 * retriesWebSocket({ reconnect: false, triedAt: 0, now: 900_000, everyMs: 300_000 }); // false
 * ```
 */
export function retriesWebSocket(question: WsRetryQuestion): boolean {
  return question.reconnect &&
    question.now - question.triedAt >= question.everyMs;
}

/** Options of {@link TransportChoice}. */
export interface TransportChoiceOptions {
  /** The least time between two WebSocket tries of a route that fell back. @default WS_RETRY_MS */
  readonly wsRetryMs?: number;
  /** The clock. @default Date.now */
  readonly now?: () => number;
}

/** A route's session transport, as /status shows it. */
export interface RouteTransportView {
  /** The route to the server, e.g. `via http://squid:3128 -> wss://far:443/t`; no secrets. */
  readonly route: string;
  /** Its `transport=`. */
  readonly mode: TransportMode;
  /** What carries its sessions now. */
  readonly transport: "websocket" | "poll";
  /** Why `transport=auto` fell back to polling; `null` when it did not. */
  readonly fallback: string | null;
  /** When this transport was chosen, ISO 8601. */
  readonly since: string;
}

/** The transports chosen per route, for `transport=auto` and /status. */
export class TransportChoice {
  readonly #chosen = new Map<string, RouteTransportView>();
  // When each route last tried the upgrade to an answer.
  readonly #wsTriedAt = new Map<string, number>();
  readonly #wsRetryMs: number;
  readonly #now: () => number;

  /** @param options The WebSocket retry interval and the clock. */
  constructor(options: TransportChoiceOptions = {}) {
    this.#wsRetryMs = options.wsRetryMs ?? WS_RETRY_MS;
    this.#now = options.now ?? Date.now;
  }

  /**
   * The transport each route uses, as last chosen.
   *
   * @returns One view per route (hops, token and trust) that dialed.
   */
  routes(): { key: string; view: RouteTransportView }[] {
    return [...this.#chosen].map(([key, view]) => ({ key, view }));
  }

  /**
   * Opens a session transport through `hops`, whose last hop is the
   * server: the hops before it with failover, then the server's
   * alternatives in the order of their health.
   *
   * @param key Names the route (its hops, token, trust).
   * @param hops The chain.
   * @param options Limits, trust, token, `transport`.
   * @param context Proxy failure memory.
   * @param signal Gives up when aborted.
   * @param reconnect The dial reconnects a session that lost its
   *   transport: a route that fell back may try the WebSocket again.
   * @returns The transport.
   * @throws the chain's failures; {@link WsRefusedError} when serve
   *   refused; {@link NoSessionProtocolError} when it speaks v1 only.
   */
  async dial(
    key: string,
    hops: readonly Hop[],
    options: DialOptions,
    context: FailoverContext,
    signal: AbortSignal,
    reconnect = false,
  ): Promise<SessionTransport> {
    const alternatives = context.health.order(hops[hops.length - 1]);
    let last: unknown;
    for (const proxy of alternatives) {
      try {
        const transport = await this.#dialServer(
          key,
          hops,
          proxy,
          options,
          context,
          signal,
          reconnect,
        );
        const failures = context.health.succeeded(proxy);
        if (failures > 0) context.onRecovered?.(proxy, failures);
        return transport;
      } catch (error) {
        last = error;
        const classified = routeFailure(error);
        if (signal.aborted || !classified?.proxyFault) throw error;
        context.health.failed(proxy, error);
      }
    }
    throw last;
  }

  async #dialServer(
    key: string,
    hops: readonly Hop[],
    proxy: Proxy,
    options: DialOptions,
    context: FailoverContext,
    signal: AbortSignal,
    reconnect: boolean,
  ): Promise<SessionTransport> {
    const server = describeServer(proxy);
    const mode = options.transport ?? "auto";
    const chosen = this.#chosen.get(key);
    const fellBack = mode === "auto" && chosen?.transport === "poll";
    const retry = fellBack && retriesWebSocket({
      reconnect,
      triedAt: this.#wsTriedAt.get(key) ?? 0,
      now: this.#now(),
      everyMs: this.#wsRetryMs,
    });
    const use = mode === "auto" ? fellBack && !retry ? "poll" : "ws" : mode;
    if (retry) {
      log.info(
        `${server}: trying the WebSocket again as the session reconnects (the poll transport since ${chosen.since}; transport=auto)`,
      );
    }
    const decided = (
      transport: RouteTransportView["transport"],
      fallback: string | null,
      message: string,
    ) =>
      this.#decided(key, {
        route: describeRoute({ kind: "chain", hops }),
        mode,
        transport,
        fallback,
        since: new Date().toISOString(),
      }, message);
    if (use === "poll") {
      const poll = await dialPoll(hops, proxy, options, context, signal);
      decided(
        "poll",
        chosen?.fallback ?? null,
        `${server}: sessions use the poll transport`,
      );
      return poll;
    }
    const reached = await reach(hops, proxy, options, context, signal);
    try {
      const stream = await wsSessionUpgrade(reached.stream, {
        proxy,
        timeoutMs: options.handshakeTimeoutMs,
        signal,
        settings: options,
      });
      if (mode === "auto") this.#wsTriedAt.set(key, this.#now());
      decided(
        "websocket",
        null,
        retry
          ? `${server}: the WebSocket upgrade gets through again; sessions use WebSocket (transport=auto)`
          : `${server}: sessions use WebSocket`,
      );
      return { stream, path: reached.path, server };
    } catch (error) {
      closeQuietly(reached.stream);
      if (mode !== "auto" || !upgradeDidNotHappen(error)) throw error;
      this.#wsTriedAt.set(key, this.#now());
      let poll: SessionTransport;
      try {
        poll = await dialPoll(hops, proxy, options, context, signal);
      } catch (pollError) {
        // Not a server that polls either: what the upgrade said stands.
        throw pollError instanceof NoPollTransportError ? error : pollError;
      }
      const why = error instanceof Error ? error.message : String(error);
      if (retry) {
        log.info(
          `${server}: the WebSocket upgrade still did not happen (${why}); staying with the poll transport, next try in ${
            formatDuration(this.#wsRetryMs)
          } at the earliest`,
        );
      }
      decided(
        "poll",
        why,
        `${server}: the WebSocket upgrade did not happen (${why}); falling back to the poll transport (transport=auto)`,
      );
      return poll;
    }
  }

  // Remembers a route's transport, logging a change.
  #decided(key: string, view: RouteTransportView, message: string): void {
    if (this.#chosen.get(key)?.transport === view.transport) return;
    this.#chosen.set(key, view);
    log.info(message);
  }
}

/**
 * The server `proxy` reached through the hops before it (with failover),
 * its TLS done for wss://.
 */
async function reach(
  hops: readonly Hop[],
  proxy: Proxy,
  options: DialOptions,
  context: FailoverContext,
  signal: AbortSignal,
): Promise<{ stream: Duplex; path: string }> {
  const before = hops.slice(0, -1);
  const { dialer } = transportFor(proxy.scheme);
  if (before.length === 0) {
    return {
      stream: await dialer.dial(proxy, options, signal),
      path: `via ${describeProxy(proxy)}`,
    };
  }
  const reached = await dialWithFailover(
    before,
    proxy,
    options,
    context,
    signal,
  );
  const path = `${reached.path} -> ${describeProxy(proxy)}`;
  if (dialer.handshakeName === undefined) {
    return { stream: reached.stream, path };
  }
  return {
    stream: await dialer.handshake(reached.stream, proxy, options),
    path,
  };
}

// The poll transport to `proxy`: two connections, each reached the same
// way; a connection that closes later is reached again, within the dial's
// own time limits and not stopped by `signal`: the close request that ends
// the session goes after the session aborted its dials.
async function dialPoll(
  hops: readonly Hop[],
  proxy: Proxy,
  options: DialOptions,
  context: FailoverContext,
  signal: AbortSignal,
): Promise<SessionTransport> {
  const server = describeServer(proxy);
  const first = await reach(hops, proxy, options, context, signal);
  const later = new AbortController().signal;
  const again = async () =>
    (await reach(hops, proxy, options, context, later)).stream;
  const stream = await openPoll(first.stream, again, {
    server: proxy,
    path: proxy.path ?? "/",
    name: server,
    token: options.token,
    timeoutMs: options.handshakeTimeoutMs,
    signal,
  });
  return { stream, path: `${first.path} (poll)`, server };
}
