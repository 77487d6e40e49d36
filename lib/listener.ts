/**
 * The accept loop of one config entry. Every accepted connection becomes
 * its own tunnel task, so accepting never waits on a handshake.
 *
 * @module
 */

import { formatHostPort } from "./address.ts";
import type { TunnelEntry } from "./config/parse.ts";
import { logger } from "./log.ts";
import type { DialOptions } from "./route/dial.ts";
import { describeRoute } from "./route/types.ts";
import { startTunnel, type Tunnel } from "./tunnel.ts";

const log = logger("listener");

const ACCEPT_BACKOFF_MIN_MS = 50;
const ACCEPT_BACKOFF_MAX_MS = 2_000;

/** Listens on one entry's source and starts a tunnel per connection. */
export class EntryListener {
  /** The entry served; replaced when a reload changes its route. */
  entry: TunnelEntry;
  /** Tunnels that are open or opening. */
  readonly tunnels: Set<Tunnel> = new Set();
  #listener: Deno.TcpListener;
  #options: DialOptions;
  #loop: Promise<void>;
  #stop = new AbortController();

  /**
   * Binds the entry's source address and starts accepting.
   *
   * @param entry The entry to serve.
   * @param options Time limits for opening routes.
   * @throws {Deno.errors.AddrInUse} and other bind errors.
   */
  constructor(entry: TunnelEntry, options: DialOptions) {
    this.entry = entry;
    this.#options = options;
    this.#listener = Deno.listen({
      hostname: entry.source.host,
      port: entry.source.port,
      transport: "tcp",
    });
    log.info(
      `listening on ${this.label} for ${formatHostPort(entry.destination)} ${
        describeRoute(entry.route)
      }`,
    );
    this.#loop = this.#acceptLoop();
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
    while (!this.#stop.signal.aborted) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        if (this.#stop.signal.aborted) break;
        // EMFILE and friends: the listener stays; try again a little later.
        log.error(
          `accept on ${this.label} failed, retrying in ${backoff} ms: ${
            (error as Error).message
          }`,
        );
        await sleep(backoff, this.#stop.signal);
        backoff = Math.min(backoff * 2, ACCEPT_BACKOFF_MAX_MS);
        continue;
      }
      backoff = ACCEPT_BACKOFF_MIN_MS;
      const tunnel = startTunnel(conn, this.entry, this.#options);
      this.tunnels.add(tunnel);
      tunnel.done.finally(() => this.tunnels.delete(tunnel));
    }
    log.info(`stopped listening on ${this.label}`);
  }
}

/**
 * Waits `ms` milliseconds, or less when `signal` aborts.
 *
 * @param ms How long to wait.
 * @param signal Ends the wait early.
 */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
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
