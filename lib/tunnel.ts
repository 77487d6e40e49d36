/**
 * One accepted connection's life: open the route, relay, log the outcome.
 *
 * @module
 */

import { formatHostPort } from "./address.ts";
import type { TunnelEntry } from "./config/parse.ts";
import { closeQuietly, type Duplex } from "./duplex.ts";
import { formatDuration } from "./duration.ts";
import { formatBytes, logger } from "./log.ts";
import { failureReason, type Metrics } from "./metrics.ts";
import type { TunnelOptions } from "./config/options.ts";
import {
  newCounters,
  relay,
  type RelayCounters,
  type RelayResult,
} from "./relay.ts";
import { type DialContext, dialRoute } from "./route/dial.ts";
import { describeRoute } from "./route/types.ts";

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
 * @returns The running tunnel.
 */
export function startTunnel(
  client: Deno.TcpConn,
  entry: TunnelEntry,
  options: TunnelOptions,
  context: DialContext,
  metrics: Metrics,
): Tunnel {
  const abort = new AbortController();
  const counters: RelayCounters = newCounters();
  const { hostname, port } = client.remoteAddr;
  const tunnel = {
    id: `c${lastId += idStep}`,
    client: formatHostPort({ host: hostname, port }),
    entry,
    startedAt: Date.now(),
    counters,
    close: () => abort.abort(),
  };
  let ended = false;
  metrics.accepted(formatHostPort(entry.source));
  const done = run(tunnel, client, options, context, metrics, abort.signal)
    .finally(
      () => {
        ended = true;
      },
    );
  return {
    ...tunnel,
    done,
    get ended() {
      return ended;
    },
  };
}

async function run(
  tunnel: Omit<Tunnel, "done" | "ended">,
  client: Deno.TcpConn,
  options: TunnelOptions,
  context: DialContext,
  metrics: Metrics,
  signal: AbortSignal,
): Promise<void> {
  const { id, entry } = tunnel;
  const key = formatHostPort(entry.source);
  const ends = `${tunnel.client} -> ${formatHostPort(entry.destination)}`;
  const path = () => `${ends} ${describeRoute(entry.route)}`;
  client.setNoDelay(true);
  client.setKeepAlive(options.keepAlive);
  let destination: Duplex;
  let taken: string;
  try {
    ({ stream: destination, path: taken } = await dialRoute(
      entry.route,
      entry.destination,
      options,
      { ...context, onFailover: (message) => log.warn(`${id} ${message}`) },
      signal,
    ));
  } catch (error) {
    closeQuietly(client);
    if (signal.aborted) {
      log.info(`${id} closed by httptunneling while opening ${path()}`);
    } else {
      metrics.failed(key, failureReason(error));
      log.warn(`${id} failed ${path()}: ${messageOf(error)}`);
    }
    return;
  }
  const openMs = Date.now() - tunnel.startedAt;
  metrics.opened(openMs);
  // Per-connection lines are built only when the level is enabled.
  log.info("{id} open {ends} {path} after {duration}", () => ({
    id,
    ends,
    path: taken,
    duration: formatDuration(openMs),
  }));
  tunnel.counters.lastActivity = Date.now();
  const result = await relay(client, destination, {
    counters: tunnel.counters,
    signal,
    idleTimeoutMs: options.idleTimeoutMs,
    lingerTimeoutMs: options.lingerTimeoutMs,
  });
  metrics.closed(key, result.bytesUp, result.bytesDown);
  log.info("{id} closed: {up} up, {down} down, {duration}, {how}", () => ({
    id,
    up: formatBytes(result.bytesUp),
    down: formatBytes(result.bytesDown),
    duration: formatDuration(Date.now() - tunnel.startedAt),
    how: describeEnd(result),
  }));
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
      messageOf(result.error)
    }`;
  }
  return `${result.firstClosed} closed first after ${idle} idle`;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
