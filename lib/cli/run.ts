/**
 * `run [CONFIG]`: serves every entry of a config file until SIGINT/SIGTERM,
 * applying the file's changes as they are saved (or on SIGHUP).
 *
 * @module
 */

import { loadConfig } from "../config/load.ts";
import { parseProxyUrlText } from "../config/parse.ts";
import { type ProxyEnvironment, readProxyEnvironment } from "../route/env.ts";
import { describeProxy } from "../route/types.ts";
import {
  DEFAULT_TUNNEL_OPTIONS,
  type TunnelOptions,
} from "../config/options.ts";
import { ConfigLoadError, UsageError } from "../errors.ts";
import { DEFAULT_LOG_FILE, LOG_LEVELS, logger, setupLogging } from "../log.ts";
import { ConfigReloader } from "../reload.ts";
import { Supervisor } from "../supervisor.ts";
import { watchConfig } from "../watch.ts";
import { VERSION } from "../version.ts";
import {
  countOption,
  durationOption,
  parseCommandLine,
  reportConfigError,
} from "./args.ts";
import type { LogLevel } from "@logtape/logtape";

const log = logger("run");

/** How long live tunnels may finish after SIGINT/SIGTERM, by default. */
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000;

/** The config `run` reads when none is named. */
export const DEFAULT_CONFIG = "tunnels.conf";
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
    log: { type: "string", default: DEFAULT_LOG_FILE },
    "log-level": { type: "string", default: "info" },
    "connect-timeout": { type: "string" },
    "handshake-timeout": { type: "string" },
    "idle-timeout": { type: "string" },
    "linger-timeout": { type: "string" },
    "drain-timeout": { type: "string" },
    "shutdown-timeout": { type: "string" },
    "max-connections": { type: "string" },
    "ca-file": { type: "string" },
    "failover-backoff": { type: "string" },
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
  const duration = (name: keyof typeof values) =>
    durationOption(name, values[name] as string | undefined);
  let defaults: TunnelOptions = {
    ...DEFAULT_TUNNEL_OPTIONS,
    connectTimeoutMs: duration("connect-timeout") ??
      DEFAULT_TUNNEL_OPTIONS.connectTimeoutMs,
    handshakeTimeoutMs: duration("handshake-timeout") ??
      DEFAULT_TUNNEL_OPTIONS.handshakeTimeoutMs,
    idleTimeoutMs: duration("idle-timeout"),
    lingerTimeoutMs: duration("linger-timeout") ??
      DEFAULT_TUNNEL_OPTIONS.lingerTimeoutMs,
    drainTimeoutMs: duration("drain-timeout"),
  };
  const failoverBackoffMs = duration("failover-backoff");
  const shutdownTimeoutMs = duration("shutdown-timeout") ??
    DEFAULT_SHUTDOWN_TIMEOUT_MS;
  const maxConnections = countOption(
    "max-connections",
    values["max-connections"],
  );

  const closeLog = await setupLogging({
    file: values.log,
    level,
    stderr: Deno.stderr.isTerminal(),
  });
  try {
    log.info(`httptunneling ${VERSION} starting (pid ${Deno.pid})`);
    const path = await chooseConfig(positionals[0]);
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
    const caFile = values["ca-file"];
    if (caFile !== undefined) {
      try {
        defaults = { ...defaults, caCerts: [await Deno.readTextFile(caFile)] };
      } catch (error) {
        throw new UsageError(
          `--ca-file ${caFile}: ${(error as Error).message}`,
        );
      }
    }
    let environment: ProxyEnvironment = { noProxy: [] };
    try {
      environment = readProxyEnvironment(
        (name) => Deno.env.get(name),
        parseProxyUrlText,
      );
    } catch (error) {
      log.error(`${(error as Error).message}; "env" routes connect directly`);
    }
    if (environment.proxy) {
      log.info(
        `proxy environment for "env" routes: ${environment.source}=${
          describeProxy(environment.proxy)
        }${
          environment.noProxy.length
            ? `, NO_PROXY=${environment.noProxy.join(",")}`
            : ""
        }`,
      );
    }
    const supervisor = new Supervisor({
      defaults,
      maxConnections,
      environment,
      failoverBackoffMs,
    });
    await supervisor.apply(config.entries);
    const reloader = new ConfigReloader(
      path,
      (entries) => supervisor.apply(entries),
      config.text,
    );
    const watch = watchConfig(path, () => reloader.reload("file changed"));
    const onHangup = () => reloader.reload("SIGHUP");
    if (RELOAD_SIGNAL) Deno.addSignalListener(RELOAD_SIGNAL, onHangup);
    log.info(
      `watching ${path} for changes${
        RELOAD_SIGNAL ? "; SIGHUP reloads too" : ""
      }`,
    );
    const signal = await nextStopSignal();
    log.info(
      `${signal} received: no new connections; a second ${signal} stops at once`,
    );
    if (RELOAD_SIGNAL) Deno.removeSignalListener(RELOAD_SIGNAL, onHangup);
    await watch.close();
    await reloader.settled();
    await supervisor.shutdown(shutdownTimeoutMs);
    log.info("stopped");
    return 0;
  } finally {
    await closeLog();
  }
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
