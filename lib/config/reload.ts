/**
 * Re-reads the config file and hands a changed, valid config to the
 * supervisor. A config with errors, or a missing file, changes nothing.
 *
 * @module
 */

import { loadConfig } from "./load.ts";
import type { TunnelEntry } from "./entry.ts";
import { ConfigLoadError } from "../errors.ts";
import { logger } from "../observe/log.ts";

const log = logger("config");

/** The outcome of one {@link ConfigReloader.reload}. */
export type ReloadResult = "applied" | "unchanged" | "invalid" | "unreadable";

/** Reloads one config file, one reload at a time. */
export class ConfigReloader {
  #path: string;
  #apply: (entries: TunnelEntry[]) => Promise<unknown>;
  #lastText: string | undefined;
  // The last reload found errors: the next valid read says so, even when
  // it is the text already running.
  #broken = false;
  #queue: Promise<unknown> = Promise.resolve();
  #onResult?: (result: ReloadResult) => void;
  // Warnings logged already: a file that stays world-readable is said
  // once, not at every reload.
  #warned: Set<string>;

  /**
   * @param path The config file.
   * @param apply Makes a set of entries the running set.
   * @param appliedText The text already running, if any.
   * @param onResult Told the outcome of every reload, e.g. for /status.
   * @param warned Warnings the first load logged already.
   */
  constructor(
    path: string,
    apply: (entries: TunnelEntry[]) => Promise<unknown>,
    appliedText?: string,
    onResult?: (result: ReloadResult) => void,
    warned: readonly string[] = [],
  ) {
    this.#path = path;
    this.#apply = apply;
    this.#lastText = appliedText;
    this.#onResult = onResult;
    this.#warned = new Set(warned);
  }

  /**
   * Reads the file and applies it when its text changed and it is valid.
   * Calls are queued, so two reloads never overlap.
   *
   * @param reason Why, for the log: e.g. `"file changed"`, `"SIGHUP"`.
   * @returns What happened.
   */
  reload(reason: string): Promise<ReloadResult> {
    const result = this.#queue.then(() => this.#reload(reason)).then(
      (outcome) => {
        this.#onResult?.(outcome);
        return outcome;
      },
    );
    this.#queue = result;
    return result;
  }

  /** Waits for queued reloads to finish. */
  async settled(): Promise<void> {
    await this.#queue.catch(() => {});
  }

  async #reload(reason: string): Promise<ReloadResult> {
    let text: string;
    let entries: TunnelEntry[];
    try {
      let warnings: string[];
      ({ text, entries, warnings } = loadConfig(this.#path));
      for (const warning of warnings) {
        if (!this.#warned.has(warning)) log.warn(warning);
      }
      // Fixed and broken again is worth saying again.
      this.#warned = new Set(warnings);
    } catch (error) {
      if (!(error instanceof ConfigLoadError)) throw error;
      if (error.errors.length === 0) {
        log.warn(
          `reload (${reason}): ${error.message}; the running tunnels stay as they are`,
        );
        this.#lastText = undefined;
        return "unreadable";
      }
      for (const each of error.errors) log.error(each.message);
      log.error(
        `reload (${reason}): ${error.message}; nothing changed, fix the file and save it again`,
      );
      this.#broken = true;
      return "invalid";
    }
    const wasBroken = this.#broken;
    this.#broken = false;
    if (text === this.#lastText) {
      if (wasBroken) {
        log.info(
          `reload (${reason}): ${this.#path} is valid again; unchanged since the last apply`,
        );
      } else if (reason === "SIGHUP") {
        log.info(`reload (${reason}): ${this.#path} unchanged`);
      } else {
        log.debug(`reload (${reason}): ${this.#path} unchanged`);
      }
      return "unchanged";
    }
    log.info(`reload (${reason}): applying ${this.#path}`);
    await this.#apply(entries);
    this.#lastText = text;
    return "applied";
  }
}
