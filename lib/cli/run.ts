/**
 * `run [CONFIG] [-L SPEC ...]`: serves every entry of a config file, and
 * `ssh -L`-style forwards from the command line, until SIGINT/SIGTERM,
 * applying the file's changes as they are saved (or on SIGHUP).
 *
 * @module
 */

import { sourceKey, type TunnelEntry } from "../config/entry.ts";
import { chooseConfigPath, loadConfig } from "../config/load.ts";
import { ConfigLoadError, errorMessage, UsageError } from "../errors.ts";
import { logger, setupLogging } from "../observe/log.ts";
import { ConfigReloader } from "../config/reload.ts";
import {
  type RunState,
  startStatusServer,
  type StatusServer,
  type StatusSource,
} from "../observe/status_server.ts";
import { type EntryState, Supervisor } from "../supervisor.ts";
import type { TunnelHost } from "../tunnel_host.ts";
import { VERSION } from "../version.ts";
import { watchConfig } from "../config/watch.ts";
import { assertWorkersSupported, WorkerPool } from "../workers/pool.ts";
import {
  parseCommandLine,
  proxyEnvironment,
  reportConfigError,
} from "./args.ts";
import {
  parseForward,
  parseRouteArguments,
  parseStatusAddress,
} from "./entry_args.ts";
import {
  FAILOVER_BACKOFF,
  flagValue,
  LOG,
  LOG_FILES,
  LOG_FORMAT,
  LOG_LEVEL,
  LOG_MAX_SIZE,
  MAX_CONNECTIONS,
  RUN_FLAGS,
  SHUTDOWN_TIMEOUT,
  STATUS,
  tunnelOptionsFrom,
  WORKERS,
} from "./flags.ts";

const log = logger("run");

/**
 * Runs `run`: starts the listeners and serves until a signal.
 *
 * @param args The arguments after `run`.
 * @returns 0 after a clean shutdown, 1 when the config cannot be used.
 * @throws {UsageError} for a wrong option.
 */
export async function runCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(args, RUN_FLAGS);
  if (positionals.length > 1) {
    throw new UsageError("run takes at most one config file");
  }
  const level = flagValue(values, LOG_LEVEL);
  const defaults = tunnelOptionsFrom(values);
  const failoverBackoffMs = flagValue(values, FAILOVER_BACKOFF);
  const shutdownTimeoutMs = flagValue(values, SHUTDOWN_TIMEOUT);
  const maxConnections = flagValue(values, MAX_CONNECTIONS);
  const forwards = forwardEntries(values.forward ?? [], values.proxy);
  const format = flagValue(values, LOG_FORMAT);
  const workers = flagValue(values, WORKERS);
  if (workers > 1) assertWorkersSupported();
  const status = flagValue(values, STATUS);
  const statusAddress = status === undefined
    ? undefined
    : parseStatusAddress(status);

  const closeLog = await setupLogging({
    file: flagValue(values, LOG),
    level,
    stderr: Deno.stderr.isTerminal(),
    format,
    maxSize: flagValue(values, LOG_MAX_SIZE),
    maxFiles: flagValue(values, LOG_FILES),
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
      const path = chooseConfigPath(
        positionals[0],
        (message) => log.warn(message),
      );
      state.configPath = path;
      let config;
      try {
        config = loadConfig(path);
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
        new ConfigReloader(
          path,
          apply,
          config.text,
          reloaded,
          config.warnings,
        ),
      );
    }
    let statusServer: StatusServer | undefined;
    if (statusAddress) {
      try {
        statusServer = startStatusServer(
          statusAddress,
          () => supervisor.status(),
          state,
        );
      } catch (error) {
        log.error(
          `cannot serve --status on ${status}: ${errorMessage(error)}`,
        );
      }
    }
    const logFile = flagValue(values, LOG);
    if (!Deno.stderr.isTerminal() && logFile !== "-") {
      // Under a pipe, an IDE or a service manager the log goes to its file
      // only: say at least what listens and where the log is.
      console.error(
        startupSummary(await supervisor.status(), logFile, state.configPath),
      );
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
    await statusServer?.close();
    await supervisor.shutdown(shutdownTimeoutMs);
    log.info("stopped");
    return stop instanceof Error ? 1 : 0;
  } finally {
    await closeLog();
  }
}

// One line: the config, what listens, what waits for its port and why,
// where the log is.
function startupSummary(
  status: StatusSource,
  logFile: string,
  configPath: string | undefined,
): string {
  const entries = status.entries();
  const listening = entries.filter((each) => each.state === "listening");
  const waiting = entries.filter((each) => each.state === "retrying");
  const sources = (list: EntryState[]) =>
    list.map(({ entry }) => sourceKey(entry)).join(", ");
  return [
    `httptunneling ${VERSION}: ${
      configPath === undefined ? "" : `config ${configPath}; `
    }listening on ${sources(listening) || "nothing"}`,
    ...(waiting.length
      ? [`waiting for ${sources(waiting)} (${waiting[0].error})`]
      : []),
    `log: ${logFile}`,
  ].join("; ");
}

function forwardEntries(
  specs: string[],
  proxies: string[] | undefined,
): TunnelEntry[] {
  const route = parseRouteArguments(proxies);
  return specs.map((spec) => ({
    kind: "forward",
    ...parseForward(spec),
    route,
    options: {},
    line: 0,
  }));
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

/** The signal that reloads the config, where there is one. */
export const RELOAD_SIGNAL: Deno.Signal | undefined =
  Deno.build.os === "windows" ? undefined : "SIGHUP";

const STOP_SIGNALS: Deno.Signal[] = Deno.build.os === "windows"
  ? ["SIGINT", "SIGBREAK"]
  : ["SIGINT", "SIGTERM"];

/**
 * Resolves with the first stop signal; a second one ends the process at once.
 *
 * @returns The signal received.
 */
export function nextStopSignal(): Promise<Deno.Signal> {
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
