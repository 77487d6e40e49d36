/**
 * The read-only status endpoint: `GET /status` (JSON: entries, live
 * tunnels, counters, last reload) and `GET /metrics` (Prometheus text).
 * It runs on the tool's event loop and never shows a secret.
 *
 * @module
 */

import { errorMessage } from "../errors.ts";
import { readRequestHeadWithin } from "../local/http1.ts";
import {
  formatHostPort,
  type HostPort,
  isLoopback,
  splitHostPort,
} from "../net/address.ts";
import { BufferedDuplex } from "../net/buffered.ts";
import { concat } from "../net/bytes.ts";
import { closeQuietly, writeAll } from "../net/duplex.ts";
import { headerValue } from "../proxy/http_head.ts";
import { describeService, sourceKey } from "../config/entry.ts";
import { logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import type { SessionRouteView } from "../route/session_pool.ts";
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
  /** Each session route's transport (WebSocket or poll). */
  readonly sessionRoutes: readonly SessionRouteView[];
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
    entries: supervisor.entries().map((
      { entry, state, error, active, proxies },
    ) => {
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
        proxies,
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
    sessionRoutes: supervisor.sessionRoutes,
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

/** Options of {@link startStatusServer}. */
export interface StatusServerOptions {
  /** How long a client has to send its request head. @default 5 s */
  readonly headTimeoutMs?: number;
}

/** Limits of the status server, so that its clients cannot hurt the tunnels. */
const STATUS_MAX_CONNECTIONS = 16;
const STATUS_HEAD_TIMEOUT_MS = 5_000;
const STATUS_MAX_HEAD_BYTES = 8 * 1024;
const ACCEPT_BACKOFF_MS = 200;

/**
 * Serves `/status` and `/metrics` on `address` for `run`. See
 * {@link startStatusPages} for the limits.
 *
 * @param address Where to listen; loopback unless the user says otherwise.
 * @param source Reads the running set when a request comes.
 * @param state The config path and last reload.
 * @param options The request head's time limit.
 * @returns The server.
 */
export function startStatusServer(
  address: HostPort,
  source: () => StatusSource | Promise<StatusSource>,
  state: RunState,
  options: StatusServerOptions = {},
): StatusServer {
  return startStatusPages(address, {
    status: async () => statusDocument(await source(), state),
    metrics: async () => {
      const supervisor = await source();
      return supervisor.metrics.render(liveByEntry(supervisor));
    },
  }, options);
}

/** The two documents a status server shows, made when a request comes. */
export interface StatusPages {
  /** The `/status` document, plain data for JSON. */
  status(): unknown | Promise<unknown>;
  /** The `/metrics` text, Prometheus exposition format. */
  metrics(): string | Promise<string>;
}

/**
 * Serves `/status` and `/metrics` on `address`: HTTP/1.1, one request per
 * connection, at most 16 connections at once, 5 s and 8 KiB for a request
 * head. `Host` must name a loopback host or the bound address (against DNS
 * rebinding). Nothing a client does, running out of file descriptors
 * included, ends the process.
 *
 * @param address Where to listen; loopback unless the user says otherwise.
 * @param pages Makes the documents when a request comes.
 * @param options The request head's time limit.
 * @returns The server.
 */
export function startStatusPages(
  address: HostPort,
  pages: StatusPages,
  options: StatusServerOptions = {},
): StatusServer {
  const headTimeoutMs = options.headTimeoutMs ?? STATUS_HEAD_TIMEOUT_MS;
  const listener = Deno.listen({ hostname: address.host, port: address.port });
  const addr = listener.addr;
  const bound = formatHostPort({ host: addr.hostname, port: addr.port });
  const open = new Set<Deno.TcpConn>();
  const stop = new AbortController();
  const answer = async (request: StatusRequest): Promise<Uint8Array> => {
    if (!hostAllowed(request.host, addr)) {
      return response(
        421,
        "text/plain",
        "wrong Host: use the address the status server listens on\n",
      );
    }
    const get = request.method === "GET" || request.method === "HEAD";
    if (get && request.path === "/status") {
      const body = JSON.stringify(await pages.status());
      return response(200, "application/json", body, request.method);
    }
    if (get && request.path === "/metrics") {
      return response(
        200,
        "text/plain; version=0.0.4; charset=utf-8",
        await pages.metrics(),
        request.method,
      );
    }
    return response(404, "text/plain", "not found: try /status or /metrics\n");
  };
  const serve = async (conn: Deno.TcpConn) => {
    try {
      const input = new BufferedDuplex(conn);
      const head = await readRequestHeadWithin(input, {
        timeoutMs: headTimeoutMs,
        what: "a status request",
        signal: stop.signal,
        maxHeadBytes: STATUS_MAX_HEAD_BYTES,
      });
      if (head === undefined) return;
      const path = head.target.replace(/\?.*$/, "");
      await writeAll(
        conn,
        await answer({
          method: head.method,
          path,
          host: headerValue(head, "host"),
        }),
      );
    } catch {
      // Answered already when malformed; a silent client is cut off.
    } finally {
      open.delete(conn);
      closeQuietly(conn);
    }
  };
  const loop = (async () => {
    while (!stop.signal.aborted) {
      let conn: Deno.TcpConn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (stop.signal.aborted) break;
        log.warn(
          `status server on ${bound}: accept failed: ${errorMessage(error)}`,
        );
        await new Promise((resolve) => setTimeout(resolve, ACCEPT_BACKOFF_MS));
        continue;
      }
      if (open.size >= STATUS_MAX_CONNECTIONS) {
        closeQuietly(conn);
        continue;
      }
      open.add(conn);
      serve(conn);
    }
  })();
  if (!isLoopback(addr.hostname)) {
    log.warn(
      `status on ${bound} is reachable from other machines: it shows destinations, proxy user names and client addresses`,
    );
  }
  log.info(`status on http://${bound}/status and /metrics`);
  return {
    addr,
    async close() {
      stop.abort();
      listener.close();
      await loop;
      for (const conn of open) closeQuietly(conn);
    },
  };
}

interface StatusRequest {
  readonly method: string;
  readonly path: string;
  readonly host?: string;
}

// A browser page on another site can reach 127.0.0.1 through a name it
// controls (DNS rebinding); its requests then carry that name in Host.
function hostAllowed(host: string | undefined, addr: Deno.NetAddr): boolean {
  if (host === undefined) return true;
  const name = splitHostPort(host)?.host ?? host;
  const bare = name.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  return isLoopback(bare) || bare === addr.hostname.toLowerCase();
}

const encoder = new TextEncoder();

function response(
  status: number,
  type: string,
  body: string,
  method = "GET",
): Uint8Array {
  const bytes = encoder.encode(body);
  const reason = {
    200: "OK",
    404: "Not Found",
    405: "Method Not Allowed",
    421: "Misdirected Request",
  }[status] ?? "";
  const head = encoder.encode(
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: ${type}\r\ncontent-length: ${bytes.length}\r\nconnection: close\r\n\r\n`,
  );
  return method === "HEAD" ? head : concat(head, bytes);
}
