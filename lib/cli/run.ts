/**
 * `run [CONFIG] [-L SPEC ...]`: serves every entry of a config file, and
 * `ssh -L`-style forwards from the command line, until SIGINT/SIGTERM,
 * applying the file's changes as they are saved (or on SIGHUP).
 *
 * @module
 */

import type { LogLevel } from "@logtape/logtape";
import { sourceKey } from "../config/diff.ts";
import { loadConfig } from "../config/load.ts";
import { parseForward, type TunnelEntry } from "../config/parse.ts";
import { ConfigLoadError, errorMessage, UsageError } from "../errors.ts";
import {
  DEFAULT_LOG_FILE,
  LOG_LEVELS,
  logger,
  setupLogging,
} from "../observe/log.ts";
import { ConfigReloader } from "../config/reload.ts";
import {
  type RunState,
  startStatusServer,
  type StatusServer,
} from "../observe/status_server.ts";
import { Supervisor } from "../supervisor.ts";
import type { TunnelHost } from "../tunnel_host.ts";
import { VERSION } from "../version.ts";
import { watchConfig } from "../config/watch.ts";
import { assertWorkersSupported, WorkerPool } from "../workers/pool.ts";
import {
  countOption,
  durationOption,
  listenAddress,
  parseCommandLine,
  proxyEnvironment,
  reportConfigError,
  routeFrom,
  sizeOption,
  TUNNEL_FLAGS,
  tunnelOptionsFrom,
} from "./args.ts";

const log = logger("run");

/** How long live tunnels may finish after SIGINT/SIGTERM, by default. */
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000;

/** The config `run` reads when none is named. */
const DEFAULT_CONFIG = "tunnels.conf";
const EXAMPLE_CONFIG = "tunnels.conf.example";

/**
 * Runs `run`: starts the listeners and serves until a signal.
 *
 * @param args The arguments after `run`.
 * @returns 0 after a clean shutdown, 1 when the config cannot be used.
 * @throws {UsageError} for a wrong option.
 */
export async function runCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(args, {
    ...TUNNEL_FLAGS,
    log: { type: "string", default: DEFAULT_LOG_FILE },
    "log-level": { type: "string", default: "info" },
    "drain-timeout": { type: "string" },
    "shutdown-timeout": { type: "string" },
    "max-connections": { type: "string" },
    "failover-backoff": { type: "string" },
    forward: { type: "string", short: "L", multiple: true },
    status: { type: "string" },
    "log-format": { type: "string", default: "text" },
    "log-max-size": { type: "string" },
    "log-files": { type: "string" },
    workers: { type: "string" },
  });
  if (positionals.length > 1) {
    throw new UsageError("run takes at most one config file");
  }
  const level = values["log-level"] as LogLevel;
  if (!LOG_LEVELS.includes(level)) {
    throw new UsageError(
      `--log-level must be one of ${LOG_LEVELS.join(", ")}; got "${level}"`,
    );
  }
  const defaults = await tunnelOptionsFrom(values);
  const failoverBackoffMs = durationOption(
    "failover-backoff",
    values["failover-backoff"],
  );
  const shutdownTimeoutMs =
    durationOption("shutdown-timeout", values["shutdown-timeout"]) ??
      DEFAULT_SHUTDOWN_TIMEOUT_MS;
  const maxConnections = countOption(
    "max-connections",
    values["max-connections"],
  );
  const forwards = forwardEntries(values.forward ?? [], values.proxy);
  const format = values["log-format"];
  if (format !== "text" && format !== "json") {
    throw new UsageError(`--log-format must be text or json; got "${format}"`);
  }
  const workers = countOption("workers", values.workers) ?? 1;
  if (workers > 1) assertWorkersSupported();
  const statusAddress = values.status === undefined
    ? undefined
    : listenAddress(values.status);

  const closeLog = await setupLogging({
    file: values.log,
    level,
    stderr: Deno.stderr.isTerminal(),
    format,
    maxSize: sizeOption("log-max-size", values["log-max-size"]),
    maxFiles: countOption("log-files", values["log-files"]),
  });
  try {
    log.info(`httptunneling ${VERSION} starting (pid ${Deno.pid})`);
    const environment = proxyEnvironment((level, message) =>
      log[level](message)
    );
    const supervisorOptions = {
      defaults,
      maxConnections,
      environment,
      failoverBackoffMs,
    };
    // One supervisor on this thread, or one in each of the workers.
    const supervisor: TunnelHost = workers > 1
      ? new WorkerPool(workers, supervisorOptions, level)
      : new Supervisor(supervisorOptions);
    const apply = (entries: TunnelEntry[]) =>
      supervisor.apply(withForwards(entries, forwards));
    const state: RunState = {};
    const reloaded = (result: string) => {
      state.lastReload = { time: new Date().toISOString(), result };
      supervisor.metrics.reloaded(result);
    };
    let stopWatching = () => Promise.resolve();
    if (positionals.length === 0 && forwards.length > 0) {
      await apply([]);
    } else {
      const path = await chooseConfig(positionals[0]);
      state.configPath = path;
      let config;
      try {
        config = await loadConfig(path);
      } catch (error) {
        if (!(error instanceof ConfigLoadError)) throw error;
        for (const each of error.errors) log.error(each.message);
        log.error(error.message);
        reportConfigError(error);
        return 1;
      }
      for (const warning of config.warnings) log.warn(warning);
      await apply(config.entries);
      reloaded("applied");
      stopWatching = watchForChanges(
        path,
        new ConfigReloader(path, apply, config.text, reloaded),
      );
    }
    let status: StatusServer | undefined;
    if (statusAddress) {
      try {
        status = startStatusServer(
          statusAddress,
          () => supervisor.status(),
          state,
        );
      } catch (error) {
        log.error(
          `cannot serve --status on ${values.status}: ${errorMessage(error)}`,
        );
      }
    }
    const stop = await Promise.race([
      nextStopSignal(),
      supervisor.failed.then((message) => new Error(message)),
    ]);
    if (stop instanceof Error) {
      log.error(`${stop.message}; stopping`);
    } else {
      log.info(
        `${stop} received: no new connections; a second ${stop} stops at once`,
      );
    }
    await stopWatching();
    await status?.close();
    await supervisor.shutdown(shutdownTimeoutMs);
    log.info("stopped");
    return stop instanceof Error ? 1 : 0;
  } finally {
    await closeLog();
  }
}

