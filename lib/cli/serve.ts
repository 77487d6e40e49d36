/**
 * `serve`: the far end of WebSocket tunnels, on a host the user controls.
 * Reads its settings from the command line and `--config`, its tokens from
 * `--tokens`, reloads all three (and the TLS certificate) when they change
 * or on SIGHUP, keeping the last good version of each, and stops on
 * SIGINT/SIGTERM after the open tunnels end or the shutdown time is up.
 *
 * @module
 */

import { resolve } from "node:path";
import { COUNT, DURATION } from "../config/options.ts";
import { errorMessage, UsageError } from "../errors.ts";
import { formatHostPort } from "../net/address.ts";
import { logger, setupLogging } from "../observe/log.ts";
import {
  startStatusPages,
  type StatusServer,
} from "../observe/status_server.ts";
import { type AllowRule, parseAllowList } from "../serve/allow.ts";
import {
  completeSettings,
  DEFAULT_CONNECT_TIMEOUT_MS,
  mergeSettings,
  type ServeSettings,
} from "../serve/config.ts";
import {
  type FarListener,
  startFarListener,
  tlsIdleLimitMs,
} from "../serve/listener.ts";
import {
  noTokens,
  readServeConfig,
  readTokens,
  Reloads,
  type ReloadState,
  warnAboutRules,
} from "../serve/reload.ts";
import { DEFAULT_RESUME_WINDOW_MS, FarEnd } from "../serve/server.ts";
import { serveMetrics, serveStatus } from "../serve/status.ts";
import { VERSION } from "../version.ts";
import { parseCommandLine } from "./args.ts";
import { parseStatusAddress } from "./entry_args.ts";
import {
  type Flag,
  flagValue,
  LOG,
  LOG_FORMAT,
  LOG_LEVEL,
  SHUTDOWN_TIMEOUT,
  STATUS,
  type Switch,
  text,
  usageLine,
} from "./flags.ts";
import { nextStopSignal, RELOAD_SIGNAL } from "./run.ts";

const log = logger("serve");

/** `--listen ADDR`. */
export const LISTEN = {
  flag: "listen",
  type: text("ADDR"),
  default: "127.0.0.1:8080",
  help:
    "where to accept tunnels: HOST:PORT, [v6]:PORT; plain HTTP behind a reverse proxy unless --cert",
} satisfies Flag<string>;

/** `--cert FILE`. */
export const CERT = {
  flag: "cert",
  type: text("FILE"),
  help: "TLS certificate chain (PEM), with --key; reloaded when it changes",
} satisfies Flag<string>;

/** `--key FILE`. */
export const KEY = {
  flag: "key",
  type: text("FILE"),
  help: "TLS private key (PEM), with --cert",
} satisfies Flag<string>;

/** `--client-ca FILE`. */
export const CLIENT_CA = {
  flag: "client-ca",
  type: text("FILE"),
  help:
    "with --cert: require a client certificate issued by one of these CAs (PEM); reloaded when it changes",
  unset: "no client certificates",
} satisfies Flag<string>;

/** `--tokens FILE`. */
export const TOKENS = {
  flag: "tokens",
  type: text("FILE"),
  help: "bearer tokens, one NAME TOKEN per line; reloaded when it changes",
} satisfies Flag<string>;

/** `--path PATH`. */
export const PATH = {
  flag: "path",
  type: text("PATH"),
  default: "/",
  help: "the URL path of tunnel upgrades",
} satisfies Flag<string>;

/** `--site DIR`. */
export const SITE = {
  flag: "site",
  type: text("DIR"),
  help: "answer other requests with files from DIR",
  unset: "404 to everything",
} satisfies Flag<string>;

/** `--config FILE`. */
export const SERVE_CONFIG = {
  flag: "config",
  type: text("FILE"),
  help:
    "settings file (tokens, allow, max-tunnels, connect-timeout), reloaded when it changes",
} satisfies Flag<string>;

/** `--max-tunnels N`. */
export const MAX_TUNNELS = {
  flag: "max-tunnels",
  type: COUNT,
  help: "most tunnels open at once; more get 503",
  unset: "no limit",
} satisfies Flag<number>;

/** `--connect-timeout D` of serve. */
export const SERVE_CONNECT_TIMEOUT = {
  flag: "connect-timeout",
  type: DURATION,
  default: DEFAULT_CONNECT_TIMEOUT_MS,
  help: "limit for resolving and connecting to a target",
} satisfies Flag<number>;

/** `--heartbeat D`. */
export const HEARTBEAT = {
  flag: "heartbeat",
  type: DURATION,
  default: 30_000,
  help: "ping a silent tunnel after D; close it when no pong comes within D",
} satisfies Flag<number>;

