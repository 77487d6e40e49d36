/**
 * Command-line parsing shared by the subcommands: `node:util` `parseArgs`
 * with its errors turned into {@link UsageError}s, and option values
 * checked.
 *
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";
import { parseDuration } from "../duration.ts";
import { type ConfigLoadError, UsageError } from "../errors.ts";

type Options = NonNullable<ParseArgsConfig["options"]>;

/**
 * Parses `args` against `options`, allowing positionals.
 *
 * @param args The arguments after the subcommand.
 * @param options The options the subcommand takes.
 * @returns The option values and the positionals.
 * @throws {UsageError} for an unknown option or a missing value.
 */
export function parseCommandLine<T extends Options>(
  args: string[],
  options: T,
): ReturnType<typeof parseArgs<{ options: T; allowPositionals: true }>> {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/**
 * Reads a duration option: `10` (seconds), `500ms`, `2m`, `1h`.
 *
 * @param name The option's name, for the message.
 * @param value The value given, if any.
 * @returns Milliseconds, or `undefined` when the option was not given.
 * @throws {UsageError} when the value is not a duration.
 */
export function durationOption(
  name: string,
  value: string | undefined,
): number | undefined {
  if (value === undefined) return undefined;
  const ms = parseDuration(value);
  if (ms === undefined || ms === 0) {
    throw new UsageError(
      `--${name} must be a positive duration such as 10, 500ms, 2m or 1h; got "${value}"`,
    );
  }
  return ms;
}

/**
 * Reads a whole-number option such as `--max-connections 500`.
 *
 * @param name The option's name, for the message.
 * @param value The value given, if any.
 * @returns The number, or `undefined` when the option was not given.
 * @throws {UsageError} unless the value is a whole number from 1.
 */
export function countOption(
  name: string,
  value: string | undefined,
): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[1-9]\d{0,6}$/.test(value)) {
    throw new UsageError(
      `--${name} must be a whole number from 1; got "${value}"`,
    );
  }
  return Number(value);
}

/**
 * Prints a config that cannot be used to stderr: one `file:line:col: message`
 * line per error, or the reason the file could not be read.
 *
 * @param error The failed load.
 */
export function reportConfigError(error: ConfigLoadError): void {
  if (error.errors.length === 0) console.error(error.message);
  for (const each of error.errors) console.error(each.message);
}
