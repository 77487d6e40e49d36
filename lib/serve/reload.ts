/**
 * Reloading `serve`'s config file and tokens file when they change (a
 * directory watch, as for `run`) or on SIGHUP. A version with errors is
 * logged error by error, as `file:line:column`, and the last good one stays
 * in force.
 *
 * @module
 */

import { readRegularFile } from "../config/load.ts";
import { type ConfigWatch, watchConfig } from "../config/watch.ts";
import { type ConfigError, errorMessage } from "../errors.ts";
import { logger } from "../observe/log.ts";
import type { AllowRule } from "./allow.ts";
import {
  completeSettings,
  mergeSettings,
  parseServeConfig,
  type ServeConfigFile,
  type ServeSettings,
} from "./config.ts";
import type { FarEnd } from "./server.ts";
import { type NamedToken, parseTokens } from "./tokens.ts";

const log = logger("serve");

/** When the files were last (re)loaded and how that went, for /status. */
export interface ReloadState {
  lastReload?: { time: string; result: string };
}

/**
 * The message for a tokens file without a token.
 *
 * @param settings The settings naming the file.
 * @returns What to write into it.
 */
export function noTokens(settings: ServeSettings): string {
  return `${settings.tokensFile} holds no token: write one NAME TOKEN per line (e.g. "alice $(openssl rand -hex 24)")`;
}

/**
 * Reads and parses a `serve` config file.
 *
 * @param path The file.
 * @returns Its settings, or its errors as `file:line:col: message` lines.
 */
export function readServeConfig(path: string): ServeConfigFile | string[] {
  let text: string;
  try {
    text = readRegularFile(path);
  } catch (error) {
    return [`cannot read config file ${path}: ${errorMessage(error)}`];
  }
  const { settings, errors } = parseServeConfig(text, path);
  return errors.length > 0 ? errors.map((each) => each.message) : settings;
}

/**
 * Reads and parses a tokens file.
 *
 * @param path The file.
 * @returns The tokens (an empty list when it holds none), or its errors.
 */
export function readTokens(path: string): NamedToken[] | { errors: string[] } {
  let text: string;
  try {
    text = readRegularFile(path);
  } catch (error) {
    return {
      errors: [`cannot read tokens file ${path}: ${errorMessage(error)}`],
    };
  }
  const { tokens, errors } = parseTokens(text, path);
  return errors.length > 0
    ? { errors: errors.map((each: ConfigError) => each.message) }
    : tokens;
}

/**
 * Logs a warning for each rule that lets token holders reach any host.
 *
 * @param rules The rules in force.
 */
export function warnAboutRules(rules: readonly AllowRule[]): void {
  for (const rule of rules) {
    if (rule.host.kind === "any") {
      log.warn(
        `allow rule ${rule.text} lets token holders reach any host on ${
          rule.fromPort === rule.toPort
            ? `port ${rule.fromPort}`
            : `ports ${rule.fromPort}-${rule.toPort}`
        }`,
      );
    }
  }
}

/**
 * Reloads the config file and the tokens file when they change or on
 * SIGHUP; a bad version is logged with its errors and the last good one
 * stays in force.
 */
export class Reloads {
  readonly #farEnd: FarEnd;
  readonly #base: Partial<ServeSettings>;
  readonly #configPath?: string;
  readonly #state: ReloadState;
  #configWatch?: ConfigWatch;
  #tokensWatch?: ConfigWatch;
  #tokensPath?: string;

  /**
   * @param farEnd Gets the new settings and tokens.
   * @param base The command line's settings, under the config file's.
   * @param configPath The config file, if any.
   * @param state Where the last reload's time and result are kept.
   */
  constructor(
    farEnd: FarEnd,
    base: Partial<ServeSettings>,
    configPath: string | undefined,
    state: ReloadState,
  ) {
    this.#farEnd = farEnd;
    this.#base = base;
    this.#configPath = configPath;
    this.#state = state;
  }

  /** Starts watching the config file and the tokens file. */
  start(): void {
    if (this.#configPath !== undefined) {
      this.#configWatch = watchConfig(
        this.#configPath,
        () => this.reloadConfig("file changed"),
      );
    }
    this.#watchTokens();
  }

  /** Reloads both files (SIGHUP); `why` goes into the log. */
  reloadAll(why: string): void {
    this.reloadConfig(why);
    this.reloadTokens(why);
  }

  /** Reloads the config file; `why` goes into the log. */
  reloadConfig(why: string): void {
    if (this.#configPath === undefined) return;
    const file = readServeConfig(this.#configPath);
    const settings = file instanceof Array
      ? file
      : completeSettings(mergeSettings(this.#base, file));
    if (settings instanceof Array) {
      for (const message of settings) log.error(message);
      return this.#done(
        `${this.#configPath} (${why}) not applied: the last good config stays in force`,
        "error",
      );
    }
    this.#farEnd.settings = settings;
    warnAboutRules(settings.allow);
    this.#done(
      `${this.#configPath} (${why}) applied: ${settings.allow.length} allow rule(s), max-tunnels ${
        settings.maxTunnels ?? "none"
      }, connect-timeout ${settings.connectTimeoutMs / 1000} s`,
      "applied",
    );
    if (settings.tokensFile !== this.#tokensPath) {
      this.reloadTokens("tokens file changed in the config");
      this.#watchTokens();
    }
  }

  /** Reloads the tokens file; `why` goes into the log. */
  reloadTokens(why: string): void {
    const path = this.#farEnd.settings.tokensFile;
    const tokens = readTokens(path);
    if (!Array.isArray(tokens) || tokens.length === 0) {
      const errors = Array.isArray(tokens)
        ? [noTokens(this.#farEnd.settings)]
        : tokens.errors;
      for (const message of errors) log.error(message);
      return this.#done(
        `${path} (${why}) not applied: the last good tokens stay in force`,
        "error",
      );
    }
    this.#farEnd.tokens = tokens;
    this.#done(
      `${path} (${why}) applied: ${tokens.length} token(s)`,
      "applied",
    );
  }

  /** Stops watching. */
  async stop(): Promise<void> {
    await this.#configWatch?.close();
    await this.#tokensWatch?.close();
  }

  #watchTokens(): void {
    const path = this.#farEnd.settings.tokensFile;
    const previous = this.#tokensWatch;
    this.#tokensPath = path;
    this.#tokensWatch = watchConfig(
      path,
      () => this.reloadTokens("file changed"),
    );
    previous?.close();
  }

  #done(message: string, result: "applied" | "error"): void {
    if (result === "applied") log.info(message);
    else log.error(message);
    this.#state.lastReload = { time: new Date().toISOString(), result };
    this.#farEnd.metrics.reloaded(result);
  }
}