/** `--resume-window D`. */
export const RESUME_WINDOW = {
  flag: "resume-window",
  type: DURATION,
  default: DEFAULT_RESUME_WINDOW_MS,
  help:
    "keep a v2 session whose WebSocket was lost for D, for the client to resume it",
} satisfies Flag<number>;

/** `--trusted-proxy ADDRS`. */
export const TRUSTED_PROXY = {
  flag: "trusted-proxy",
  type: text("ADDRS"),
  help:
    "reverse proxies (addresses, CIDR blocks, commas between) whose X-Forwarded-For names the client, for the log and the rate limit",
  unset: "none",
} satisfies Flag<string>;

/** `--allow RULES`, repeatable. */
export const ALLOW_SWITCH = {
  flag: "allow",
  placeholder: "RULES",
  multiple: true,
  help:
    "targets tunnels may reach: HOST:PORTS,… (git.internal:22, *.db.internal:5432-5439, 10.0.0.0/8:*, [fd00::/8]:443)",
} as const satisfies Switch;

/** Every option of `serve` with a value, in the order of its usage text. */
export const SERVE_OPTIONS: readonly Flag<unknown>[] = [
  LISTEN,
  CERT,
  KEY,
  CLIENT_CA,
  TOKENS,
  PATH,
  SITE,
  SERVE_CONFIG,
  MAX_TUNNELS,
  SERVE_CONNECT_TIMEOUT,
  HEARTBEAT,
  RESUME_WINDOW,
  TRUSTED_PROXY,
  SHUTDOWN_TIMEOUT,
  STATUS,
  LOG,
  LOG_LEVEL,
  LOG_FORMAT,
];

/** The usage lines of `serve`'s options. */
export const SERVE_USAGE_LINES: readonly { name: string; help: string }[] = [
  ...SERVE_OPTIONS.flatMap((option) => usageLine(option) ?? []),
  {
    name: `--${ALLOW_SWITCH.flag} ${ALLOW_SWITCH.placeholder}`,
    help: ALLOW_SWITCH.help,
  },
];

/** The flags `serve` takes: its `--help` lists these. */
export const SERVE_FLAGS = {
  ...Object.fromEntries(
    SERVE_OPTIONS.map(({ flag }) => [flag, { type: "string" as const }]),
  ),
  allow: { type: "string", multiple: true },
} as const;

/**
 * Runs `serve` until SIGINT/SIGTERM.
 *
 * @param args The arguments after `serve`.
 * @returns 0 after a clean shutdown, 1 when it cannot start.
 * @throws {UsageError} for a wrong option.
 */
