/**
 * The running set of listeners: applies a config (the first one and every
 * reload as a diff), retries ports that cannot be bound, drains removed
 * entries' tunnels, and shuts everything down.
 *
 * @module
 */

import type { ConfigDiff } from "./config/diff.ts";
import { diffEntries } from "./config/diff.ts";
import { sourceKey, type TunnelEntry } from "./config/entry.ts";
import { formatDuration } from "./time/duration.ts";
import { settledWithin } from "./time/settle.ts";
import { EntryListener, type SharedState } from "./listener.ts";
import { logger } from "./observe/log.ts";
import { ConnectionLimit } from "./limit.ts";
import { Metrics } from "./observe/metrics.ts";
import type { ProxyEnvironment } from "./route/env.ts";
import { ProxyHealth, type ProxyHealthView } from "./route/health.ts";
import { SessionPool, type SessionRouteView } from "./route/session_pool.ts";
import { describeProxy } from "./route/types.ts";
import { PacEngines } from "./route/pac/engine.ts";
import type { TunnelOptions } from "./config/options.ts";
import type { Tunnel } from "./tunnel.ts";
import type { TunnelHost } from "./tunnel_host.ts";
import { httpProxyGreeter } from "./local/http_proxy.ts";
import { socksGreeter } from "./local/socks_proxy.ts";
import { UpstreamPool } from "./local/upstream_pool.ts";
import { errorMessage } from "./errors.ts";
import { findPortHolder } from "./net/port_holder.ts";

const log = logger("supervisor");
const pacLog = logger("pac");

const BIND_RETRY_MIN_MS = 1_000;
const BIND_RETRY_MAX_MS = 30_000;

/** Settings of a {@link Supervisor}. */
export interface SupervisorOptions {
  /** Tunnel settings for entries that do not set their own. */
  readonly defaults: TunnelOptions;
  /** Most tunnels open at once over all entries; unlimited when absent. */
  readonly maxConnections?: number;
  /** The proxy environment read at start, for `env` routes. */
  readonly environment?: ProxyEnvironment;
  /** Backoff after a proxy's first failure; doubles with each failure. */
  readonly failoverBackoffMs?: number;
  /** Bind with SO_REUSEPORT, for `--workers`. */
  readonly reusePort?: boolean;
  /**
   * How often a `transport=auto` route that fell back to polling tries the
   * WebSocket again, as a session reconnects. @default WS_RETRY_MS
   */
  readonly wsRetryMs?: number;
}

type Timer = ReturnType<typeof setTimeout>;

interface PendingBind {
  entry: TunnelEntry;
  timer: Timer;
  error: string;
  /** Who holds the port, found after the first failure; kept by retries. */
  holder?: string;
}

/** An entry of the running config and what it is doing. */
export interface EntryState {
  /** The entry. */
  readonly entry: TunnelEntry;
  /** Accepting, or waiting to bind its port again. */
  readonly state: "listening" | "retrying";
  /** Why the port could not be bound, while retrying. */
  readonly error?: string;
  /** Tunnels open or opening. */
  readonly active: number;
  /** Each proxy of the entry's route and its health; none for direct and env. */
  readonly proxies: readonly EntryProxy[];
}

/** A proxy of an entry's route, for /status. */
export interface EntryProxy extends ProxyHealthView {
  /** Its hop, 1 for the first. */
  readonly hop: number;
  /** The proxy, password masked. */
  readonly proxy: string;
}

/** Owns every listener and tunnel of a running config. */
export class Supervisor implements TunnelHost {
  /** Never resolves: a supervisor on this thread fails by throwing. */
  readonly failed: Promise<string> = new Promise(() => {});
  #options: SupervisorOptions;
  #entries: TunnelEntry[] = [];
  #listeners = new Map<string, EntryListener>();
  #pending = new Map<string, PendingBind>();
  #draining = new Set<Tunnel>();
  #drainTimers = new Set<Timer>();
  #lookups = new Set<Promise<void>>();
  #shared: SharedState;
  #upstreams: UpstreamPool;
  #sessions: SessionPool;

