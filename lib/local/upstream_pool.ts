/**
 * Kept-alive connections to upstream proxies and origin servers, for the
 * plain HTTP requests of local proxies. NTLM authenticates a connection,
 * not a request, so reusing the connection is what spares every request
 * its own 407 rounds (as cntlm does). Connections are kept per key (the
 * upstream and the credentials), at most {@link UpstreamPoolOptions.maxIdle}
 * per key, and closed after {@link UpstreamPoolOptions.idleMs}.
 *
 * @module
 */

import type { BufferedDuplex } from "../net/buffered.ts";
import { closeQuietly } from "../net/duplex.ts";
import type { ProxyAuthenticator } from "../proxy/auth/authenticator.ts";
import { type CoarseTimer, coarseTimers } from "../time/timers.ts";

/** An open connection to an upstream, between requests. */
export interface UpstreamConnection {
  /** What the connection is for: which upstream, reached how, as whom. */
  readonly key: string;
  /** The connection, with whatever the upstream sent ahead. */
  readonly stream: BufferedDuplex;
  /**
   * The authentication that succeeded on this connection, which the next
   * requests reuse; absent until one has.
   */
  auth?: ProxyAuthenticator;
  /** Requests this connection has carried. */
  requests: number;
}

/** Options of an {@link UpstreamPool}. */
export interface UpstreamPoolOptions {
  /** Most idle connections kept per key. @default 8 */
  readonly maxIdle?: number;
  /** How long an idle connection is kept. @default 30 s */
  readonly idleMs?: number;
  /** Told the number of idle connections whenever it changes. @default none */
  readonly onSize?: (idle: number) => void;
}

interface Idle {
  readonly connection: UpstreamConnection;
  readonly timer: CoarseTimer;
}

/** Idle upstream connections, most recently used first. */
export class UpstreamPool {
  #idle = new Map<string, Idle[]>();
  #size = 0;
  #maxIdle: number;
  #idleMs: number;
  #onSize: (idle: number) => void;

  /** @param options Limits, and who hears of the pool's size. */
  constructor(options: UpstreamPoolOptions = {}) {
    this.#maxIdle = options.maxIdle ?? 8;
    this.#idleMs = options.idleMs ?? 30_000;
    this.#onSize = options.onSize ?? (() => {});
  }

  /** Idle connections over all keys. */
  get size(): number {
    return this.#size;
  }

  /**
   * Takes an idle connection for `key`.
   *
   * @param key The upstream and credentials.
   * @returns The most recently used one, or `undefined`.
   */
  take(key: string): UpstreamConnection | undefined {
    const idle = this.#idle.get(key)?.pop();
    if (idle === undefined) return undefined;
    idle.timer.cancel();
    this.#resize(-1);
    return idle.connection;
  }

  /**
   * Keeps a connection for the next request, or closes it when its key
   * already has enough.
   *
   * @param connection A connection whose last response was read whole.
   */
  put(connection: UpstreamConnection): void {
    const list = this.#idle.get(connection.key) ?? [];
    if (list.length >= this.#maxIdle) {
      closeQuietly(connection.stream);
      return;
    }
    const idle: Idle = {
      connection,
      timer: coarseTimers.after(this.#idleMs, () => {
        const index = list.indexOf(idle);
        if (index < 0) return;
        list.splice(index, 1);
        if (list.length === 0) this.#idle.delete(connection.key);
        closeQuietly(connection.stream);
        this.#resize(-1);
      }),
    };
    list.push(idle);
    this.#idle.set(connection.key, list);
    this.#resize(1);
  }

  /** Closes every idle connection. */
  close(): void {
    for (const list of this.#idle.values()) {
      for (const { connection, timer } of list) {
        timer.cancel();
        closeQuietly(connection.stream);
      }
    }
    this.#idle.clear();
    this.#resize(-this.#size);
  }

  #resize(change: number): void {
    this.#size += change;
    this.#onSize(this.#size);
  }
}
