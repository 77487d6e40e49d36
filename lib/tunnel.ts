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
import { newCounters, relay, type RelayCounters } from "./relay.ts";
import { type DialContext, dialRoute } from "./route/dial.ts";
import { describeRoute } from "./route/types.ts";

const log = logger("tunnel");
let lastId = 0;

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
  const tunnel = {
    id: `c${++lastId}`,
    client: formatHostPort({
      host: client.remoteAddr.hostname,
      port: client.remoteAddr.port,
    }),
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
  const path = `${ends} ${describeRoute(entry.route)}`;
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
      log.info(`${id} closed by httptunneling while opening ${path}`);
    } else {
      metrics.failed(key, failureReason(error));
      log.warn(`${id} failed ${path}: ${messageOf(error)}`);
    }
    return;
  }
  metrics.opened(Date.now() - tunnel.startedAt);
  log.info(
    `${id} open ${ends} ${taken} after ${
      formatDuration(Date.now() - tunnel.startedAt)
    }`,
  );
  tunnel.counters.lastActivity = Date.now();
  const result = await relay(client, destination, {
    counters: tunnel.counters,
    signal,
    idleTimeoutMs: options.idleTimeoutMs,
    lingerTimeoutMs: options.lingerTimeoutMs,
  });
  metrics.closed(key, result.bytesUp, result.bytesDown);
  const idle = formatDuration(result.idleMs);
  const how = result.timedOut === "idle"
    ? `nothing moved for ${idle} (idle-timeout)`
    : result.timedOut === "linger"
    ? `${result.firstClosed} finished sending and nothing moved for ${idle} (linger-timeout)`
    : result.aborted
    ? "closed by httptunneling"
    : result.error
    ? `${result.firstClosed} failed after ${idle} idle: ${
      messageOf(result.error)
    }`
    : `${result.firstClosed} closed first after ${idle} idle`;
  log.info(
    `${id} closed: ${formatBytes(result.bytesUp)} up, ${
      formatBytes(result.bytesDown)
    } down, ${formatDuration(Date.now() - tunnel.startedAt)}, ${how}`,
  );
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
