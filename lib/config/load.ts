/**
 * Reads a config file and parses it.
 *
 * @module
 */

import { ConfigLoadError } from "../errors.ts";
import { parseConfig, type TunnelEntry } from "./parse.ts";

/**
 * Reads and parses the config file at `path`.
 *
 * @param path The file to read.
 * @returns Its entries.
 * @throws {ConfigLoadError} when the file cannot be read or has errors; its
 *   `errors` hold one located error per problem.
 */
export async function loadConfig(path: string): Promise<TunnelEntry[]> {
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
  return entries;
}
