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
} from "../net/address.ts";
import { ConfigError, errorMessage } from "../errors.ts";
import {
  type Proxy,
  PROXY_SCHEMES,
  type ProxyScheme,
  type Route,
} from "../route/types.ts";
import {
  parseTunnelOption,
  TUNNEL_OPTION_NAMES,
  type TunnelOptions,
} from "./options.ts";

/** One tunnel: where to listen and where to send what arrives there. */
export interface TunnelEntry {
  /** Address and port to listen on. */
  readonly source: HostPort;
  /** Host and port to reach. */
  readonly destination: HostPort;
  /** Direct, or through an HTTP proxy. */
  readonly route: Route;
  /** Settings this entry overrides; the rest come from the command line. */
  readonly options: Partial<TunnelOptions>;
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

/**
 * What a config may draw on besides its text: environment variables for
 * `${NAME}`, and credential files for `credentials=FILE`. Injected so that
 * parsing stays free of I/O in tests.
 */
export interface ConfigContext {
  /** The value of an environment variable, or `undefined` when unset. */
  env(name: string): string | undefined;
  /**
   * The contents of a file the config names.
   * @param kind What the file holds: a secret, or public certificates.
   * @throws {Error} with a message saying why it cannot be read.
   */
  readFile(path: string, kind: "credentials" | "certificates"): string;
}

/** A context with no environment and no files, for plain config text. */
export const EMPTY_CONTEXT: ConfigContext = {
  env: () => undefined,
  readFile: () => {
    throw new Error("files are not available here");
  },
};

const PROXY_OPTION_NAMES = ["auth", "credentials"];

/** The per-entry options, `key=value` after the route. */
export const OPTION_NAMES: readonly string[] = [
  ...TUNNEL_OPTION_NAMES,
  "ca-file",
  ...PROXY_OPTION_NAMES,
];

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
 * Options follow as `key=value`: `auth=basic` sends Basic credentials
 * before the proxy asks, `credentials=FILE` reads `user:password` from a
 * file. `${NAME}` anywhere is replaced by the environment variable NAME.
 *
 * @param text The file's contents.
 * @param file The file's path, used in error locations.
 * @param context Environment variables and credential files.
 * @returns The entries and the errors, each error at `file:line:column`.
 *
 * @example
 * ```ts
 * const { entries } = parseConfig("2222 ssh.example.com 22 proxy 3128\n", "t.conf");
 * entries[0].source; // { host: "127.0.0.1", port: 2222 }
 * ```
 */
export function parseConfig(
  text: string,
  file: string,
  context: ConfigContext = EMPTY_CONTEXT,
): ParsedConfig {
  const entries: TunnelEntry[] = [];
  const errors: ConfigError[] = [];
  const lines = text.replace(/^\uFEFF/, "").split("\n");
  for (const [index, raw] of lines.entries()) {
    const lineNumber = index + 1;
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    try {
      const tokens = tokenize(line);
      if (tokens.length === 0) continue;
      const entry = parseEntry(tokens, lineNumber, context);
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

const FIELDS =
  "<source> <destination host> <destination port> [<proxy host> <proxy port> | <proxy URL>[,<alternative>] ... | direct | env] [key=value ...]";

function parseEntry(
  allTokens: Token[],
  line: number,
  context: ConfigContext,
): TunnelEntry {
  const firstOption = allTokens.findIndex((token, index) =>
    index >= 3 && /^[A-Za-z][A-Za-z0-9-]*=/.test(token.text)
  );
  const tokens = firstOption < 0 ? allTokens : allTokens.slice(0, firstOption);
  const options = firstOption < 0 ? [] : allTokens.slice(firstOption);
  if (tokens.length < 3) {
    throw new EntryError(
      tokens[0].column,
      `expected ${FIELDS}, found ${tokens.length} field${
        tokens.length === 1 ? "" : "s"
      }`,
    );
  }
  const [source, host, port] = tokens.slice(0, 3).map((token) =>
    expandToken(token, context)
  );
  let route = parseRoute(tokens.slice(3), context);
  let settings: Partial<TunnelOptions> = {};
  for (const option of options) {
    const equals = option.text.indexOf("=");
    const key = option.text.slice(0, equals);
    const value = expandToken({
      text: option.text.slice(equals + 1),
      column: option.column + equals + 1,
    }, context);
    if (TUNNEL_OPTION_NAMES.includes(key)) {
      try {
        settings = { ...settings, ...parseTunnelOption(key, value.text) };
      } catch (error) {
        throw new EntryError(value.column, errorMessage(error));
      }
    } else if (key === "ca-file") {
      settings = {
        ...settings,
        caCerts: [readFileOption(value, context, "certificates")],
      };
    } else if (PROXY_OPTION_NAMES.includes(key)) {
      route = applyProxyOption(option, key, value, route, context);
    } else {
      throw new EntryError(
        option.column,
        `unknown option "${key}": the options are ${OPTION_NAMES.join(", ")}`,
      );
    }
  }
  return {
    source: parseSource(source),
    destination: {
      host: parseHost(host, "destination host"),
      port: parsePortToken(port, "destination port"),
    },
    route,
    options: settings,
    line,
  };
}

function parseRoute(tokens: Token[], context: ConfigContext): Route {
  if (tokens.length === 0) return { kind: "direct" };
  const [first] = tokens;
  if (first.text === "direct" || first.text === "env") {
    if (tokens.length > 1) {
      throw new EntryError(
        tokens[1].column,
        `"${first.text}" is the whole route: remove what follows it, or write options as key=value`,
      );
    }
    return { kind: first.text };
  }
  if (first.text.includes("://")) {
    const hops = tokens.map((token) => {
      if (!token.text.includes("://")) {
        throw new EntryError(
          token.column,
          /^\d+$/.test(token.text)
            ? "a proxy URL already has its port: remove the field after it"
            : "a chain lists proxy URLs only: write every hop as scheme://host:port",
        );
      }
      let column = token.column;
      return token.text.split(",").map((text) => {
        const proxy = parseProxyUrl({ text, column }, context);
        column += text.length + 1;
        return proxy;
      });
    });
    return { kind: "chain", hops };
  }
  // The original form: proxy host and proxy port as two fields.
  if (tokens.length === 1) {
    throw new EntryError(
      first.column,
      "expected a proxy URL (http://host:port) or the proxy host followed by its port",
    );
  }
  if (tokens.length > 2) {
    throw new EntryError(
      tokens[2].column,
      `expected ${FIELDS}, found ${tokens.length + 3} fields`,
    );
  }
  if (tokens[1].text.includes("://")) {
    throw new EntryError(
      tokens[1].column,
      "write the proxy either as host and port or as a URL, not both",
    );
  }
  const [proxyHost, proxyPort] = tokens.map((token) =>
    expandToken(token, context)
  );
  return {
    kind: "chain",
    hops: [[{
      scheme: "http",
      host: parseHost(proxyHost, "proxy host"),
      port: parsePortToken(proxyPort, "proxy port"),
    }]],
  };
}

function readFileOption(
  value: Token,
  context: ConfigContext,
  kind: "credentials" | "certificates",
): string {
  try {
    return context.readFile(value.text, kind);
  } catch (error) {
    const what = kind === "credentials" ? "credentials file" : "CA file";
    throw new EntryError(
      value.column,
      `cannot read ${what} ${value.text}: ${errorMessage(error)}`,
    );
  }
}

// Credentials and auth=basic apply to every proxy of the route that does
// not say otherwise in its URL.
function applyProxyOption(
  option: Token,
  key: string,
  valueToken: Token,
  route: Route,
  context: ConfigContext,
): Route {
  if (route.kind !== "chain") {
    throw new EntryError(
      option.column,
      `option ${key} applies to a proxy, and this entry has none`,
    );
  }
  const value = valueToken.text;
  let change: (proxy: Proxy) => Proxy;
  if (key === "auth") {
    if (value !== "basic") {
      throw new EntryError(
        valueToken.column,
        `auth=${value} is not an option: write auth=basic to send Basic credentials before the proxy asks`,
      );
    }
    change = (proxy) =>
      proxy.scheme.startsWith("http")
        ? { ...proxy, preemptiveBasic: true }
        : proxy;
  } else {
    const contents = readFileOption(valueToken, context, "credentials");
    const first = contents.split(/\r?\n/).find((line) => line.trim() !== "") ??
      "";
    const colon = first.indexOf(":");
    if (colon < 0) {
      throw new EntryError(
        valueToken.column,
        `credentials file ${value} must hold one line user:password`,
      );
    }
    change = (proxy) =>
      proxy.username !== undefined ? proxy : {
        ...proxy,
        username: first.slice(0, colon),
        password: first.slice(colon + 1),
      };
  }
  return { kind: "chain", hops: route.hops.map((hop) => hop.map(change)) };
}

const REFERENCE = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/**
 * Replaces every `${NAME}` in a token with the environment variable's value.
 * With `decode`, the text around references is percent-decoded (a URL's
 * user name or password) while the values are taken as they are.
 */
function expandToken(
  token: Token,
  context: ConfigContext,
  decode = false,
): Token {
  let text = "";
  let last = 0;
  for (const match of token.text.matchAll(REFERENCE)) {
    text += literal(token.text.slice(last, match.index), decode);
    text += variable(match[1], token.column + match.index, context);
    last = match.index + match[0].length;
  }
  text += literal(token.text.slice(last), decode);
  return { text, column: token.column };
}

function literal(text: string, decode: boolean): string {
  return decode ? decodeURIComponent(text) : text;
}

function variable(
  name: string,
  column: number,
  context: ConfigContext,
): string {
  let value: string | undefined;
  try {
    value = context.env(name);
  } catch (error) {
    throw new EntryError(
      column,
      `cannot read environment variable ${name}: ${errorMessage(error)}`,
    );
  }
  if (value === undefined) {
    throw new EntryError(
      column,
      `environment variable ${name} is not set: set it, or write the value here`,
    );
  }
  return value;
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

/** Runs a parser on command-line text, turning located errors into plain ones. */
function fromCommandLine<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof EntryError) throw new Error(error.message);
    throw error;
  }
}

/**
 * Parses `--proxy` values into a route: each value one hop (commas separate
 * alternatives), or the single value `direct` or `env`.
 *
 * @param values The `--proxy` values in order; none means direct.
 * @returns The route.
 * @throws {Error} saying what is wrong with a value.
 */
export function parseRouteArguments(values: readonly string[]): Route {
  return fromCommandLine(() =>
    parseRoute(values.map((text) => ({ text, column: 1 })), EMPTY_CONTEXT)
  );
}

/**
 * Parses a destination given as host and port, e.g. on the command line.
 *
 * @param host A host name or IP address.
 * @param port A port number.
 * @returns The destination.
 * @throws {Error} saying what is wrong.
 */
export function parseDestination(host: string, port: string): HostPort {
  return fromCommandLine(() => ({
    host: parseHost({ text: host, column: 1 }, "destination host"),
    port: parsePortToken({ text: port, column: 1 }, "destination port"),
  }));
}

/**
 * Parses an `ssh -L`-style forward, `[BIND:]PORT:HOST:HOSTPORT`, with IPv6
 * addresses in brackets.
 *
 * @param spec The forward as written.
 * @returns Where to listen and where to connect.
 * @throws {Error} saying what is wrong.
 */
export function parseForward(
  spec: string,
): { source: HostPort; destination: HostPort } {
  const parts = spec.match(/\[[^\]]*\]|[^:]+/g) ?? [];
  if ((parts.length !== 3 && parts.length !== 4) || parts.join(":") !== spec) {
    throw new Error(
      `cannot parse -L ${spec}: write [BIND:]PORT:HOST:HOSTPORT, e.g. 2222:ssh.example.com:22 or 0.0.0.0:2222:[2001:db8::1]:22`,
    );
  }
  const [bind, port] = parts.length === 4
    ? [parts[0], parts[1]]
    : [undefined, parts[0]];
  const [host, hostPort] = parts.slice(-2);
  return fromCommandLine(() => ({
    source: parseSource({
      text: bind === undefined ? port : `${bind}:${port}`,
      column: 1,
    }),
    destination: {
      host: parseHost({ text: host, column: 1 }, "destination host"),
      port: parsePortToken({ text: hostPort, column: 1 }, "destination port"),
    },
  }));
}

/**
 * Parses a listening address as a config source is written: `9191`
 * (loopback), `host:port` or `[v6]:port`.
 *
 * @param text The address.
 * @returns The address.
 * @throws {Error} saying what is wrong.
 */
export function parseListenAddress(text: string): HostPort {
  return fromCommandLine(() => parseSource({ text, column: 1 }));
}

/**
 * Parses a proxy URL outside a config file, e.g. from `HTTPS_PROXY`.
 *
 * @param text `scheme://[user:pass@]host:port`.
 * @returns The proxy.
 * @throws {Error} saying what is wrong (never quoting the password).
 */
export function parseProxyUrlText(text: string): Proxy {
  return fromCommandLine(() =>
    parseProxyUrl({ text, column: 1 }, EMPTY_CONTEXT)
  );
}

// The whole token is never quoted in a message: it may hold a password.
function parseProxyUrl(token: Token, context: ConfigContext): Proxy {
  const { text, column } = token;
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(text);
  if (!scheme) {
    throw new EntryError(
      column,
      "expected a proxy URL (http://host:port) or the proxy host followed by its port",
    );
  }
  const schemeName = scheme[1].toLowerCase() as ProxyScheme;
  if (!PROXY_SCHEMES.includes(schemeName)) {
    throw new EntryError(
      column,
      `unsupported proxy scheme "${scheme[1]}": use ${
        PROXY_SCHEMES.map((s) => `${s}://`).join(", ")
      }`,
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
  const host = parseHost(
    expandToken({ text: match[1], column: hostColumn }, context),
    "proxy host",
  );
  const port = parsePortToken(
    expandToken(
      { text: match[2], column: hostColumn + match[1].length + 1 },
      context,
    ),
    "proxy port",
  );
  if (userinfo === undefined) return { scheme: schemeName, host, port };
  const colon = userinfo.indexOf(":");
  const userColumn = column + scheme[0].length;
  const part = (text: string, at: number) => {
    try {
      return expandToken({ text, column: at }, context, true).text;
    } catch (error) {
      if (error instanceof EntryError) throw error;
      throw new EntryError(
        userColumn,
        "cannot decode the user name or password in the proxy URL: write special characters percent-encoded (%40 for @, %3A for :, %25 for %)",
      );
    }
  };
  return {
    scheme: schemeName,
    host,
    port,
    username: part(
      colon >= 0 ? userinfo.slice(0, colon) : userinfo,
      userColumn,
    ),
    password: colon >= 0
      ? part(userinfo.slice(colon + 1), userColumn + colon + 1)
      : undefined,
  };
}

const WILDCARDS = new Set(["0.0.0.0", "::"]);

// Binding a port on the wildcard address takes it on every address.
function sourcesClash(a: TunnelEntry, b: TunnelEntry): boolean {
  if (a.source.port !== b.source.port) return false;
  return a.source.host === b.source.host || WILDCARDS.has(a.source.host) ||
    WILDCARDS.has(b.source.host);
}