function forwardEntries(
  specs: string[],
  proxies: string[] | undefined,
): TunnelEntry[] {
  const route = routeFrom(proxies);
  return specs.map((spec) => {
    try {
      return { ...parseForward(spec), route, options: {}, line: 0 };
    } catch (error) {
      throw new UsageError(errorMessage(error));
    }
  });
}

// Command-line forwards win over config entries on the same source.
function withForwards(
  entries: TunnelEntry[],
  forwards: TunnelEntry[],
): TunnelEntry[] {
  const taken = new Set(forwards.map(sourceKey));
  const kept = entries.filter((entry) => {
    if (!taken.has(sourceKey(entry))) return true;
    log.warn(
      `line ${entry.line}: ${
        sourceKey(entry)
      } is taken by a -L forward; the config entry is ignored`,
    );
    return false;
  });
  return [...kept, ...forwards];
}

/** Watches `path` and listens for SIGHUP; returns a function that stops both. */
function watchForChanges(
  path: string,
  reloader: ConfigReloader,
): () => Promise<void> {
  const watch = watchConfig(path, () => reloader.reload("file changed"));
  const onHangup = () => reloader.reload("SIGHUP");
  if (RELOAD_SIGNAL) Deno.addSignalListener(RELOAD_SIGNAL, onHangup);
  log.info(
    `watching ${path} for changes${
      RELOAD_SIGNAL ? "; SIGHUP reloads too" : ""
    }`,
  );
  return async () => {
    if (RELOAD_SIGNAL) Deno.removeSignalListener(RELOAD_SIGNAL, onHangup);
    await watch.close();
    await reloader.settled();
  };
}

async function chooseConfig(given: string | undefined): Promise<string> {
  if (given !== undefined) return given;
  if (await exists(DEFAULT_CONFIG) || !await exists(EXAMPLE_CONFIG)) {
    return DEFAULT_CONFIG;
  }
  log.warn(
    `${DEFAULT_CONFIG} not found; using ${EXAMPLE_CONFIG} (copy it to ${DEFAULT_CONFIG} and edit it)`,
  );
  return EXAMPLE_CONFIG;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

const RELOAD_SIGNAL: Deno.Signal | undefined = Deno.build.os === "windows"
  ? undefined
  : "SIGHUP";

const STOP_SIGNALS: Deno.Signal[] = Deno.build.os === "windows"
  ? ["SIGINT", "SIGBREAK"]
  : ["SIGINT", "SIGTERM"];

/**
 * Resolves with the first stop signal; a second one ends the process at once.
 */
function nextStopSignal(): Promise<Deno.Signal> {
  return new Promise((resolve) => {
    let stopping = false;
    for (const signal of STOP_SIGNALS) {
      Deno.addSignalListener(signal, () => {
        if (stopping) Deno.exit(1);
        stopping = true;
        resolve(signal);
      });
    }
  });
}
