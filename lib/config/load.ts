/**
 * Reads a config file and parses it, with the environment variables and
 * credential files it refers to.
 *
 * @module
 */

import { dirname, isAbsolute, join } from "node:path";
import { ConfigLoadError, errorMessage } from "../errors.ts";
import type { TunnelEntry } from "./entry.ts";
import { type ConfigContext, parseConfig } from "./grammar.ts";
import { FILE_KIND_WORDS } from "./options.ts";

/** A config file's text and entries. */
export interface LoadedConfig {
  /** The file's contents as read. */
  readonly text: string;
  /** Its entries, in file order. */
  readonly entries: TunnelEntry[];
  /** Things the user should fix that do not stop the config, e.g. file modes. */
  readonly warnings: string[];
}

/**
 * Reads and parses the config file at `path`. `${NAME}` reads the
 * environment; `credentials=FILE` and `ca-file=FILE` read FILE relative to
 * the config's directory, warning when others may read a credentials file.
 *
 * @param path The file to read.
 * @returns Its text, entries and warnings.
 * @throws {ConfigLoadError} when the file cannot be read or has errors; its
 *   `errors` hold one located error per problem.
 */
export function loadConfig(path: string): LoadedConfig {
  let text: string;
  try {
    text = readRegularFile(path);
  } catch (error) {
    // Deno appends the call and path ("…: stat 'x'"); the path is said already.
    const why = errorMessage(error).replace(/: [a-z]+ '[^']*'$/, "");
    throw new ConfigLoadError(
      `Cannot read config file ${path}: ${why}`,
      [],
      { cause: error },
    );
  }
  const warnings: string[] = [];
  const context: ConfigContext = {
    env: (name) => Deno.env.get(name),
    readFile(file, kind) {
      const full = isAbsolute(file) ? file : join(dirname(path), file);
      const text = readRegularFile(full);
      const mode = Deno.statSync(full).mode;
      // Once per file, however many entries name it.
      const warning = `${
        FILE_KIND_WORDS[kind]
      } ${full} can be read by other users: chmod 600 ${full}`;
      if (
        (kind === "credentials" || kind === "key") && mode !== null &&
        (mode & 0o077) !== 0 &&
        !warnings.includes(warning)
      ) {
        warnings.push(warning);
      }
      return text;
    },
  };
  const { entries, errors } = parseConfig(text, path, context);
  if (errors.length > 0) {
    throw new ConfigLoadError(
      `${path} has ${errors.length} error${errors.length === 1 ? "" : "s"}`,
      errors,
    );
  }
  return { text, entries, warnings };
}

/**
 * Reads a file the user named, refusing anything but a regular file: a
 * FIFO or a device would block the read, and with it reloads and shutdown.
 *
 * @param path The file.
 * @returns Its text.
 * @throws {Error} saying what the path is when it is not a regular file;
 *   the read's own error otherwise.
 */
export function readRegularFile(path: string): string {
  const info = Deno.statSync(path);
  if (!info.isFile) {
    const what = info.isDirectory
      ? "a directory"
      : info.isFifo
      ? "a named pipe (FIFO)"
      : "not a regular file";
    throw new Error(`${path} is ${what}: name a regular file`);
  }
  return Deno.readTextFileSync(path);
}

/** The config `run` and `check` read when none is named. */
export const DEFAULT_CONFIG = "tunnels.conf";

/** The shipped example, used when {@link DEFAULT_CONFIG} does not exist. */
export const EXAMPLE_CONFIG = "tunnels.conf.example";

/**
 * The config file to read: the one named, else `tunnels.conf`, else
 * `tunnels.conf.example` (saying so through `warn`).
 *
 * @param given The path on the command line, if any.
 * @param warn Told when the example stands in for a missing config.
 * @returns The path to read.
 */
export function chooseConfigPath(
  given: string | undefined,
  warn: (message: string) => void,
): string {
  if (given !== undefined) return given;
  if (exists(DEFAULT_CONFIG) || !exists(EXAMPLE_CONFIG)) return DEFAULT_CONFIG;
  warn(
    `${DEFAULT_CONFIG} not found; using ${EXAMPLE_CONFIG} (copy it to ${DEFAULT_CONFIG} and edit it)`,
  );
  return EXAMPLE_CONFIG;
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
