/**
 * The command line's options: the tunnel options of the one option table
 * (`lib/config/options.ts`) and the flags of `run` alone, in the order the
 * usage text lists them. The `parseArgs` settings, the typed values and the
 * usage lines are generated from these rows.
 *
 * @module
 */

import type { LogLevel } from "@logtape/logtape";
import {
  type AnyTunnelOption,
  COUNT,
  DEFAULT_TUNNEL_OPTIONS,
  DURATION,
  readTunnelOption,
  shownDefault,
  TUNNEL_OPTION_ROWS,
  TUNNEL_OPTIONS,
  type TunnelOptions,
  type ValueType,
} from "../config/options.ts";
import { readRegularFile } from "../config/load.ts";
import { errorMessage, UsageError } from "../errors.ts";
import { keyPairProblem } from "../net/key_pair.ts";
import { DEFAULT_LOG_FILE, LOG_LEVELS } from "../observe/log.ts";
import { DEFAULT_FAILOVER_BACKOFF_MS } from "../route/health.ts";

/** A flag of `run` that is not a tunnel option. */
export interface Flag<T> {
  /** The flag, without `--`. */
  readonly flag: string;
  /** How its value is written. */
  readonly type: ValueType<T>;
  /**
   * Its line in the usage text, to which `(default: …)` is added; a
   * function when the line says the default itself. Absent for a flag the
   * usage text does not list.
   */
  readonly help?: string | ((shownDefault: string) => string);
  /** The value when the flag is not given. */
  readonly default?: T;
  /** The usage text's default when there is no value, e.g. `no limit`. */
  readonly unset?: string;
}

/**
 * Any text, e.g. a path.
 *
 * @param placeholder Stands for the value in the usage text, e.g. `FILE`.
 * @returns The value type.
 */
export function text(placeholder: string): ValueType<string> {
  return {
    placeholder,
    kind: "text",
    expected: "text",
    parse: (value) => value,
  };
}

/** One of a few words. */
function oneOf<T extends string>(
  choices: readonly T[],
  placeholder: string,
): ValueType<T> {
  const expected = choices.length === 2
    ? choices.join(" or ")
    : `one of ${choices.join(", ")}`;
  return {
    placeholder,
    kind: expected,
    expected,
    choices,
    parse: (text) => choices.find((choice) => choice === text),
  };
}

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  K: 1024,
  M: 1024 ** 2,
  G: 1024 ** 3,
};

/** A size in bytes: `512K`, `10M` (K, M, G: powers of 1024). */
const SIZE: ValueType<number> = {
  placeholder: "SIZE",
  kind: "a size",
  expected: "a size such as 512K or 10M",
  parse(text) {
    const match = /^(\d+)([KMG]?)i?B?$/i.exec(text);
    if (!match || Number(match[1]) === 0) return undefined;
    return Number(match[1]) * SIZE_UNITS[match[2].toUpperCase()];
  },
};

/** `--log FILE`: where the log goes; `-` for stderr only. */
export const LOG = {
  flag: "log",
  type: text("FILE"),
  default: DEFAULT_LOG_FILE,
  help: (file) => `log file (default: ${file}); "-" logs to stderr only`,
} satisfies Flag<string>;

/** `--log-level LEVEL`. */
export const LOG_LEVEL = {
  flag: "log-level",
  type: oneOf(LOG_LEVELS, "LEVEL"),
  default: "info",
  help: "debug, info, warning or error",
} satisfies Flag<LogLevel>;

/** `--max-connections N`: the limit over all entries (an entry's own is `max-connections=N`). */
export const MAX_CONNECTIONS = {
  flag: "max-connections",
  type: COUNT,
  help: "most tunnels open at once over all entries",
  unset: "no limit",
} satisfies Flag<number>;

/** `--shutdown-timeout D`: how long live tunnels may finish on SIGINT/SIGTERM. */
export const SHUTDOWN_TIMEOUT = {
  flag: "shutdown-timeout",
  type: DURATION,
  default: 10_000,
  help: "how long live tunnels may finish after SIGINT/SIGTERM",
} satisfies Flag<number>;

/** `--failover-backoff D`: how long a failed proxy is skipped at first. */
export const FAILOVER_BACKOFF = {
  flag: "failover-backoff",
  type: DURATION,
  default: DEFAULT_FAILOVER_BACKOFF_MS,
  help: "how long a failed proxy is skipped at first; doubles up to 5m",
} satisfies Flag<number>;

/** `--status ADDR`: where to serve `/status` and `/metrics`. */
export const STATUS = {
  flag: "status",
  type: text("ADDR"),
  help:
    "serve GET /status (JSON) and /metrics (Prometheus) on ADDR, e.g. 127.0.0.1:9191",
} satisfies Flag<string>;

