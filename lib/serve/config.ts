/**
 * The settings of `serve` that may change while it runs (tokens file,
 * allow rules, limits), and its config file: one `key value` per line,
 * `#` comments, keys `tokens`, `allow`, `max-tunnels`, `connect-timeout`.
 * A setting in the file replaces the command line's; `allow` lines in the
 * file replace every `--allow`. Pure: the caller reads the files.
 *
 * @module
 */

import { dirname, resolve } from "node:path";
import { COUNT } from "../config/options.ts";
import { ConfigError } from "../errors.ts";
import { nearest } from "../suggest.ts";
import { parseDuration } from "../time/duration.ts";
import { type AllowRule, parseAllowList } from "./allow.ts";

/** The settings a reload may change. */
export interface ServeSettings {
  /** Path of the tokens file. */
  readonly tokensFile: string;
  /** The allow rules; never empty in a running server. */
  readonly allow: readonly AllowRule[];
  /** Most tunnels open at once; no limit when absent. */
  readonly maxTunnels?: number;
  /** Limit for the TCP connect to a target. */
  readonly connectTimeoutMs: number;
}

/** The connect limit when none is set. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/** The keys of the config file. */
export const SERVE_CONFIG_KEYS = [
  "tokens",
  "allow",
  "max-tunnels",
  "connect-timeout",
] as const;

/** What a config file sets; absent keys keep the command line's values. */
export type ServeConfigFile = Partial<
  { -readonly [K in keyof ServeSettings]: ServeSettings[K] }
>;

/** What {@link parseServeConfig} found. */
export interface ParsedServeConfig {
  /** The settings the file gives. */
  readonly settings: ServeConfigFile;
  /** Every mistake, located. */
  readonly errors: ConfigError[];
}

/**
 * Parses a `serve` config file. A relative `tokens` path is taken from the
 * config file's directory.
 *
 * @param text The file's contents.
 * @param file The file's path, for errors and relative paths.
 * @returns The settings and the errors.
 *
 * @example
 * ```ts
 * parseServeConfig("allow git.internal:22\nmax-tunnels 50\n", "/etc/serve.conf")
 *   .settings.maxTunnels; // 50
 * ```
 */
export function parseServeConfig(
  text: string,
  file: string,
): ParsedServeConfig {
  const settings: ServeConfigFile = {};
  const errors: ConfigError[] = [];
  const allow: AllowRule[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = index + 1;
    const body = raw.replace(/(^|\s)#.*$/, "");
    const fields = [...body.matchAll(/\S+/g)];
    if (fields.length === 0) return;
    const [key, value, extra] = fields;
    const at = (field: RegExpMatchArray, message: string) =>
      errors.push(new ConfigError(file, line, field.index! + 1, message));
    if (!(SERVE_CONFIG_KEYS as readonly string[]).includes(key[0])) {
      const guess = nearest(key[0], SERVE_CONFIG_KEYS);
      at(
        key,
        `unknown key "${key[0]}"${
          guess ? `: did you mean ${guess}?` : ""
        }; the keys are ${SERVE_CONFIG_KEYS.join(", ")}`,
      );
      return;
    }
    if (value === undefined) {
      at(key, `"${key[0]}" needs a value on the same line`);
      return;
    }
    if (extra !== undefined) {
      at(extra, `one value per line: separate allow rules with commas`);
      return;
    }
    switch (key[0]) {
      case "tokens":
        settings.tokensFile = resolve(dirname(file), value[0]);
        break;
      case "allow": {
        const rules = parseAllowList(value[0]);
        if (typeof rules === "string") at(value, rules);
        else allow.push(...rules);
        break;
      }
      case "max-tunnels": {
        const count = COUNT.parse(value[0]);
        if (count === undefined) {
          at(value, `max-tunnels must be ${COUNT.expected}`);
        } else settings.maxTunnels = count;
        break;
      }
      case "connect-timeout": {
        const ms = parseDuration(value[0]);
        if (ms === undefined) {
          at(value, "connect-timeout must be a duration such as 10s or 500ms");
        } else settings.connectTimeoutMs = ms;
        break;
      }
    }
  });
  if (allow.length > 0) settings.allow = allow;
  return { settings, errors };
}

/**
 * The settings in force: the command line's with the config file's on top.
 *
 * @param base From the command line.
 * @param file From the config file, if any.
 * @returns The merged settings.
 */
export function mergeSettings(
  base: Partial<ServeSettings>,
  file: ServeConfigFile = {},
): Partial<ServeSettings> {
  return { ...base, ...file };
}

/**
 * Checks that merged settings can run a server: a tokens file and at
 * least one allow rule (no rule would make an open relay or a useless
 * server, and no default is safe).
 *
 * @param settings The merged settings.
 * @returns The settings, or messages saying what is missing.
 */
export function completeSettings(
  settings: Partial<ServeSettings>,
): ServeSettings | string[] {
  const missing: string[] = [];
  if (settings.tokensFile === undefined) {
    missing.push(
      "no tokens file: give --tokens FILE (or tokens FILE in --config) with one NAME TOKEN per line",
    );
  }
  if (settings.allow === undefined || settings.allow.length === 0) {
    missing.push(
      "no allow rule: serve refuses to start as an open relay; give --allow HOST:PORTS (e.g. --allow 'git.internal:22,*.db.internal:5432') or allow lines in --config",
    );
  }
  if (missing.length > 0) return missing;
  return {
    tokensFile: settings.tokensFile!,
    allow: settings.allow!,
    maxTunnels: settings.maxTunnels,
    connectTimeoutMs: settings.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
  };
}
