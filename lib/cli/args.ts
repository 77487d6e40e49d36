/**
 * Command-line parsing shared by the subcommands: `node:util` `parseArgs`
 * with its errors turned into {@link UsageError}s, and option values
 * checked.
 *
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";
import {
  DEFAULT_TUNNEL_OPTIONS,
  type TunnelOptions,
} from "../config/options.ts";
import {
  parseListenAddress,
  parseProxyUrlText,
  parseRouteArguments,
} from "../config/parse.ts";
import type { HostPort } from "../net/address.ts";
import { parseDuration } from "../time/duration.ts";
import { type ProxyEnvironment, readProxyEnvironment } from "../route/env.ts";
import { describeProxy, type Route } from "../route/types.ts";
import { type ConfigLoadError, errorMessage, UsageError } from "../errors.ts";

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
    throw new UsageError(errorMessage(error));
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
 * Reads a size option such as `--log-max-size 10M` (K, M, G: powers of 1024).
 *
 * @param name The option's name, for the message.
 * @param value The value given, if any.
 * @returns Bytes, or `undefined` when the option was not given.
 * @throws {UsageError} for a value that is not a size.
 */
export function sizeOption(
  name: string,
  value: string | undefined,
): number | undefined {
  if (value === undefined) return undefined;
  const match = /^(\d+)([KMG]?)i?B?$/i.exec(value);
  if (!match || Number(match[1]) === 0) {
    throw new UsageError(
      `--${name} must be a size such as 512K or 10M; got "${value}"`,
    );
  }
  const unit = {
    "": 1,
    K: 1024,
    M: 1024 ** 2,
    G: 1024 ** 3,
  }[match[2].toUpperCase()]!;
  return Number(match[1]) * unit;
}

/**
 * Reads a listening address option: `9191` (loopback), `host:port`, `[v6]:port`.
 *
 * @param value The value given.
 * @returns The address.
 * @throws {UsageError} for a value that is not an address.
 */
export function listenAddress(value: string): HostPort {
  try {
    return parseListenAddress(value);
  } catch (error) {
    throw new UsageError(`--status: ${errorMessage(error)}`);
  }
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

/** The flags that set tunnel options, shared by `run`, `stdio` and `probe`. */
export const TUNNEL_FLAGS = {
  "connect-timeout": { type: "string" },
  "handshake-timeout": { type: "string" },
  "idle-timeout": { type: "string" },
  "linger-timeout": { type: "string" },
  "ca-file": { type: "string" },
  proxy: { type: "string", multiple: true },
} as const;

/**
 * Tunnel options from the command line, defaults filled in; reads `--ca-file`.
 *
 * @param values Parsed flags, {@link TUNNEL_FLAGS} among them.
 * @returns The options.
 * @throws {UsageError} for a bad duration or an unreadable CA file.
 */
export async function tunnelOptionsFrom(
  values: Record<string, unknown>,
): Promise<TunnelOptions> {
  const duration = (name: string) =>
    durationOption(name, values[name] as string | undefined);
  const caFile = values["ca-file"] as string | undefined;
  let caCerts: string[] | undefined;
  if (caFile !== undefined) {
    try {
      caCerts = [await Deno.readTextFile(caFile)];
    } catch (error) {
      throw new UsageError(`--ca-file ${caFile}: ${errorMessage(error)}`);
    }
  }
  return {
    ...DEFAULT_TUNNEL_OPTIONS,
    connectTimeoutMs: duration("connect-timeout") ??
      DEFAULT_TUNNEL_OPTIONS.connectTimeoutMs,
    handshakeTimeoutMs: duration("handshake-timeout") ??
      DEFAULT_TUNNEL_OPTIONS.handshakeTimeoutMs,
    idleTimeoutMs: duration("idle-timeout"),
    lingerTimeoutMs: duration("linger-timeout") ??
      DEFAULT_TUNNEL_OPTIONS.lingerTimeoutMs,
    drainTimeoutMs: duration("drain-timeout"),
    caCerts,
  };
}

/**
 * The route the `--proxy` flags describe; none means direct.
 *
 * @param values The `--proxy` values.
 * @returns The route.
 * @throws {UsageError} for a bad proxy URL.
 */
export function routeFrom(values: readonly string[] | undefined): Route {
  try {
    return parseRouteArguments(values ?? []);
  } catch (error) {
    throw new UsageError(`--proxy: ${errorMessage(error)}`);
  }
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
