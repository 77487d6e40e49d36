/**
 * One accepted connection's life: for a local proxy, its protocol's
 * greeting (the client names a destination); then open the route, relay,
 * log the outcome.
 *
 * @module
 */

import { formatHostPort, type HostPort } from "./net/address.ts";
import {
  type LocalProxyEntry,
  sourceKey,
  type TunnelEntry,
} from "./config/entry.ts";
import { closeQuietly, type Duplex } from "./net/duplex.ts";
import { formatDuration } from "./time/duration.ts";
import { formatBytes, logger } from "./observe/log.ts";
import { failureReason, type Metrics } from "./observe/metrics.ts";
import type { TunnelOptions } from "./config/options.ts";
import {
  newCounters,
  relay,
  type RelayCounters,
  type RelayResult,
} from "./relay.ts";
import { setTcpOptions } from "./net/tcp.ts";
import { type DialContext, dialRoute } from "./route/dial.ts";
import { describeProxy, describeRoute, type Route } from "./route/types.ts";
import { errorMessage, WsRefusedError } from "./errors.ts";

const log = logger("tunnel");
let lastId = 0;
let idStep = 1;

/**
 * Numbers tunnels `first`, `first + step`, ...: with `--workers`, worker i
 * of n numbers from i + 1 in steps of n, so ids stay unique in the log.
 *
 * @param first The first tunnel's number.
 * @param step The distance between two numbers.
 */
export function numberTunnels(first: number, step: number): void {
  lastId = first - step;
  idStep = step;
}

/** A tunnel that is being opened or is carrying data. */
export interface Tunnel {
  /** Short id that appears in every log line about this tunnel, e.g. `c42`. */
  readonly id: string;
  /** The client's `host:port`. */
  readonly client: string;
  /** The entry the tunnel was opened for. */
  readonly entry: TunnelEntry;
  /** Where the tunnel leads, once known (a local proxy's client names it). */
  readonly destination?: HostPort;
  /** When the client was accepted (ms since the epoch). */
  readonly startedAt: number;
  /** Bytes moved so far. */
  readonly counters: RelayCounters;
  /** Closes the tunnel now. */
  close(): void;
  /** Whether the tunnel has ended. */
  readonly ended: boolean;
  /** Settles when the tunnel has ended and both connections are closed. */
  readonly done: Promise<void>;
}

/** What a local proxy's client asked for, once its protocol has said it. */
export interface Greeting {
  /** The client's stream, with any bytes it sent past its request in front. */
  readonly client: Duplex;
  /** Where the client asked to go. */
  readonly destination: HostPort;
  /** The route to it: the entry's, or direct by the entry's rules. */
  readonly route: Route;
  /** Tells the client its tunnel is open (an HTTP 200, a SOCKS success). */
  established(): Promise<void>;
  /**
   * Tells the client why its tunnel could not open.
   *
   * @param error What opening the route threw.
   */
  refused(error: unknown): Promise<void>;
}

/** What a greeter may use while it speaks with a client. */
export interface GreetSession {
  /** The tunnel's id, for log lines. */
  readonly id: string;
  /** The client's `host:port`, for log lines. */
  readonly clientLabel: string;
  /** The client's address. */
  readonly clientAddr: Deno.NetAddr;
  /** The entry served. */
  readonly entry: LocalProxyEntry;
  /** The entry's settings, command-line defaults filled in. */
  readonly options: TunnelOptions;
  /** Proxy failure memory, the proxy environment and upstream connections. */
  readonly context: DialContext;
  /** Counters to update. */
  readonly metrics: Metrics;
  /** Aborted when the tunnel is closed (shutdown, drain timeout). */
  readonly signal: AbortSignal;
}

/**
 * Speaks a local proxy's protocol with a client (HTTP proxy, SOCKS) until
 * it asks for a tunnel. A new local protocol is a new greeter.
 */