export async function serveCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(args, SERVE_FLAGS);
  if (positionals.length > 0) {
    throw new UsageError(
      `serve takes options only; "${positionals[0]}" is not one`,
    );
  }
  const listen = parseStatusAddress(flagValue(values, LISTEN), "--listen");
  const certFile = flagValue(values, CERT);
  const keyFile = flagValue(values, KEY);
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new UsageError("--cert and --key go together: give both or neither");
  }
  const clientCa = flagValue(values, CLIENT_CA);
  if (clientCa !== undefined && certFile === undefined) {
    throw new UsageError(
      "--client-ca needs --cert and --key: serve asks for client certificates only over its own TLS (behind a reverse proxy, let it check them)",
    );
  }
  const path = flagValue(values, PATH);
  if (!path.startsWith("/")) {
    throw new UsageError(`--path must start with "/"; got "${path}"`);
  }
  const site = flagValue(values, SITE);
  const siteRoot = site === undefined ? undefined : siteDirectory(site);
  const status = flagValue(values, STATUS);
  const statusAddress = status === undefined
    ? undefined
    : parseStatusAddress(status);
  const configPath = flagValue(values, SERVE_CONFIG);
  const tokensFlag = flagValue(values, TOKENS);
  const base: Partial<ServeSettings> = {
    tokensFile: tokensFlag === undefined ? undefined : resolve(tokensFlag),
    allow: allowFromFlags(values.allow ?? []),
    maxTunnels: flagValue(values, MAX_TUNNELS),
    connectTimeoutMs: flagValue(values, SERVE_CONNECT_TIMEOUT),
  };
  if (base.allow?.length === 0) delete (base as { allow?: unknown }).allow;
  const trusted = flagValue(values, TRUSTED_PROXY);
  const trustedProxies = trusted === undefined
    ? []
    : trustedProxyRules(trusted);
  const shutdownTimeoutMs = flagValue(values, SHUTDOWN_TIMEOUT);
  const logFile = flagValue(values, LOG);

  const closeLog = await setupLogging({
    file: logFile,
    level: flagValue(values, LOG_LEVEL),
    stderr: Deno.stderr.isTerminal(),
    format: flagValue(values, LOG_FORMAT),
  });
  try {
    log.info(`httptunneling ${VERSION} serve starting (pid ${Deno.pid})`);
    const fail = (messages: string[]) => {
      for (const message of messages) {
        log.error(message);
        console.error(`error: ${message}`);
      }
      return 1;
    };
    const file = configPath === undefined ? {} : readServeConfig(configPath);
    if (file instanceof Array) return fail(file);
    const settings = completeSettings(mergeSettings(base, file));
    if (settings instanceof Array) return fail(settings);
    const tokens = readTokens(settings.tokensFile);
    if (!Array.isArray(tokens) || tokens.length === 0) {
      return fail(Array.isArray(tokens) ? [noTokens(settings)] : tokens.errors);
    }
    warnAboutRules(settings.allow);
    const label = formatHostPort(listen);
    const farEnd = new FarEnd(settings, tokens, {
      path,
      siteRoot,
      heartbeatSeconds: Math.max(
        1,
        Math.round(flagValue(values, HEARTBEAT) / 1000),
      ),
      label,
      trustedProxies,
      resumeWindowMs: flagValue(values, RESUME_WINDOW),
    });
    let listener: FarListener;
    try {
      listener = startFarListener(
        listen,
        certFile === undefined
          ? undefined
          : { certFile, keyFile: keyFile!, clientCaFile: clientCa },
        farEnd,
        tlsIdleLimitMs(flagValue(values, HEARTBEAT)),
      );
    } catch (error) {
      return fail([`cannot serve on ${label}: ${errorMessage(error)}`]);
    }
    const bound = formatHostPort({
      host: listener.addr.hostname,
      port: listener.addr.port,
    });
    log.info(
      `serving tunnels on ${
        certFile ? "wss" : "ws"
      }://${bound}${path} (${tokens.length} token(s), ${settings.allow.length} allow rule(s)${
        clientCa === undefined ? "" : ", client certificates required"
      })`,
    );
    const state: ReloadState = {};
    const reloads = new Reloads(farEnd, base, configPath, state);
    reloads.start();
    const onHangup = () => reloads.reloadAll("SIGHUP");
    if (RELOAD_SIGNAL) Deno.addSignalListener(RELOAD_SIGNAL, onHangup);
    let statusServer: StatusServer | undefined;
    if (statusAddress) {
      try {
        statusServer = startStatusPages(statusAddress, {
          status: () => serveStatus(farEnd, bound, configPath, state),
          metrics: () => serveMetrics(farEnd, label),
        });
      } catch (error) {
        log.error(`cannot serve --status on ${status}: ${errorMessage(error)}`);
      }
    }
    if (!Deno.stderr.isTerminal() && logFile !== "-") {
      console.error(
        `httptunneling ${VERSION}: serving tunnels on ${bound}; log: ${logFile}`,
      );
    }
    const signal = await nextStopSignal();
    log.info(
      `${signal} received: no new tunnels; open ones may finish within ${
        shutdownTimeoutMs / 1000
      } s; a second ${signal} stops at once`,
    );
    if (RELOAD_SIGNAL) Deno.removeSignalListener(RELOAD_SIGNAL, onHangup);
    await reloads.stop();
    farEnd.stopAccepting();
    listener.stopAccepting();
    await farEnd.drain(shutdownTimeoutMs);
    await listener.shutdown();
    await statusServer?.close();
    log.info("stopped");
    return 0;
  } finally {
    await closeLog();
  }
}

function siteDirectory(site: string): string {
  try {
    const root = Deno.realPathSync(site);
    if (!Deno.statSync(root).isDirectory) throw new Error("not a directory");
    return root;
  } catch (error) {
    throw new UsageError(`--site ${site}: ${errorMessage(error)}`);
  }
}

function allowFromFlags(values: string[]): AllowRule[] {
  return values.flatMap((value) => {
    const rules = parseAllowList(value);
    if (typeof rules === "string") throw new UsageError(`--allow: ${rules}`);
    return rules;
  });
}

function trustedProxyRules(text: string): AllowRule[] {
  const rules = parseAllowList(
    text.split(",").map((each) => `${each.trim()}:*`).join(","),
  );
  if (
    typeof rules === "string" || rules.some((rule) => rule.host.kind !== "cidr")
  ) {
    throw new UsageError(
      `--trusted-proxy must be addresses or CIDR blocks, commas between (127.0.0.1,[::1],10.0.0.0/8); got "${text}"`,
    );
  }
  return rules;
}
