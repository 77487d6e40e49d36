/**
 * Command-line plumbing shared by the subcommands: `node:util` `parseArgs`
 * with its errors turned into {@link UsageError}s, config errors printed,
 * and the proxy environment read for `env` routes.
 *
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";
import { parseProxyUrlText } from "../config/proxy_url.ts";
import { type ProxyEnvironment, readProxyEnvironment } from "../route/env.ts";
import { describeProxy } from "../route/types.ts";
import { type ConfigLoadError, errorMessage, UsageError } from "../errors.ts";
import { nearest } from "../suggest.ts";

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
    throw new UsageError(usageMessage(errorMessage(error), options));
  }
}

// parseArgs's messages in the tool's words: an unknown option with the
// nearest valid one, a missing or unwanted value in one line.
function usageMessage(message: string, options: Options): string {
  const unknown = /^Unknown option '(-{1,2})([^']+)'/.exec(message);
  if (unknown !== null) {
    const [, dashes, name] = unknown;
    const guess = nearest(name, Object.keys(options));
    return `unknown option "${dashes}${name}"${
      guess === undefined ? "" : `: did you mean --${guess}?`
    }`;
  }
  const missing = /^Option '(?:-\w, )?--([\w-]+) <value>' argument missing/
    .exec(message);
  if (missing !== null) return `--${missing[1]} needs a value`;
  const dashed = /^Option '--([\w-]+)' argument is ambiguous/.exec(message);
  if (dashed !== null) {
    return `--${
      dashed[1]
    } needs a value; for one that starts with "-", write --${dashed[1]}=-…`;
  }
  const unwanted = /^Option '(?:-\w, )?--([\w-]+)' does not take an argument/
    .exec(message);
  if (unwanted !== null) return `--${unwanted[1]} takes no value`;
  return message;
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

/**
 * Reads HTTPS_PROXY, ALL_PROXY and NO_PROXY once, for `env` routes; a bad
 * value is reported and ignored.
 *
 * @param report Where to say what was found or what is wrong.
 * @returns The proxy environment.
 */
export function proxyEnvironment(
  report: (level: "info" | "error", message: string) => void,
): ProxyEnvironment {
  try {
    const environment = readProxyEnvironment(
      (name) => Deno.env.get(name),
      parseProxyUrlText,
    );
    if (environment.proxy) {
      const noProxy = environment.noProxy.length
        ? `, NO_PROXY=${environment.noProxy.join(",")}`
        : "";
      report(
        "info",
        `proxy environment for "env" routes: ${environment.source}=${
          describeProxy(environment.proxy)
        }${noProxy}`,
      );
    }
    return environment;
  } catch (error) {
    report(
      "error",
      `${errorMessage(error)}; "env" routes connect directly`,
    );
    return { noProxy: [] };
  }
}