/** `--log-format F`: text or JSON lines. */
export const LOG_FORMAT = {
  flag: "log-format",
  type: oneOf(["text", "json"], "F"),
  default: "text",
  help: (format) => `${format} (default) or json (one JSON object per line)`,
} satisfies Flag<"text" | "json">;

/** `--log-max-size SIZE`: rotate the log file at this size. */
export const LOG_MAX_SIZE = {
  flag: "log-max-size",
  type: SIZE,
  help: "rotate the log file at SIZE (e.g. 10M), keeping --log-files of them",
  unset: "no rotation",
} satisfies Flag<number>;

/** `--log-files N`: how many rotated log files `--log-max-size` keeps. */
export const LOG_FILES = {
  flag: "log-files",
  type: COUNT,
  default: 5,
  help: "how many rotated log files to keep",
} satisfies Flag<number>;

/** `--workers N`: threads sharing the ports. */
export const WORKERS = {
  flag: "workers",
  type: COUNT,
  default: 1,
  help:
    "N threads share the ports (SO_REUSEPORT, Linux); limits are split between them",
} satisfies Flag<number>;

/** Every option of `run`, in the order of its usage text. */
export const RUN_OPTIONS: readonly (Flag<unknown> | AnyTunnelOption)[] = [
  LOG,
  LOG_LEVEL,
  TUNNEL_OPTIONS.connectTimeoutMs,
  TUNNEL_OPTIONS.handshakeTimeoutMs,
  TUNNEL_OPTIONS.idleTimeoutMs,
  TUNNEL_OPTIONS.lingerTimeoutMs,
  TUNNEL_OPTIONS.drainTimeoutMs,
  MAX_CONNECTIONS,
  SHUTDOWN_TIMEOUT,
  TUNNEL_OPTIONS.caCerts,
  TUNNEL_OPTIONS.token,
  TUNNEL_OPTIONS.heartbeatMs,
  TUNNEL_OPTIONS.fingerprint,
  TUNNEL_OPTIONS.clientCert,
  TUNNEL_OPTIONS.clientKey,
  TUNNEL_OPTIONS.mux,
  TUNNEL_OPTIONS.resume,
  TUNNEL_OPTIONS.resumeWindowMs,
  TUNNEL_OPTIONS.maxStreams,
  TUNNEL_OPTIONS.transport,
  FAILOVER_BACKOFF,
  STATUS,
  LOG_FORMAT,
  LOG_MAX_SIZE,
  LOG_FILES,
  WORKERS,
];

/**
 * A command-line flag outside the option table: how the parser reads it
 * and its line in a subcommand's `--help`.
 */
export interface Switch {
  /** The flag, without `--`. */
  readonly flag: string;
  /** A one-letter alias, without `-`. */
  readonly short?: string;
  /** Stands for its value in the help text; a switch without one takes none. */
  readonly placeholder?: string;
  /** Whether it may be given more than once. */
  readonly multiple?: boolean;
  /** Its line in the help text. */
  readonly help: string;
}

/** A hop of the route, for `run -L`, `stdio` and `probe`. */
export const PROXY_SWITCH = {
  flag: "proxy",
  placeholder: "URL",
  multiple: true,
  help:
    "a proxy of the route, first hop first; commas between alternatives; or env, or pac=FILE|URL|auto alone (default: direct)",
} as const satisfies Switch;

/** A one-off forward of `run`. */
export const FORWARD_SWITCH = {
  flag: "forward",
  short: "L",
  placeholder: "[BIND:]PORT:HOST:HOSTPORT",
  multiple: true,
  help: "a forward like ssh -L, beside or instead of CONFIG's entries",
} as const satisfies Switch;

/** `stdio -v`. */
export const VERBOSE_SWITCH = {
  flag: "verbose",
  short: "v",
  help: "log the route and the tunnel's end on stderr",
} as const satisfies Switch;

/** `probe --json`, `status --json`. */
export const JSON_SWITCH = {
  flag: "json",
  help: "print one JSON document (for probe, the reports; for status, /status)",
} as const satisfies Switch;

/** `probe --to`. */
export const TO_SWITCH = {
  flag: "to",
  placeholder: "HOST:PORT",
  help:
    "where a local proxy entry's route is tested (default: example.com:443)",
} as const satisfies Switch;

/** `status --watch`. */
export const WATCH_SWITCH = {
  flag: "watch",
  short: "w",
  help: "show the status again every second",
} as const satisfies Switch;

/** `status --wide`. */
export const WIDE_SWITCH = {
  flag: "wide",
  help: "show every cell in full instead of fitting the terminal's width",
} as const satisfies Switch;

/**
 * A switch's line in a subcommand's `--help`.
 *
 * @param each The switch.
 * @returns e.g. `-v, --verbose` and its help.
 */
