/**
 * Logging set-up: a file (default `HTTPTunneling.log`), stderr when it is a
 * terminal or when no file is wanted, and one logger per part of the tool.
 *
 * @module
 */

import { getFileSink, getRotatingFileSink } from "@logtape/file";
import {
  configure,
  dispose,
  getJsonLinesFormatter,
  getLogger,
  getStreamSink,
  getTextFormatter,
  type Logger,
  type LogLevel,
  type LogRecord,
  type Sink,
} from "@logtape/logtape";

/** The log file the original tool wrote, kept as the default. */
export const DEFAULT_LOG_FILE = "HTTPTunneling.log";

/** The levels `--log-level` accepts, most verbose first. */
export const LOG_LEVELS: readonly LogLevel[] = [
  "debug",
  "info",
  "warning",
  "error",
];

/** Where and how much to log. */
export interface LogOptions {
  /** Path of the log file, or `"-"` for stderr only. */
  readonly file: string;
  /** The least severe level written. */
  readonly level: LogLevel;
  /** Also write to stderr (the CLI passes whether stderr is a terminal). */
  readonly stderr: boolean;
  /** Plain text lines (default) or one JSON object per line. */
  readonly format?: "text" | "json";
  /** Rotate the file when it reaches this many bytes. */
  readonly maxSize?: number;
  /** How many rotated files to keep (default 5). */
  readonly maxFiles?: number;
}

/** The longest piece of a log line taken from one value, e.g. a status line. */
export const MAX_LOGGED_CHARS = 2048;

const plainText = getTextFormatter({
  timestamp: "date-time-timezone",
  category: ".",
  value: "bare",
});

const jsonLines = getJsonLinesFormatter({
  categorySeparator: ".",
  message: "rendered",
});

// What the network or the environment put in a message (a status line, a
// proxy's scheme list, a ${VAR} value) may be long or hold CR and LF: each
// piece is cut to MAX_LOGGED_CHARS and a text line escapes control
// characters, so one record is one line of bounded length.
const textFormatter = (record: LogRecord) =>
  escapeControls(plainText(bounded(record)));
const jsonFormatter = (record: LogRecord) => jsonLines(bounded(record));

function bounded(record: LogRecord): LogRecord {
  return {
    ...record,
    message: record.message.map((part) => {
      const text = typeof part === "string" ? part : String(part);
      return text.length <= MAX_LOGGED_CHARS
        ? part
        : `${text.slice(0, MAX_LOGGED_CHARS)}… (${
          text.length - MAX_LOGGED_CHARS
        } more characters)`;
    }),
  };
}

/**
 * Escapes control characters in a formatted line, keeping its final
 * newline: CR, LF and the rest become `\r`, `\n`, `\xNN`.
 *
 * @param line A formatted log line ending in a newline.
 * @returns The line with one newline, at its end.
 */
export function escapeControls(line: string): string {
  const body = line.endsWith("\n") ? line.slice(0, -1) : line;
  return body.replace(
    // deno-lint-ignore no-control-regex -- control characters are what is escaped
    /[\x00-\x08\x0a-\x1f\x7f]/g,
    (c) =>
      c === "\n"
        ? "\\n"
        : c === "\r"
        ? "\\r"
        : `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  ) + "\n";
}

/**
 * Routes every logger of the tool to the file and/or stderr.
 *
 * @param options Where and how much to log.
 * @returns A function that flushes and closes the sinks; call it before exit.
 */
export async function setupLogging(
  options: LogOptions,
): Promise<() => Promise<void>> {
  const sinks: Record<string, Sink> = {};
  const formatter = options.format === "json" ? jsonFormatter : textFormatter;
  if (options.file !== "-") {
    sinks.file = options.maxSize === undefined
      ? getFileSink(options.file, { formatter, bufferSize: 0 })
      : getRotatingFileSink(options.file, {
        formatter,
        bufferSize: 0,
        maxSize: options.maxSize,
        maxFiles: options.maxFiles ?? 5,
      });
  }
  if (options.file === "-" || options.stderr) {
    sinks.stderr = getStreamSink(Deno.stderr.writable, { formatter });
  }
  await configure({
    reset: true,
    sinks,
    loggers: [
      {
        category: ["httptunneling"],
        lowestLevel: options.level,
        sinks: Object.keys(sinks),
      },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: [] },
    ],
  });
  return dispose;
}

/**
 * Logging inside a `--workers` thread: every record at `level` or above
 * goes to `post`, for the main thread to write with {@link writeForwarded}.
 *
 * @param level The least severe level sent.
 * @param post Sends a record to the main thread.
 */
export async function setupWorkerLogging(
  level: LogLevel,
  post: (record: LogRecord) => void,
): Promise<void> {
  await configure({
    reset: true,
    sinks: { main: post },
    loggers: [
      { category: ["httptunneling"], lowestLevel: level, sinks: ["main"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: [] },
    ],
  });
}

/**
 * Writes a record that a worker logged through this thread's sinks, its
 * category marked with the worker, e.g. `httptunneling.w2.listener`.
 *
 * @param record The record, as the worker made it.
 * @param worker The worker's mark, e.g. `w2`.
 */
export function writeForwarded(record: LogRecord, worker: string): void {
  const { category: [root, ...parts], ...rest } = record;
  getLogger([root, worker, ...parts]).emit(rest);
}

/**
 * The logger of one part of the tool.
 *
 * @param part e.g. `"tunnel"`, `"listener"`, `"config"`.
 * @returns A logger in the `httptunneling` category.
 */
export function logger(part: string): Logger {
  return getLogger(["httptunneling", part]);
}

/**
 * Formats a byte count for log lines: `512 B`, `1.5 KiB`, `64.0 MiB`.
 *
 * @param bytes A byte count.
 * @returns The count in the largest unit that keeps it at 1 or more.
 */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}