export interface Greeter {
  /**
   * Reads what the client wants, serving what needs no tunnel (plain HTTP
   * requests) on the way.
   *
   * @param client The accepted connection; on failure the greeter closes it.
   * @param session The entry, its settings, and what it may use.
   * @returns The tunnel to open, or `undefined` when the client has finished
   *   without asking for one.
   */
  greet(
    client: Deno.TcpConn,
    session: GreetSession,
  ): Promise<Greeting | undefined>;
}

/**
 * Serves one accepted connection along `entry`'s route, in its own task.
 * Client bytes are not read before the route is open, so nothing is
 * forwarded before a proxy's 2xx.
 *
 * @param client The accepted connection; the tunnel owns it from now on.
 * @param entry The entry whose route to use.
 * @param options The entry's settings, command-line defaults filled in.
 * @param context Proxy failure memory and the proxy environment.
 * @param metrics Counters to update.
 * @param greeter The local protocol of a `proxy` or `socks` entry.
 * @returns The running tunnel.
 */
export function startTunnel(
  client: Deno.TcpConn,
  entry: TunnelEntry,
  options: TunnelOptions,
  context: DialContext,
  metrics: Metrics,
  greeter?: Greeter,
): Tunnel {
  return new RunningTunnel(client, entry, options, context, metrics, greeter);
}

// A class rather than closures: thousands of idle tunnels share its
// methods, and each holds only its fields.
class RunningTunnel implements Tunnel {
  readonly id: string = `c${lastId += idStep}`;
  // Formatted only when asked for (logs, /status): most tunnels never are.
  readonly #remote: Deno.NetAddr;
  readonly entry: TunnelEntry;
  destination?: HostPort;
  readonly startedAt: number = Date.now();
  readonly counters: RelayCounters = newCounters();
  readonly done: Promise<void>;
  #ended = false;
  #closed = false;
  // Cancels opening the route; dropped once the relay runs, which is
  // stopped through #stopRelay instead (a signal with a listener would
  // outweigh the rest of an idle tunnel).
  #abort: AbortController | undefined = new AbortController();
  #stopRelay: (() => void) | undefined;