export function switchLine(each: Switch): { name: string; help: string } {
  const short = each.short === undefined ? "" : `-${each.short}, `;
  const value = each.placeholder === undefined ? "" : ` ${each.placeholder}`;
  return { name: `${short}--${each.flag}${value}`, help: each.help };
}

/** The flags that set tunnel options, and `--proxy`: `run`, `stdio` and `probe` take them. */
export const TUNNEL_FLAGS = {
  ...stringFlags(TUNNEL_OPTION_ROWS.filter((option) => !option.runOnly)),
  [PROXY_SWITCH.flag]: { type: "string", multiple: true },
} as const;

/**
 * The flags `run` takes: every tunnel flag (its own too), the rest of
 * {@link RUN_OPTIONS}, `--proxy` and `-L`.
 */
export const RUN_FLAGS = {
  ...TUNNEL_FLAGS,
  ...stringFlags([...TUNNEL_OPTION_ROWS, ...RUN_OPTIONS]),
  forward: { type: "string", short: FORWARD_SWITCH.short, multiple: true },
} as const;

function stringFlags(
  rows: readonly { readonly flag?: string }[],
): Record<string, { type: "string" }> {
  return Object.fromEntries(
    rows.flatMap(({ flag }) =>
      flag === undefined ? [] : [[flag, { type: "string" as const }]]
    ),
  );
}

/**
 * Reads one flag of `run`.
 *
 * @param values The parsed command line.
 * @param flag The row.
 * @returns The value, or the row's default when the flag was not given.
 * @throws {UsageError} saying what the value must be.
 */
export function flagValue<T>(
  values: Record<string, unknown>,
  flag: Flag<T> & { readonly default: T },
): T;
/** Reads one flag of `run` that has no default: `undefined` when not given. */
export function flagValue<T>(
  values: Record<string, unknown>,
  flag: Flag<T>,
): T | undefined;
export function flagValue<T>(
  values: Record<string, unknown>,
  flag: Flag<T>,
): T | undefined {
  const text = values[flag.flag];
  if (typeof text !== "string") return flag.default;
  const value = flag.type.parse(text);
  if (value === undefined) {
    throw wrongValue(flag.flag, flag.type.expected, text);
  }
  return value;
}

/**
 * Tunnel options from the command line, defaults filled in; reads files
 * such as `--ca-file`.
 *
 * @param values The parsed command line, {@link TUNNEL_FLAGS} among its flags.
 * @returns The options.
 * @throws {UsageError} for a wrong value or an unreadable file.
 */
export function tunnelOptionsFrom(
  values: Record<string, unknown>,
): TunnelOptions {
  let options = DEFAULT_TUNNEL_OPTIONS;
  for (const option of TUNNEL_OPTION_ROWS) {
    const text = option.flag === undefined ? undefined : values[option.flag];
    if (option.flag === undefined || typeof text !== "string") continue;
    const value = option.type.file ? readFlagFile(option.flag, text) : text;
    const setting = readTunnelOption(option, value);
    if (setting === undefined) {
      throw wrongValue(
        option.flag,
        option.type.expected,
        option.type.secret ? "…" : text,
      );
    }
    options = { ...options, ...setting };
  }
  if (
    (options.clientCert === undefined) !== (options.clientKey === undefined)
  ) {
    throw new UsageError(
      "--client-cert and --client-key go together: give both",
    );
  }
  if (options.clientCert !== undefined) {
    const problem = keyPairProblem(options.clientCert, options.clientKey!);
    if (problem !== undefined) throw new UsageError(`--client-key: ${problem}`);
  }
  return options;
}

/**
 * An option's usage line: the flag with its placeholder, and its help with
 * the default.
 *
 * @param option A row of {@link RUN_OPTIONS}.
 * @returns e.g. `--idle-timeout D` and `close tunnels … (default: off)`, or
 *   `undefined` for a row the usage text does not list.
 */
export function usageLine(
  option: Flag<unknown> | AnyTunnelOption,
): { name: string; help: string } | undefined {
  if (option.flag === undefined || option.help === undefined) return undefined;
  const name = `--${option.flag} ${option.type.placeholder}`;
  if ("field" in option) {
    return { name, help: withDefault(option.help, shownDefault(option)) };
  }
  const shown = option.default === undefined
    ? option.unset
    : option.type.format?.(option.default) ?? String(option.default);
  return {
    name,
    help: typeof option.help === "function"
      ? option.help(shown ?? "")
      : withDefault(option.help, shown),
  };
}

function withDefault(help: string, shown: string | undefined): string {
  return shown === undefined ? help : `${help} (default: ${shown})`;
}

function wrongValue(flag: string, expected: string, text: string): UsageError {
  return new UsageError(`--${flag} must be ${expected}; got "${text}"`);
}

function readFlagFile(flag: string, path: string): string {
  try {
    return readRegularFile(path);
  } catch (error) {
    throw new UsageError(`--${flag} ${path}: ${errorMessage(error)}`);
  }
}
