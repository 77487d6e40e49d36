/**
 * The read-only status endpoint: `GET /status` (JSON: entries, live
 * tunnels, counters, last reload) and `GET /metrics` (Prometheus text).
 * It runs on the tool's event loop and never shows a secret.
 *
 * @module
 */

import { formatHostPort, type HostPort } from "../net/address.ts";
import { describeService, sourceKey } from "../config/entry.ts";
import { logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import { describeRoute } from "../route/types.ts";
import type { EntryState } from "../supervisor.ts";
import type { Tunnel } from "../tunnel.ts";
import { VERSION } from "../version.ts";

const log = logger("status");

/** A tunnel as /status shows it. */
export type TunnelView = Pick<
  Tunnel,
  "id" | "client" | "entry" | "destination" | "startedAt" | "counters"
>;

/**
 * What /status and /metrics read: the supervisor, or with `--workers` the
 * workers' supervisors taken together.
 */
export interface StatusSource {
  /** The running entries and what each is doing. */
  entries(): EntryState[];
  /** Every tunnel that is open or opening. */
  readonly tunnels: readonly TunnelView[];
  /** The counters. */
  readonly metrics: Metrics;
}

/** What the run command knows beyond the supervisor. */
export interface RunState {
  /** The config file, when there is one. */
  configPath?: string;
  /** When the config was last (re)loaded and how that went. */
  lastReload?: { readonly time: string; readonly result: string };
}

/**
 * The `/status` document.
 *
 * @param supervisor The running set.
 * @param state The config path and last reload.
 * @returns Plain data, ready for JSON.
 */
export function statusDocument(supervisor: StatusSource, state: RunState) {
  const now = Date.now();
  const metrics = supervisor.metrics;
  const live = liveByEntry(supervisor);
  return {
    version: VERSION,
    pid: Deno.pid,
    memory: Deno.memoryUsage(),
    config: {
      path: state.configPath ?? null,
      lastReload: state.lastReload ?? null,
    },
    entries: supervisor.entries().map(({ entry, state, error, active }) => {
      const counters = metrics.entry(sourceKey(entry));
      const open = live.get(sourceKey(entry));
      return {
        source: sourceKey(entry),
        destination: describeService(entry),
        route: describeRoute(entry.route),
        line: entry.line,
        state,
        ...(error === undefined ? {} : { error }),
        active,
        accepted: counters.accepted,
        failed: counters.failed,
        bytesUp: counters.bytesUp + (open?.bytesUp ?? 0),
        bytesDown: counters.bytesDown + (open?.bytesDown ?? 0),
      };
    }),
    tunnels: supervisor.tunnels.map((tunnel) => ({
      id: tunnel.id,
      entry: sourceKey(tunnel.entry),
      client: tunnel.client,
      destination: tunnel.destination
        ? formatHostPort(tunnel.destination)
        : describeService(tunnel.entry),
      route: describeRoute(tunnel.entry.route),
      bytesUp: tunnel.counters.bytesUp,
      bytesDown: tunnel.counters.bytesDown,
      ageMs: now - tunnel.startedAt,
      idleMs: now - tunnel.counters.lastActivity,
    })),
  };
}

/** Open tunnels and their bytes so far, by entry, for /metrics. */
function liveByEntry(supervisor: StatusSource) {
  const live = new Map<
    string,
    { active: number; bytesUp: number; bytesDown: number }
  >();
  for (const { entry } of supervisor.entries()) {
    live.set(sourceKey(entry), { active: 0, bytesUp: 0, bytesDown: 0 });
  }
  for (const tunnel of supervisor.tunnels) {
    const key = sourceKey(tunnel.entry);
    const sums = live.get(key) ?? { active: 0, bytesUp: 0, bytesDown: 0 };
    sums.active++;
    sums.bytesUp += tunnel.counters.bytesUp;
    sums.bytesDown += tunnel.counters.bytesDown;
    live.set(key, sums);
  }
  return live;
}

/** A running status server. */
export interface StatusServer {
  /** Where it listens. */
  readonly addr: Deno.NetAddr;
  /** Stops it and waits until it is closed. */
  close(): Promise<void>;
}

/**
 * Serves `/status` and `/metrics` on `address`.
 *
 * @param address Where to listen; loopback unless the user says otherwise.
 * @param source Reads the running set when a request comes.
 * @param state The config path and last reload.
 * @returns The server.
 */
export function startStatusServer(
  address: HostPort,
  source: () => StatusSource | Promise<StatusSource>,
  state: RunState,
): StatusServer {
  const server = Deno.serve({
    hostname: address.host,
    port: address.port,
    onListen: () => {},
  }, async (request) => {
    const { pathname } = new URL(request.url);
    if (request.method === "GET" && pathname === "/status") {
      return Response.json(statusDocument(await source(), state));
    }
    if (request.method === "GET" && pathname === "/metrics") {
      const supervisor = await source();
      return new Response(supervisor.metrics.render(liveByEntry(supervisor)), {
        headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
      });
    }
    return new Response("not found: try /status or /metrics\n", {
      status: 404,
    });
  });
  const addr = server.addr as Deno.NetAddr;
  log.info(
    `status on http://${
      formatHostPort({ host: addr.hostname, port: addr.port })
    }/status and /metrics`,
  );
  return {
    addr,
    async close() {
      await server.shutdown();
    },
  };
}
