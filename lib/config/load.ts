/**
 * Reads a config file and parses it.
 *
 * @module
 */

import { ConfigLoadError } from "../errors.ts";
import { parseConfig, type TunnelEntry } from "./parse.ts";

/** A config file's text and entries. */
export interface LoadedConfig {
  /** The file's contents as read. */
  readonly text: string;
  /** Its entries, in file order. */
  readonly entries: TunnelEntry[];
}

/**
 * Reads and parses the config file at `path`.
 *
 * @param path The file to read.
 * @returns Its text and entries.
 * @throws {ConfigLoadError} when the file cannot be read or has errors; its
 *   `errors` hold one located error per problem.
 */
export async function loadConfig(path: string): Promise<LoadedConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new ConfigLoadError(
      `Cannot read config file ${path}: ${(error as Error).message}`,
      [],
      { cause: error },
    );
  }
  const { entries, errors } = parseConfig(text, path);
  if (errors.length > 0) {
    throw new ConfigLoadError(
      `${path} has ${errors.length} error${errors.length === 1 ? "" : "s"}`,
      errors,
    );
  }
  return { text, entries };
}
