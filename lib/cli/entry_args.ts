/**
 * Entry syntax on the command line: `-L` forwards, `--proxy` values, a
 * destination as HOST PORT, and `--status` addresses. The config's readers
 * do the parsing; this is the one place their located errors become
 * {@link UsageError}s.
 *
 * @module
 */

import { parseSource } from "../config/entry.ts";
import { NO_ENVIRONMENT } from "../config/expand.ts";
import {
  EntryError,
  parseHostField,
  parsePortField,
  type Token,
} from "../config/field.ts";
import { parseRoute } from "../config/grammar.ts";
import { UsageError } from "../errors.ts";
import type { HostPort } from "../net/address.ts";
import type { Route } from "../route/types.ts";

/**
 * Parses `--proxy` values into a route: each value one hop (commas separate
 * alternatives), or the single value `direct` or `env`. No `${NAME}` is
 * expanded.
 *
 * @param values The `--proxy` values in order; none means direct.
 * @returns The route.
 * @throws {UsageError} saying what is wrong with a value.
 */
export function parseRouteArguments(
  values: readonly string[] | undefined,
): Route {
  return fromCommandLine(
    () => parseRoute((values ?? []).map(field), NO_ENVIRONMENT),
    "--proxy: ",
  );
}

/**
 * Parses a destination given as host and port.
 *
 * @param host A host name or IP address.
 * @param port A port number.
 * @returns The destination.
 * @throws {UsageError} saying what is wrong.
 */
export function parseDestination(host: string, port: string): HostPort {
  return fromCommandLine(() => ({
    host: parseHostField(field(host), "destination host"),
    port: parsePortField(field(port), "destination port"),
  }));
}

/**
 * Parses an `ssh -L`-style forward, `[BIND:]PORT:HOST:HOSTPORT`, with IPv6
 * addresses in brackets.
 *
 * @param spec The forward as written.
 * @returns Where to listen and where to connect.
 * @throws {UsageError} saying what is wrong.
 */
export function parseForward(
  spec: string,
): { source: HostPort; destination: HostPort } {
  const parts = spec.match(/\[[^\]]*\]|[^:]+/g) ?? [];
  if ((parts.length !== 3 && parts.length !== 4) || parts.join(":") !== spec) {
    throw new UsageError(
      `cannot parse -L ${spec}: write [BIND:]PORT:HOST:HOSTPORT, e.g. 2222:ssh.example.com:22 or 0.0.0.0:2222:[2001:db8::1]:22`,
    );
  }
  const [bind, port] = parts.length === 4
    ? [parts[0], parts[1]]
    : [undefined, parts[0]];
  const [host, hostPort] = parts.slice(-2);
  return fromCommandLine(() => ({
    source: parseSource(field(bind === undefined ? port : `${bind}:${port}`)),
    destination: {
      host: parseHostField(field(host), "destination host"),
      port: parsePortField(field(hostPort), "destination port"),
    },
  }));
}

/**
 * Parses the address of the status endpoint as a config source is written:
 * `9191` (loopback), `host:port` or `[v6]:port`.
 *
 * @param text The address.
 * @param flag The flag it was given with, for the message.
 * @returns The address.
 * @throws {UsageError} saying what is wrong, as a problem of `flag`.
 */
export function parseStatusAddress(
  text: string,
  flag = "--status",
): HostPort {
  return fromCommandLine(() => parseSource(field(text)), `${flag}: `);
}

function field(text: string): Token {
  return { text, column: 1 };
}

// A column means nothing in a single argument, so only the message is kept.
function fromCommandLine<T>(parse: () => T, prefix = ""): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof EntryError) {
      throw new UsageError(`${prefix}${error.message}`);
    }
    throw error;
  }
}
