/**
 * The config file format: text in, tunnel entries or located errors out.
 * Pure: no I/O.
 *
 * ```
 * # <source> <destination host> <destination port> [<proxy host> <proxy port>]
 * 2222 ssh.example.com 22 proxy.corp.example 3128
 * 5432 db.internal 5432
 * 0.0.0.0:8080 web.internal 80 http://user:secret@proxy.corp.example:3128
 * ```
 *
 * @module
 */

import {
  formatHostPort,
  type HostPort,
  isHostName,
  isIPv6,
  parsePort,
} from "../address.ts";
import { ConfigError } from "../errors.ts";
import type { HttpProxy, Route } from "../route/types.ts";

/** One tunnel: where to listen and where to send what arrives there. */
export interface TunnelEntry {
  /** Address and port to listen on. */
  readonly source: HostPort;
  /** Host and port to reach. */
  readonly destination: HostPort;
  /** Direct, or through an HTTP proxy. */
  readonly route: Route;
  /** 1-based line of the entry in its file. */
  readonly line: number;
}

/** What {@link parseConfig} found. */
export interface ParsedConfig {
  /** Valid entries, in file order. */
  readonly entries: TunnelEntry[];
  /** Every error, in file order; the config is usable only when empty. */
  readonly errors: ConfigError[];
}

/** The address a bare source port binds: loopback only, never the network. */
export const DEFAULT_BIND_HOST = "127.0.0.1";

interface Token {
  readonly text: string;
  readonly column: number;
}

class EntryError extends Error {
  constructor(readonly column: number, message: string) {
    super(message);
  }
}

/**
 * Parses a config file's text.
 *
 * Each non-blank line that does not start with `#` is one entry:
 * `<source> <destination host> <destination port> [<proxy>]`, where the
 * source is `port` (binds 127.0.0.1), `host:port` or `[v6]:port`, and the
 * proxy is `host port` or `http://[user:pass@]host:port`. A token starting
 * with `#` starts a comment.
 *
 * @param text The file's contents.
 * @param file The file's path, used in error locations.
 * @returns The entries and the errors, each error at `file:line:column`.
 *
 * @example
 * ```ts
 * const { entries } = parseConfig("2222 ssh.example.com 22 proxy 3128\n", "t.conf");
 * entries[0].source; // { host: "127.0.0.1", port: 2222 }
 * ```
 */
export function parseConfig(text: string, file: string): ParsedConfig {
  const entries: TunnelEntry[] = [];
  const errors: ConfigError[] = [];
  const lines = text.replace(/^\uFEFF/, "").split("\n");
  for (const [index, raw] of lines.entries()) {
    const lineNumber = index + 1;
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    try {
      const tokens = tokenize(line);
      if (tokens.length === 0) continue;
      const entry = parseEntry(tokens, lineNumber);
      const clash = entries.find((other) => sourcesClash(other, entry));
      if (clash) {
        throw new EntryError(
          tokens[0].column,
          `source ${
            formatHostPort(entry.source)
          } is already used by line ${clash.line}` +
            `: give each entry its own port`,
        );
      }
      entries.push(entry);
    } catch (error) {
      if (!(error instanceof EntryError)) throw error;
      errors.push(
        new ConfigError(file, lineNumber, error.column, error.message),
      );
    }
  }
  return { entries, errors };
}

function tokenize(line: string): Token[] {
  const tokens: Token[] = [];
  for (const match of line.matchAll(/[^ \t]+/g)) {
    if (match[0].startsWith("#")) break;
    // deno-lint-ignore no-control-regex -- control characters are what we reject
    const bad = match[0].search(/[\x00-\x1f\x7f]/);
    if (bad >= 0) {
      throw new EntryError(
        match.index + bad + 1,
        "control character in the entry: use spaces or tabs between fields",
      );
    }
    tokens.push({ text: match[0], column: match.index + 1 });
  }
  return tokens;
}

