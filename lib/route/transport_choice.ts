/**
 * Which transport carries a route's sessions to `serve`: a WebSocket
 * (`transport=ws`), the poll transport of plain HTTP requests
 * (`transport=poll`, lib/poll/), or the WebSocket first and the poll
 * transport when the upgrade did not happen (`transport=auto`, the
 * default): a proxy on the way removed `Upgrade` (serve answers 426
 * `no-upgrade`), or the answer was no tunnel server's at all. A refusal
 * by serve itself (token, rate limit, shutting down) is never a reason to
 * fall back. The choice is made once per route and logged once, and
 * kept for /status ({@link TransportChoice.routes}).
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
  ): Promise<SessionTransport> {
    const server = describeServer(proxy);
    const mode = options.transport ?? "auto";
    const chosen = this.#chosen.get(key);
    const use = mode === "auto"
      ? chosen?.transport === "poll" ? "poll" : "ws"
      : mode;
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
      decided("websocket", null, `${server}: sessions use WebSocket`);
      return { stream, path: reached.path, server };
    } catch (error) {
      closeQuietly(reached.stream);
      if (mode !== "auto" || !upgradeDidNotHappen(error)) throw error;
      let poll: SessionTransport;
      try {
        poll = await dialPoll(hops, proxy, options, context, signal);
      } catch (pollError) {
        // Not a server that polls either: what the upgrade said stands.
        throw pollError instanceof NoPollTransportError ? error : pollError;
      }
      const why = error instanceof Error ? error.message : String(error);
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