  constructor(
    conn: Deno.TcpConn,
    entry: TunnelEntry,
    options: TunnelOptions,
    context: DialContext,
    metrics: Metrics,
    greeter?: Greeter,
  ) {
    this.#remote = conn.remoteAddr;
    this.entry = entry;
    if (entry.kind === "forward") this.destination = entry.destination;
    metrics.accepted(sourceKey(entry));
    this.done = this.#run(conn, options, context, metrics, greeter).finally(
      () => {
        this.#ended = true;
      },
    );
  }

  get client(): string {
    return formatHostPort({
      host: this.#remote.hostname,
      port: this.#remote.port,
    });
  }

  get ended(): boolean {
    return this.#ended;
  }

  close(): void {
    this.#closed = true;
    this.#abort?.abort();
    this.#stopRelay?.();
  }

  // `client -> destination`, for log lines.
  #ends(): string {
    return `${this.client} -> ${
      this.destination ? formatHostPort(this.destination) : "?"
    }`;
  }

  async #run(
    conn: Deno.TcpConn,
    options: TunnelOptions,
    context: DialContext,
    metrics: Metrics,
    greeter?: Greeter,
  ): Promise<void> {
    const { id, entry } = this;
    setTcpOptions(conn, options.keepAlive);
    let client: Duplex = conn;
    let route = entry.route;
    let greeting: Greeting | undefined;
    if (entry.kind !== "forward") {
      try {
        greeting = await greeter!.greet(conn, {
          id,
          clientLabel: this.client,
          clientAddr: this.#remote,
          entry,
          options,
          context,
          metrics,
          signal: this.#abort!.signal,
        });
      } catch (error) {
        closeQuietly(conn);
        if (!this.#closed) {
          metrics.failed(sourceKey(entry), "client");
          log.warn(`${id} ${errorMessage(error)}`);
        }
        return;
      }
      if (greeting === undefined) {
        closeQuietly(conn);
        return;
      }
      ({ client, route } = greeting);
      this.destination = greeting.destination;
    }
    let destination: Duplex;
    let taken: string;
    let accepted: Promise<void> | undefined;
    try {
      ({ stream: destination, path: taken, accepted } = await dialRoute(
        route,
        this.destination!,
        options,
        {
          ...context,
          onFailover: (message) => log.warn(`${id} ${message}`),
          onProxyFailed: (proxy, reason, next) => {
            const [key, from] = [sourceKey(entry), describeProxy(proxy)];
            metrics.proxyFailed(key, from, reason);
            if (next) metrics.failedOver(key, from, describeProxy(next));
          },
          onRecovered: (proxy, failures) =>
            log.info(
              `${id} proxy ${
                describeProxy(proxy)
              } recovered after ${failures} failure(s)`,
            ),
        },
        this.#abort,
      ));
      // A local proxy's client is answered with the outcome: a stream the
      // far end refuses after all gets the refusal, not a tunnel that
      // closes at once. A forward's first bytes go without waiting.
      if (greeting !== undefined && accepted !== undefined) {
        const opened = destination;
        await accepted.catch((error) => {
          closeQuietly(opened);
          throw error;
        });
      }
    } catch (error) {
      const path = `${this.#ends()} ${describeRoute(route)}`;
      if (this.#closed) {
        closeQuietly(client);
        log.info(`${id} closed by httptunneling while opening ${path}`);
        return;
      }
      await greeting?.refused(error).catch(() => {});
      closeQuietly(client);
      metrics.failed(sourceKey(entry), failureReason(error));
      log.warn(`${id} failed ${path}: ${errorMessage(error)}`);
      return;
    }
    try {
      await greeting?.established();
    } catch (error) {
      closeQuietly(destination);
      closeQuietly(client);
      log.info(
        `${id} ${this.#ends()}: the client left: ${errorMessage(error)}`,
      );
      return;
    }
    this.#abort = undefined;
    const openMs = Date.now() - this.startedAt;
    metrics.opened(openMs);
    // Per-connection lines are built only when the level is enabled.
    log.info("{id} open {ends} {path} after {duration}", () => ({
      id,
      ends: this.#ends(),
      path: taken,
      duration: formatDuration(openMs),
    }));
    this.counters.lastActivity = Date.now();
    // Returned rather than awaited, so that this frame does not stay alive
    // as long as the tunnel.
    return relay(client, destination, {
      counters: this.counters,
      onStart: (stop) => {
        if (this.#closed) stop();
        else this.#stopRelay = stop;
      },
      idleTimeoutMs: options.idleTimeoutMs,
      lingerTimeoutMs: options.lingerTimeoutMs,
    }).then((result) => this.#relayed(result, metrics, route));
  }

  #relayed(result: RelayResult, metrics: Metrics, route: Route): void {
    const { id, entry } = this;
    this.#stopRelay = undefined;
    if (result.error instanceof WsRefusedError) {
      // The far end refused a stream whose first bytes had gone with its
      // OPEN: logged and counted as a refusal before relaying is.
      metrics.failed(sourceKey(entry), failureReason(result.error));
      log.warn(
        `${id} failed ${this.#ends()} ${describeRoute(route)}: ${
          errorMessage(result.error)
        }`,
      );
      return;
    }
    metrics.closed(
      sourceKey(entry),
      result.bytesUp,
      result.bytesDown,
    );
    log.info("{id} closed: {up} up, {down} down, {duration}, {how}", () => ({
      id,
      up: formatBytes(result.bytesUp),
      down: formatBytes(result.bytesDown),
      duration: formatDuration(Date.now() - this.startedAt),
      how: describeEnd(result),
    }));
  }
}

function describeEnd(result: RelayResult): string {
  const idle = formatDuration(result.idleMs);
  if (result.timedOut === "idle") {
    return `nothing moved for ${idle} (idle-timeout)`;
  }
  if (result.timedOut === "linger") {
    return `${result.firstClosed} finished sending and nothing moved for ${idle} (linger-timeout)`;
  }
  if (result.aborted) return "closed by httptunneling";
  if (result.error) {
    return `${result.firstClosed} failed after ${idle} idle: ${
      errorMessage(result.error)
    }`;
  }
  return `${result.firstClosed} closed first after ${idle} idle`;
}