  /** @param options Default tunnel settings, limits and the proxy environment. */
  constructor(options: SupervisorOptions) {
    this.#options = options;
    this.#sessions = new SessionPool(Math.random, {
      wsRetryMs: options.wsRetryMs,
    });
    const metrics = new Metrics();
    this.#upstreams = new UpstreamPool({
      onSize: (idle) => metrics.upstreamIdle = idle,
    });
    this.#shared = {
      limit: new ConnectionLimit(options.maxConnections),
      dial: {
        health: new ProxyHealth(options.failoverBackoffMs),
        environment: options.environment ?? { noProxy: [] },
        pac: new PacEngines({
          log: (level, message) => pacLog[level](message),
          refreshSignal: Deno.build.os === "windows" ? undefined : "SIGHUP",
        }),
        sessions: this.#sessions,
      },
      metrics,
      reusePort: options.reusePort,
      greeters: {
        "http-proxy": httpProxyGreeter(this.#upstreams),
        socks: socksGreeter,
      },
    };
  }

  /** The counters behind /status and /metrics. */
  get metrics(): Metrics {
    return this.#shared.metrics;
  }

  /** The supervisor itself: it holds what /status reads. */
  status(): this {
    return this;
  }

  /** The running entries and what each is doing. */
  entries(): EntryState[] {
    return this.#entries.map((entry) => {
      const key = sourceKey(entry);
      const listener = this.#listeners.get(key);
      const pending = this.#pending.get(key);
      return {
        entry,
        state: listener ? "listening" : "retrying",
        error: pending &&
          (pending.holder
            ? `${pending.error}; ${pending.holder}`
            : pending.error),
        active: listener?.tunnels.size ?? 0,
        proxies: entry.route.kind === "chain"
          ? entry.route.hops.flatMap((hop, i) =>
            hop.map((proxy) => ({
              hop: i + 1,
              proxy: describeProxy(proxy),
              ...this.#shared.dial.health.view(proxy),
            }))
          )
          : [],
      };
    });
  }

  /** Each session route's transport and its sessions. */
  get sessionRoutes(): SessionRouteView[] {
    return this.#sessions.routes();
  }

  /** Listeners that are accepting, by source address. */
  get listeners(): ReadonlyMap<string, EntryListener> {
    return this.#listeners;
  }

  /** Every tunnel that is open or opening, draining ones included. */
  get tunnels(): Tunnel[] {
    return [
      ...[...this.#listeners.values()].flatMap((l) => [...l.tunnels]),
      ...this.#draining,
    ];
  }

  /**
   * Makes `entries` the running set. Unchanged entries are not touched;
   * changed ones keep listening and use their new route for new
   * connections; removed ones stop listening before added ones bind, so a
   * port can move from one entry to another.
   *
   * @param entries The new config's entries.
   * @returns What changed.
   */
  async apply(entries: readonly TunnelEntry[]): Promise<ConfigDiff> {
    const started = performance.now();
    const diff = diffEntries(this.#entries, entries);
    if (diff.added.length + diff.removed.length + diff.changed.length > 0) {
      this.#shared.dial.health.newConfig();
    }
    await Promise.all(diff.removed.map((entry) => this.#remove(entry)));
    for (const entry of [...diff.changed, ...diff.unchanged]) {
      const key = sourceKey(entry);
      const listener = this.#listeners.get(key);
      if (listener) listener.entry = entry;
      const pending = this.#pending.get(key);
      if (pending) pending.entry = entry;
    }
    for (const entry of diff.added) this.#bind(entry, BIND_RETRY_MIN_MS);
    this.#entries = [...entries];
    await this.#shared.dial.pac?.retain(entries.map((entry) => entry.route));
    // Who holds a port that is taken, before the summary and the state
    // that /status and run's startup line show.
    await Promise.all(this.#lookups);
    const waiting = this.#pending.size;
    log.info(
      `config applied: ${diff.added.length} added, ${diff.removed.length} removed, ${diff.changed.length} changed, ${diff.unchanged.length} unchanged in ${
        formatDuration(performance.now() - started)
      }${
        waiting > 0
          ? `; ${this.#listeners.size} listening, ${waiting} waiting for a port`
          : ""
      }`,
    );
    return diff;
  }

  /**
   * Stops every listener, lets live tunnels finish for up to `graceMs`,
   * closes the rest and waits until all are gone.
   *
   * @param graceMs How long live tunnels may go on; 0 closes them at once.
   */
  async shutdown(graceMs = 0): Promise<void> {
    this.#upstreams.close();
    await this.#shared.dial.pac?.close();
    for (const pending of this.#pending.values()) clearTimeout(pending.timer);
    this.#pending.clear();
    for (const timer of this.#drainTimers) clearTimeout(timer);
    this.#drainTimers.clear();
    const listeners = [...this.#listeners.values()];
    this.#listeners.clear();
    this.#entries = [];
    await Promise.all(listeners.map((listener) => listener.close()));
    await Promise.all(this.#lookups);
    const tunnels = [
      ...listeners.flatMap((listener) => [...listener.tunnels]),
      ...this.#draining,
    ];
    const ended = Promise.all(tunnels.map((tunnel) => tunnel.done));
    if (tunnels.length > 0 && graceMs > 0) {
      log.info(
        `waiting up to ${
          formatDuration(graceMs)
        } for ${tunnels.length} live tunnel(s) to finish`,
      );
      await settledWithin(ended, graceMs);
    }
    const left = tunnels.filter((tunnel) => !tunnel.ended);
    if (left.length > 0 && graceMs > 0) {
      log.info(`closing ${left.length} tunnel(s) still open`);
    }
    for (const tunnel of left) tunnel.close();
    await ended;
    await this.#sessions.close();
  }

  async #remove(entry: TunnelEntry): Promise<void> {
    const key = sourceKey(entry);
    const pending = this.#pending.get(key);
    if (pending) {
      clearTimeout(pending.timer);
      this.#pending.delete(key);
    }
    const listener = this.#listeners.get(key);
    if (!listener) return;
    this.#listeners.delete(key);
    await listener.close();
    const tunnels = [...listener.tunnels];
    if (tunnels.length === 0) return;
    const { drainTimeoutMs } = listener.options;
    log.info(
      `${key} removed; ${tunnels.length} live tunnel(s) carry on until they end${
        drainTimeoutMs === undefined
          ? ""
          : ` or for ${formatDuration(drainTimeoutMs)}`
      }`,
    );
    for (const tunnel of tunnels) {
      this.#draining.add(tunnel);
      tunnel.done.finally(() => this.#draining.delete(tunnel));
    }
    if (drainTimeoutMs !== undefined) {
      const timer = setTimeout(() => {
        this.#drainTimers.delete(timer);
        for (const tunnel of tunnels) {
          if (!this.#draining.has(tunnel)) continue;
          log.info(`${tunnel.id} closed: drain timeout of removed ${key}`);
          tunnel.close();
        }
      }, drainTimeoutMs);
      this.#drainTimers.add(timer);
    }
  }

  #bind(entry: TunnelEntry, delayMs: number): void {
    const key = sourceKey(entry);
    const holder = this.#pending.get(key)?.holder;
    this.#pending.delete(key);
    try {
      this.#listeners.set(
        key,
        new EntryListener(entry, this.#options.defaults, this.#shared),
      );
    } catch (error) {
      const message = `cannot listen on ${key} (${
        entry.line > 0 ? `line ${entry.line}` : "-L"
      }), retrying in ${formatDuration(delayMs)}: ${errorMessage(error)}`;
      const inUse = error instanceof Deno.errors.AddrInUse;
      const pending: PendingBind = {
        entry,
        error: errorMessage(error),
        holder: inUse ? holder : undefined,
        timer: setTimeout(
          () =>
            this.#bind(
              pending.entry,
              Math.min(delayMs * 2, BIND_RETRY_MAX_MS),
            ),
          delayMs,
        ),
      };
      this.#pending.set(key, pending);
      // The first failure names who holds the port; retries repeat only
      // the error.
      if (inUse && delayMs === BIND_RETRY_MIN_MS) {
        const lookup = findPortHolder(entry.source.port).then((found) => {
          pending.holder = found
            ? `pid ${found.pid} listens there: ${found.command}`
            : "another program listens there; another httptunneling may be running: `ss -ltnp` names it";
          log.error(`${message} (${pending.holder})`);
        });
        this.#lookups.add(lookup);
        lookup.finally(() => this.#lookups.delete(lookup));
      } else {
        log.error(message);
      }
    }
  }
}
