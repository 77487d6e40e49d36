/**
 * The accept loop of one config entry. Every accepted connection becomes
 * its own tunnel task, so accepting never waits on a handshake. At a
 * connection limit the loop stops accepting until a tunnel ends.
 *
 * @module
 */

import { formatHostPort } from "./net/address.ts";
import type { TunnelOptions } from "./config/options.ts";
import {
  describeService,
  type LocalProxyEntry,
  type TunnelEntry,
} from "./config/entry.ts";
import { ConnectionLimit } from "./limit.ts";
import { logger } from "./observe/log.ts";
import { describeRoute } from "./route/types.ts";
import type { Metrics } from "./observe/metrics.ts";
import type { DialContext } from "./route/dial.ts";
import { type Greeter, startTunnel, type Tunnel } from "./tunnel.ts";
import { errorMessage } from "./errors.ts";

const log = logger("listener");

const ACCEPT_BACKOFF_MIN_MS = 50;
const ACCEPT_BACKOFF_MAX_MS = 2_000;

/** What all listeners of a supervisor share. */
export interface SharedState {
  /** The limit on tunnels of all entries together. */
  readonly limit: ConnectionLimit;
  /** Proxy failure memory and the proxy environment. */
  readonly dial: DialContext;
  /** Counters for /status and /metrics. */
  readonly metrics: Metrics;
  /** Bind with SO_REUSEPORT, so that other workers can bind the same ports. */
  readonly reusePort?: boolean;
  /** The local protocols of `proxy` and `socks` entries. */
  readonly greeters: Readonly<Record<LocalProxyEntry["kind"], Greeter>>;
}

/** Listens on one entry's source and starts a tunnel per connection. */
export class EntryListener {
  /** Tunnels that are open or opening. */
  readonly tunnels: Set<Tunnel> = new Set();
  #entry!: TunnelEntry;
  #options!: TunnelOptions;
  #defaults: TunnelOptions;
  #limit = new ConnectionLimit();
  #shared: SharedState;
  #listener: Deno.TcpListener;
  #loop: Promise<void>;
  #stop = new AbortController();

  /**
   * Binds the entry's source address and starts accepting.
   *
   * @param entry The entry to serve.
   * @param defaults Settings the entry does not override.
   * @param shared The overall limit, dial context and metrics.
   * @throws {Deno.errors.AddrInUse} and other bind errors.
   */
  constructor(
    entry: TunnelEntry,
    defaults: TunnelOptions,
    shared: SharedState,
  ) {
    this.#defaults = defaults;
    this.#shared = shared;
    this.entry = entry;
    this.#listener = Deno.listen({
      hostname: entry.source.host,
      port: entry.source.port,
      transport: "tcp",
      reusePort: shared.reusePort,
    });
    log.info(
      `listening on ${this.label} for ${describeService(entry)} ${
        describeRoute(entry.route)
      }`,
    );
    this.#loop = this.#acceptLoop();
  }

  /** The entry served. */
  get entry(): TunnelEntry {
    return this.#entry;
  }

  /** Serves a new version of the entry: new connections use its route and settings. */
  set entry(entry: TunnelEntry) {
    this.#entry = entry;
    this.#options = { ...this.#defaults, ...entry.options };
    this.#limit.max = this.#options.maxConnections;
  }

  /** The settings in force: the entry's, command-line defaults filled in. */
  get options(): TunnelOptions {
    return this.#options;
  }

  /** The bound address, e.g. `127.0.0.1:2222`. */
  get label(): string {
    return formatHostPort({
      host: this.#listener.addr.hostname,
      port: this.#listener.addr.port,
    });
  }

  /** The bound address as the operating system reports it. */
  get addr(): Deno.NetAddr {
    return this.#listener.addr;
  }

  /**
   * Stops accepting and waits until the port is free again. Open tunnels
   * are left running.
   */
  async close(): Promise<void> {
    if (!this.#stop.signal.aborted) {
      this.#stop.abort();
      this.#listener.close();
    }
    await this.#loop;
  }

  async #acceptLoop(): Promise<void> {
    let backoff = ACCEPT_BACKOFF_MIN_MS;
    while (await this.#reserve()) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        this.#release();
        if (this.#stop.signal.aborted) break;
        // A client that reset before it was accepted (a port scan does
        // this) is its own problem: take the next one at once.
        if (isClientError(error)) {
          log.debug(
            `accept on ${this.label}: a client left first: ${
              errorMessage(error)
            }`,
          );
          continue;
        }
        // EMFILE and friends: the listener stays; try again a little later.
        log.error(
          `accept on ${this.label} failed, retrying in ${backoff} ms: ${
            errorMessage(error)
          }`,
        );
        await sleep(backoff, this.#stop.signal);
        backoff = Math.min(backoff * 2, ACCEPT_BACKOFF_MAX_MS);
        continue;
      }
      backoff = ACCEPT_BACKOFF_MIN_MS;
      const tunnel = startTunnel(
        conn,
        this.#entry,
        this.#options,
        this.#shared.dial,
        this.#shared.metrics,
        this.#entry.kind === "forward"
          ? undefined
          : this.#shared.greeters[this.#entry.kind],
      );
      this.tunnels.add(tunnel);
      tunnel.done.finally(() => {
        this.tunnels.delete(tunnel);
        this.#release();
      });
    }
    log.info(`stopped listening on ${this.label}`);
  }

  // Takes a slot in the entry's and the shared limit, waiting (and saying
  // so once) while either is full. False once the listener is closed.
  async #reserve(): Promise<boolean> {
    const signal = this.#stop.signal;
    const waited = this.#limit.full || this.#shared.limit.full;
    // The common case, both limits free, takes no extra turn of the loop.
    if (!waited && !signal.aborted && this.#limit.tryAcquire()) {
      if (this.#shared.limit.tryAcquire()) return true;
      this.#limit.release();
    }
    if (waited) {
      const which = this.#limit.full
        ? `max-connections=${this.#limit.max} of ${this.label}`
        : `--max-connections ${this.#shared.limit.max}`;
      log.warn(
        `${which} reached: ${this.label} stops accepting until a tunnel ends`,
      );
    }
    if (!await this.#limit.acquire(signal)) return false;
    if (!await this.#shared.limit.acquire(signal)) {
      this.#limit.release();
      return false;
    }
    if (waited) log.info(`${this.label} accepts again`);
    return true;
  }

  #release(): void {
    this.#limit.release();
    this.#shared.limit.release();
  }
}

// Accept errors that belong to one connection, not to the listener.
const CLIENT_ERRORS = new Set([
  "ECONNABORTED",
  "ECONNRESET",
  "ENOTCONN",
  "EPROTO",
  "EPERM",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
]);

function isClientError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && CLIENT_ERRORS.has(code);
}

/**
 * Waits `ms` milliseconds, or less when `signal` aborts.
 *
 * @param ms How long to wait.
 * @param signal Ends the wait early.
 */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
