/**
 * `run --workers N`: N threads (Web Workers, each with its own event loop),
 * each running a {@link Supervisor} whose listeners bind the same ports
 * with SO_REUSEPORT, so that the kernel spreads new connections over them.
 * The main thread keeps the config, the watcher, the signals, the log
 * file and the status server; it sends each config to every worker and
 * merges their counters for /status and /metrics.
 *
 * @module
 */

import type { LogRecord } from "@logtape/logtape";
import { fileURLToPath } from "node:url";
import { sourceKey, type TunnelEntry } from "../config/entry.ts";
import { UsageError } from "../errors.ts";
import { logger, writeForwarded } from "../observe/log.ts";
import { Metrics, type MetricsData } from "../observe/metrics.ts";
import type { StatusSource, TunnelView } from "../observe/status_server.ts";
import type { SessionRouteView } from "../route/session_pool.ts";
import type { EntryState, SupervisorOptions } from "../supervisor.ts";
import type { TunnelHost } from "../tunnel_host.ts";

const log = logger("workers");

/** What a worker reports for /status. */
export interface WorkerStatus {
  readonly entries: EntryState[];
  readonly tunnels: TunnelView[];
  readonly sessionRoutes: SessionRouteView[];
  readonly metrics: MetricsData;
}

/** A message from the main thread to a worker. */
export type ToWorker =
  | {
    readonly type: "start";
    readonly id: number;
    readonly index: number;
    readonly count: number;
    readonly options: SupervisorOptions;
    readonly logLevel: LogRecord["level"];
  }
  | {
    readonly type: "apply";
    readonly id: number;
    readonly entries: TunnelEntry[];
  }
  | { readonly type: "status"; readonly id: number }
  | {
    readonly type: "shutdown";
    readonly id: number;
    readonly graceMs: number;
  };

/** A message from a worker to the main thread. */
export type FromWorker =
  | { readonly type: "log"; readonly record: LogRecord }
  | {
    readonly type: "done";
    readonly id: number;
    readonly status?: WorkerStatus;
  };

/** The tool's source directory, which `deno run` reads the workers' code from. */
const SOURCE_DIR = fileURLToPath(new URL("../..", import.meta.url));

/**
 * Checks that `--workers` can work here: on Linux (the only system whose
 * SO_REUSEPORT spreads connections over sockets) with Deno's
 * `--unstable-net`. Deno exposes its unstable network APIs, `connectQuic`
 * among them, only with that flag, and ends the process without an
 * exception when `reusePort` is used without it. Run from source, Deno
 * loads a worker's code like a dynamic import, which needs read access to
 * it; a compiled binary loads it from itself.
 *
 * @throws {UsageError} naming what is missing.
 */
export function assertWorkersSupported(): void {
  if (Deno.build.os !== "linux") {
    throw new UsageError(
      "--workers needs SO_REUSEPORT spreading connections over sockets, which only Linux does",
    );
  }
  if (!("connectQuic" in Deno)) {
    throw new UsageError(
      "--workers needs Deno's --unstable-net flag (for SO_REUSEPORT); deno.json, deno task start and the compiled binary set it",
    );
  }
  if (
    !Deno.build.standalone &&
    Deno.permissions.querySync({ name: "read", path: SOURCE_DIR }).state !==
      "granted"
  ) {
    throw new UsageError(
      `--workers run from source needs read access to the tool's code: add --allow-read=${SOURCE_DIR} (a compiled binary does not)`,
    );
  }
}

/** The workers of `run --workers N`, seen from the main thread. */
export class WorkerPool implements TunnelHost {
  /** Counters the main thread keeps itself: reloads. */
  readonly metrics: Metrics = new Metrics();
  /** Resolves with a message if a worker fails; the run should then end. */
  readonly failed: Promise<string>;
  #workers: Worker[];
  #replies = new Map<number, (status?: WorkerStatus) => void>();
  #nextId = 0;
  #fail!: (message: string) => void;