function parseEntry(tokens: Token[], line: number): TunnelEntry {
  if (tokens.length !== 3 && tokens.length !== 4 && tokens.length !== 5) {
    throw new EntryError(
      tokens.length > 5 ? tokens[5].column : tokens[0].column,
      `expected <source> <destination host> <destination port> [<proxy host> <proxy port> | <proxy URL>], found ${tokens.length} field${
        tokens.length === 1 ? "" : "s"
      }`,
    );
  }
  const source = parseSource(tokens[0]);
  const destination = {
    host: parseHost(tokens[1], "destination host"),
    port: parsePortToken(tokens[2], "destination port"),
  };
  let route: Route = { kind: "direct" };
  if (tokens.length === 4) {
    route = { kind: "http", proxy: parseProxyUrl(tokens[3]) };
  } else if (tokens.length === 5) {
    if (tokens[3].text.includes("://")) {
      throw new EntryError(
        tokens[4].column,
        "a proxy URL already has its port: remove the field after it",
      );
    }
    route = {
      kind: "http",
      proxy: {
        host: parseHost(tokens[3], "proxy host"),
        port: parsePortToken(tokens[4], "proxy port"),
      },
    };
  }
  return { source, destination, route, line };
}

function parseSource(token: Token): HostPort {
  const { text, column } = token;
  if (!/[:.]/.test(text)) {
    return {
      host: DEFAULT_BIND_HOST,
      port: parsePortToken(token, "source port"),
    };
  }
  const match = /^(\[[^\]]*\]|[^:]*):([^:]*)$/.exec(text);
  if (!match) {
    throw new EntryError(
      column,
      `cannot parse source "${text}": write a port (2222), host:port (0.0.0.0:2222) or [v6]:port ([::1]:2222)`,
    );
  }
  const portColumn = column + match[1].length + 1;
  return {
    host: parseHost({ text: match[1], column }, "source address"),
    port: parsePortToken({ text: match[2], column: portColumn }, "source port"),
  };
}

function parseHost(token: Token, what: string): string {
  const { text, column } = token;
  const bracketed = /^\[(.*)\]$/.exec(text);
  const host = bracketed ? bracketed[1] : text;
  if (bracketed || host.includes(":")) {
    if (isIPv6(host)) return host.toLowerCase();
    throw new EntryError(
      column,
      `invalid ${what} "${text}": not an IPv6 address`,
    );
  }
  if (isHostName(host)) return host;
  throw new EntryError(
    column,
    `invalid ${what} "${text}": use a host name (letters, digits, '-', '.') or an IP address`,
  );
}

function parsePortToken(token: Token, what: string): number {
  const port = parsePort(token.text);
  if (port === undefined) {
    throw new EntryError(
      token.column,
      `invalid ${what} "${token.text}": use a number from 1 to 65535`,
    );
  }
  return port;
}

// The whole token is never quoted in a message: it may hold a password.
function parseProxyUrl(token: Token): HttpProxy {
  const { text, column } = token;
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(text);
  if (!scheme) {
    throw new EntryError(
      column,
      "expected a proxy URL (http://host:port) or the proxy host followed by its port",
    );
  }
  if (scheme[1].toLowerCase() !== "http") {
    throw new EntryError(
      column,
      `unsupported proxy scheme "${scheme[1]}": use http://host:port`,
    );
  }
  const rest = text.slice(scheme[0].length).replace(/\/$/, "");
  const at = rest.lastIndexOf("@");
  const userinfo = at >= 0 ? rest.slice(0, at) : undefined;
  const hostPort = rest.slice(at + 1);
  const hostColumn = column + scheme[0].length + at + 1;
  const match = /^(\[[^\]]*\]|[^:/]*)(?::([^:/]*))?$/.exec(hostPort);
  if (!match || match[2] === undefined) {
    throw new EntryError(
      hostColumn,
      "the proxy URL needs a host and a port and nothing after them: http://host:port",
    );
  }
  const host = parseHost({ text: match[1], column: hostColumn }, "proxy host");
  const port = parsePortToken(
    { text: match[2], column: hostColumn + match[1].length + 1 },
    "proxy port",
  );
  if (userinfo === undefined) return { host, port };
  const colon = userinfo.indexOf(":");
  try {
    return {
      host,
      port,
      username: decodeURIComponent(
        colon >= 0 ? userinfo.slice(0, colon) : userinfo,
      ),
      password: colon >= 0
        ? decodeURIComponent(userinfo.slice(colon + 1))
        : undefined,
    };
  } catch {
    throw new EntryError(
      column + scheme[0].length,
      "cannot decode the user name or password in the proxy URL: write special characters percent-encoded (%40 for @, %3A for :, %25 for %)",
    );
  }
}

const WILDCARDS = new Set(["0.0.0.0", "::"]);

// Binding a port on the wildcard address takes it on every address.
function sourcesClash(a: TunnelEntry, b: TunnelEntry): boolean {
  if (a.source.port !== b.source.port) return false;
  return a.source.host === b.source.host || WILDCARDS.has(a.source.host) ||
    WILDCARDS.has(b.source.host);
}