  /**
   * Starts `count` workers; {@link assertWorkersSupported} tells first
   * whether they can run here.
   *
   * @param count How many workers, at least 2.
   * @param options What each worker's supervisor gets; the connection
   *   limit is shared out between the workers.
   * @param logLevel The least severe level the workers send.
   */
  constructor(
    count: number,
    options: SupervisorOptions,
    logLevel: LogRecord["level"],
  ) {
    this.failed = new Promise((resolve) => this.#fail = resolve);
    this.#workers = Array.from({ length: count }, (_, index) => {
      const worker = new Worker(new URL("./worker.ts", import.meta.url), {
        type: "module",
        name: `w${index + 1}`,
      });
      worker.onmessage = ({ data }: MessageEvent<FromWorker>) => {
        if (data.type === "log") writeForwarded(data.record, `w${index + 1}`);
        else this.#replies.get(data.id)?.(data.status);
      };
      worker.onerror = (event) => {
        event.preventDefault();
        this.#fail(`worker w${index + 1} failed: ${event.message}`);
      };
      return worker;
    });
    log.info(`${count} workers share the listening ports (SO_REUSEPORT)`);
    this.#each((id, index) => ({
      type: "start",
      id,
      index,
      count,
      options: {
        ...options,
        maxConnections: options.maxConnections === undefined
          ? undefined
          : this.#share(options.maxConnections),
      },
      logLevel,
    }));
  }

  /**
   * Makes `entries` the running set in every worker, each entry's
   * connection limit shared out between them.
   */
  async apply(entries: readonly TunnelEntry[]): Promise<void> {
    const shared = entries.map((entry) =>
      entry.options.maxConnections === undefined ? entry : {
        ...entry,
        options: {
          ...entry.options,
          maxConnections: this.#share(entry.options.maxConnections),
        },
      }
    );
    await this.#each((id) => ({ type: "apply", id, entries: shared }));
  }

  /** The workers' entries, tunnels and counters taken together. */
  async status(): Promise<StatusSource> {
    const reports = (await this.#each((id) => ({ type: "status", id })))
      .filter((report): report is WorkerStatus => report !== undefined);
    const metrics = new Metrics();
    metrics.add(this.metrics.toData());
    for (const report of reports) metrics.add(report.metrics);
    const entries = mergeEntries(reports.map((report) => report.entries));
    const tunnels = reports.flatMap((report) => report.tunnels);
    // Each worker chooses for itself: its routes are listed as it sees them.
    const sessionRoutes = reports.flatMap((report) => report.sessionRoutes);
    return { entries: () => entries, tunnels, sessionRoutes, metrics };
  }

  /**
   * Shuts every worker's supervisor down (see {@link Supervisor.shutdown})
   * and ends the workers.
   *
   * @param graceMs How long live tunnels may go on.
   */
  async shutdown(graceMs: number): Promise<void> {
    await this.#each((id) => ({ type: "shutdown", id, graceMs }));
    for (const worker of this.#workers) worker.terminate();
  }

  // One worker's part of a connection limit.
  #share(limit: number): number {
    return Math.ceil(limit / this.#workers.length);
  }

  // Sends a message to every worker and waits for every answer (or for a
  // worker to fail).
  #each(
    message: (id: number, index: number) => ToWorker,
  ): Promise<(WorkerStatus | undefined)[]> {
    const failed = this.failed.then(() => undefined);
    return Promise.all(this.#workers.map((worker, index) => {
      const id = this.#nextId++;
      const answered = new Promise<WorkerStatus | undefined>((resolve) =>
        this.#replies.set(id, resolve)
      ).finally(() => this.#replies.delete(id));
      worker.postMessage(message(id, index));
      return Promise.race([answered, failed]);
    }));
  }
}

// One entry per source: listening only if every worker listens, the
// tunnels of all workers counted.
function mergeEntries(reports: EntryState[][]): EntryState[] {
  const merged = new Map<string, EntryState>();
  for (const states of reports) {
    for (const state of states) {
      const key = sourceKey(state.entry);
      const seen = merged.get(key);
      merged.set(
        key,
        seen === undefined ? state : {
          entry: seen.entry,
          state: seen.state === "listening" ? state.state : seen.state,
          error: seen.error ?? state.error,
          active: seen.active + state.active,
          // Each worker keeps its own failure memory: show the one that
          // knows of a failure.
          proxies: seen.proxies.map((proxy, i) =>
            proxy.state === "ok" ? state.proxies[i] ?? proxy : proxy
          ),
        },
      );
    }
  }
  return [...merged.values()];
}
