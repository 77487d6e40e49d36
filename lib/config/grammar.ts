/**
 * The config file format: text in, tunnel entries or `file:line:column`
 * errors out. Pure: variables and files come from a {@link ConfigContext}.
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

import { formatHostPort, ipBytes, isLoopback } from "../net/address.ts";
import { keyPairProblem } from "../net/key_pair.ts";
import { nearest } from "../suggest.ts";
import { ConfigError, errorMessage } from "../errors.ts";
import { parseDuration } from "../time/duration.ts";
import {
  AUTH_SCHEMES,
  type PacRoute,
  type Proxy,
  type Route,
} from "../route/types.ts";
import {
  type LocalProxyEntry,
  parseSource,
  SourceIndex,
  type TunnelEntry,
} from "./entry.ts";
import { type Environment, expandVariables, NO_ENVIRONMENT } from "./expand.ts";
import {
  EntryError,
  parseHostField,
  parsePortField,
  type Token,
} from "./field.ts";
import {
  FILE_KIND_WORDS,
  type FileKind,
  readTunnelOption,
  TUNNEL_OPTION_ROWS,
  type TunnelOptions,
} from "./options.ts";
import {
  checkCredential,
  EXPECTED_PROXY,
  parseHop,
  parseProxyPair,
} from "./proxy_url.ts";

/** What {@link parseConfig} found. */
export interface ParsedConfig {
  /** Valid entries, in file order. */
  readonly entries: TunnelEntry[];
  /** Every error, in file order; the config is usable only when empty. */
  readonly errors: ConfigError[];
}

/**
 * What a config may draw on besides its text: environment variables for
 * `${NAME}`, and files for `credentials=FILE` and `ca-file=FILE`. Injected
 * so that parsing stays free of I/O in tests.
 */
export interface ConfigContext extends Environment {
  /**
   * The contents of a file the config names.
   * @param kind What the file holds: a secret, or public certificates.
   * @throws {Error} with a message saying why it cannot be read.
   */
  readFile(path: string, kind: FileKind): string;
}

/** A context with no environment and no files, for plain config text. */
const EMPTY_CONTEXT: ConfigContext = {
  ...NO_ENVIRONMENT,
  readFile: () => {
    throw new Error("files are not available here");
  },
};

const PROXY_OPTION_NAMES = ["auth", "credentials", "spn-host"];

/** Options of `pac=` routes only. */
const PAC_OPTION_NAMES = [
  "pac-timeout",
  "pac-cache",
  "pac-refresh",
  "pac-fallback",
  "credentials-for",
];

/** Options of `proxy` and `socks` entries only. */
const LOCAL_OPTION_NAMES = ["direct-for", "allow", "client-auth"];

const OPTION_NAMES = [
  ...TUNNEL_OPTION_ROWS.map((option) => option.key),
  ...PROXY_OPTION_NAMES,
  ...PAC_OPTION_NAMES,
  ...LOCAL_OPTION_NAMES,
];

const FIELDS =
  "<source> <destination host> <destination port> [<proxy host> <proxy port> | <proxy URL>[,<alternative>] ... | direct | env] [key=value ...]";

/** The keywords that make an entry a local proxy, and the kind each makes. */
const LOCAL_KINDS: Readonly<Record<string, LocalProxyEntry["kind"]>> = {
  proxy: "http-proxy",
  socks: "socks",
};

/**
 * Parses a config file's text.
 *
 * Each non-blank line that does not start with `#` is one entry:
 * `<source> <destination host> <destination port> [<route>]`, where the
 * source is `port` (binds 127.0.0.1), `host:port` or `[v6]:port`, and the
 * route is `host port`, proxy URLs, `direct` or `env`. A token starting
 * with `#` starts a comment.
 *
 * Options follow as `key=value`: the tunnel options of
 * {@link TUNNEL_OPTION_ROWS}, `auth=basic` (send Basic credentials before
 * the proxy asks) and `credentials=FILE` (`user:password` from a file).
 * `${NAME}` anywhere is replaced by the environment variable NAME.
 *
 * @param text The file's contents.
 * @param file The file's path, used in error locations.
 * @param context Environment variables and files.
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
  const sources = new SourceIndex();
  const errors: ConfigError[] = [];
  const lines = text.replace(/^\uFEFF/, "").split("\n");
  for (const [index, raw] of lines.entries()) {
    const lineNumber = index + 1;
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    try {
      const tokens = tokenize(line);
      if (tokens.length === 0) continue;
      const entry = parseEntry(tokens, lineNumber, context);
      const clash = sources.clash(entry);
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
      sources.add(entry);
    } catch (error) {
      if (!(error instanceof EntryError)) throw error;
      errors.push(
        new ConfigError(file, lineNumber, error.column, error.message),
      );
    }
  }
  return { entries, errors };
}

/**
 * Parses the route fields of an entry: nothing (direct), `direct`, `env`,
 * `pac=FILE|URL|auto`, proxy URLs (one hop each, commas between
 * alternatives), or the proxy host and port.
 *
 * @param tokens The fields after the destination port, options excluded.
 * @param environment The variables `${NAME}` may name.
 * @returns The route.
 * @throws {EntryError} at the field that is wrong.
 */
export function parseRoute(
  tokens: readonly Token[],
  environment: Environment,
): Route {
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
  if (first.text.startsWith("pac=")) {
    if (tokens.length > 1) {
      throw new EntryError(
        tokens[1].column,
        "pac= is the whole route: the PAC names the proxies; remove what follows it, or write options as key=value",
      );
    }
    const source = expandVariables({
      text: first.text.slice(4),
      column: first.column + 4,
    }, environment).text;
    if (source === "") {
      throw new EntryError(
        first.column,
        "pac= needs a PAC file, an http(s):// URL, or auto",
      );
    }
    // The source is shown in logs and tables as written.
    if (/^https?:\/\/[^/?#]*@/i.test(source)) {
      throw new EntryError(
        first.column + 4,
        "a pac= URL cannot carry user:password@ (a PAC is fetched without authentication, and the URL is logged): remove it",
      );
    }
    return { kind: "pac", source };
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
      return parseHop(token, environment);
    });
    return { kind: "chain", hops };
  }
  // The original form: proxy host and proxy port as two fields.
  if (tokens.length === 1) throw new EntryError(first.column, EXPECTED_PROXY);
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
  return {
    kind: "chain",
    hops: [[parseProxyPair(tokens[0], tokens[1], environment)]],
  };
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

function parseEntry(
  allTokens: Token[],
  line: number,
  context: ConfigContext,
): TunnelEntry {
  // `pac=` is a route, written like an option.
  const firstOption = allTokens.findIndex((token, index) =>
    index >= 2 && /^[A-Za-z][A-Za-z0-9-]*=/.test(token.text) &&
    !token.text.startsWith("pac=")
  );
  const tokens = firstOption < 0 ? allTokens : allTokens.slice(0, firstOption);
  const options = firstOption < 0 ? [] : allTokens.slice(firstOption);
  // `<source> proxy|socks [<route>]`: a local proxy. A fixed forward always
  // has a port as its third field, so the original lines keep their meaning.
  const localKind = LOCAL_KINDS[tokens[1]?.text ?? ""];
  const local = localKind !== undefined &&
    (tokens.length === 2 || !/^\d+$/.test(tokens[2].text));
  if (!local && tokens.length < 3) {
    throw new EntryError(
      tokens[0].column,
      `expected ${FIELDS}, found ${tokens.length} field${
        tokens.length === 1 ? "" : "s"
      }; or <source> proxy|socks [<route>] for a local proxy`,
    );
  }
  const source = parseSource(expandVariables(tokens[0], context));
  let route = parseRoute(tokens.slice(local ? 2 : 3), context);
  let settings: Partial<TunnelOptions> = {};
  const localSettings: {
    directFor: string[];
    allow: string[];
    clientCredentials?: { username: string; password: string };
  } = { directFor: [], allow: [] };
  for (const option of options) {
    const equals = option.text.indexOf("=");
    const key = option.text.slice(0, equals);
    const value = expandVariables({
      text: option.text.slice(equals + 1),
      column: option.column + equals + 1,
    }, context);
    const tunnelOption = TUNNEL_OPTION_ROWS.find((row) => row.key === key);
    if (tunnelOption) {
      const { type, example } = tunnelOption;
      const text = type.file
        ? readFileOption(value, context, type.file)
        : value.text;
      const setting = readTunnelOption(tunnelOption, text);
      if (setting === undefined) {
        const guess = type.choices && nearest(value.text, type.choices);
        throw new EntryError(
          value.column,
          `${key}=${
            type.secret ? "…" : value.text
          } is not valid: use ${type.kind}${
            example ? ` such as ${example}` : ""
          }${guess ? ` (did you mean ${key}=${guess}?)` : ""}`,
        );
      }
      settings = { ...settings, ...setting };
    } else if (route.kind === "pac" && key === "credentials") {
      route = { ...route, credentials: readCredentials(value, context) };
    } else if (PAC_OPTION_NAMES.includes(key)) {
      route = applyPacOption(option, key, value, route);
    } else if (PROXY_OPTION_NAMES.includes(key)) {
      route = applyProxyOption(option, key, value, route, context);
    } else if (LOCAL_OPTION_NAMES.includes(key)) {
      if (!local) {
        throw new EntryError(
          option.column,
          `option ${key} applies to local proxies (<source> proxy|socks <route>), and this entry is a fixed forward`,
        );
      }
      applyLocalOption(key, value, localSettings);
    } else {
      const guess = nearest(key, OPTION_NAMES);
      throw new EntryError(
        option.column,
        guess === undefined
          ? `unknown option "${key}": the options are ${
            OPTION_NAMES.join(", ")
          }`
          : `unknown option "${key}": did you mean ${guess}?`,
      );
    }
  }
  checkWebOptions(options, route);
  checkClientCertificate(options, settings);
  if (route.kind === "pac") checkPacCredentials(route, options);
  if (!local) {
    const [host, port] = tokens.slice(1, 3).map((token) =>
      expandVariables(token, context)
    );
    return {
      kind: "forward",
      source,
      destination: {
        host: parseHostField(host, "destination host"),
        port: parsePortField(port, "destination port"),
      },
      route,
      options: settings,
      line,
    };
  }
  if (!isLoopback(source.host) && localSettings.allow.length === 0) {
    throw new EntryError(
      tokens[0].column,
      `a ${
        tokens[1].text
      } entry on ${source.host} lets other machines use your proxy credentials: add allow=CIDR,... naming the clients (e.g. allow=10.1.0.0/16), or listen on 127.0.0.1`,
    );
  }
  return {
    kind: localKind,
    source,
    route,
    options: settings,
    line,
    ...localSettings,
  };
}

// token=, heartbeat=, fingerprint=, client-cert=, client-key=, mux=,
// resume=, resume-window=, max-streams= and transport= mean something only to a ws:// or
// wss:// hop: on another route they are a mistake, said so.
function checkWebOptions(options: readonly Token[], route: Route): void {
  const web = route.kind === "chain" &&
    route.hops.some((hop) => hop.some((proxy) => proxy.path !== undefined));
  if (web) return;
  const misplaced = options.find((option) =>
    /^(token|heartbeat|fingerprint|client-cert|client-key|mux|resume|resume-window|max-streams|transport)=/
      .test(option.text)
  );
  if (misplaced === undefined) return;
  throw new EntryError(
    misplaced.column,
    `option ${
      misplaced.text.slice(0, misplaced.text.indexOf("="))
    } applies to ws:// and wss:// hops, and this entry has none`,
  );
}

// client-cert= and client-key= go together, and must be one pair.
function checkClientCertificate(
  options: readonly Token[],
  settings: Partial<TunnelOptions>,
): void {
  const { clientCert, clientKey } = settings;
  if (clientCert === undefined && clientKey === undefined) return;
  const at = (key: string) =>
    options.find((option) => option.text.startsWith(`${key}=`))!.column;
  if (clientCert === undefined || clientKey === undefined) {
    const given = clientCert === undefined ? "client-key" : "client-cert";
    throw new EntryError(
      at(given),
      "client-cert= and client-key= go together: give both",
    );
  }
  const problem = keyPairProblem(clientCert, clientKey);
  if (problem !== undefined) {
    throw new EntryError(at("client-key"), `client-key=: ${problem}`);
  }
}

// direct-for=, allow= and client-auth= of a local proxy entry.
function applyLocalOption(
  key: string,
  value: Token,
  settings: {
    directFor: string[];
    allow: string[];
    clientCredentials?: { username: string; password: string };
  },
): void {
  if (key === "client-auth") {
    const colon = value.text.indexOf(":");
    if (colon <= 0) {
      throw new EntryError(
        value.column,
        "client-auth must be user:password, e.g. client-auth=me:${LOCAL_PROXY_PASSWORD}",
      );
    }
    settings.clientCredentials = {
      username: value.text.slice(0, colon),
      password: value.text.slice(colon + 1),
    };
    return;
  }
  const patterns = value.text.split(",").map((pattern) =>
    pattern.trim().toLowerCase().replace(/^\*\./, ".")
  );
  if (patterns.some((pattern) => pattern === "")) {
    throw new EntryError(
      value.column,
      `${key}= lists ${
        key === "allow" ? "addresses or CIDR ranges" : "host patterns"
      } separated by commas, with none empty`,
    );
  }
  if (key === "allow") {
    const bad = patterns.find((pattern) => !isAddressPattern(pattern));
    if (bad !== undefined) {
      throw new EntryError(
        value.column,
        `allow=${bad} is not an address or CIDR range: write e.g. allow=10.1.0.0/16,192.0.2.7`,
      );
    }
    settings.allow.push(...patterns);
  } else {
    settings.directFor.push(...patterns);
  }
}

function isAddressPattern(pattern: string): boolean {
  const [address, bits, extra] = pattern.split("/");
  if (extra !== undefined || ipBytes(address) === undefined) return false;
  if (bits === undefined) return true;
  const max = ipBytes(address)!.length * 8;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= max;
}

// `credentials=FILE`: one line user:password.
function readCredentials(
  valueToken: Token,
  context: ConfigContext,
): { username: string; password: string } {
  const contents = readFileOption(valueToken, context, "credentials");
  const first = contents.split(/\r?\n/).find((line) => line.trim() !== "") ??
    "";
  const colon = first.indexOf(":");
  if (colon < 0) {
    throw new EntryError(
      valueToken.column,
      `credentials file ${valueToken.text} must hold one line user:password`,
    );
  }
  const username = first.slice(0, colon);
  const password = first.slice(colon + 1);
  checkCredential(username, valueToken.column);
  checkCredential(password, valueToken.column);
  return { username, password };
}

// pac-timeout=, pac-cache=, pac-refresh=, pac-fallback=, credentials-for=.
function applyPacOption(
  option: Token,
  key: string,
  value: Token,
  route: Route,
): PacRoute {
  if (route.kind !== "pac") {
    throw new EntryError(
      option.column,
      `option ${key} applies to a pac= route, and this entry has none`,
    );
  }
  if (key === "pac-fallback") {
    if (value.text !== "direct" && value.text !== "error") {
      throw new EntryError(
        value.column,
        `pac-fallback=${value.text} is not an option: write pac-fallback=error (the default: refuse the connection while the PAC cannot answer) or pac-fallback=direct`,
      );
    }
    return { ...route, fallback: value.text };
  }
  if (key === "credentials-for") {
    const patterns = value.text.split(",").map((pattern) =>
      pattern.trim().toLowerCase().replace(/^\*\./, ".")
    );
    if (patterns.some((pattern) => pattern === "" || pattern === "*")) {
      throw new EntryError(
        value.column,
        "credentials-for= lists the proxy hosts that may receive credentials (names, which match their subdomains, addresses or CIDR ranges) separated by commas, none empty and not *",
      );
    }
    return { ...route, credentialsFor: patterns };
  }
  const ms = parseDuration(value.text);
  if (ms === undefined) {
    throw new EntryError(
      value.column,
      `${key}=${value.text} is not valid: use a duration such as ${
        key === "pac-timeout" ? "1s" : key === "pac-cache" ? "60s" : "15m"
      }`,
    );
  }
  const field = key === "pac-timeout"
    ? "timeoutMs"
    : key === "pac-cache"
    ? "cacheMs"
    : "refreshMs";
  return { ...route, [field]: ms };
}

// Credentials of a PAC read from a file have no domain to default to.
function checkPacCredentials(route: PacRoute, options: Token[]): void {
  const at = (key: string) =>
    options.find((option) => option.text.startsWith(`${key}=`))?.column ?? 1;
  if (route.credentials === undefined) {
    if (route.credentialsFor !== undefined) {
      throw new EntryError(
        at("credentials-for"),
        "credentials-for= says which proxies get the credentials=FILE of the entry; add credentials=FILE",
      );
    }
    return;
  }
  if (
    route.credentialsFor === undefined && route.source !== "auto" &&
    !/^https?:\/\//i.test(route.source)
  ) {
    throw new EntryError(
      at("credentials"),
      "a PAC read from a file can name any proxy: add credentials-for=HOST,... naming the proxies that may receive these credentials (e.g. credentials-for=proxy.corp.example)",
    );
  }
}

function readFileOption(
  value: Token,
  context: ConfigContext,
  kind: FileKind,
): string {
  try {
    return context.readFile(value.text, kind);
  } catch (error) {
    const what = FILE_KIND_WORDS[kind];
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
      route.kind === "pac"
        ? `option ${key} does not apply to pac= routes: the PAC names the proxies, and they get credentials=FILE only`
        : `option ${key} applies to a proxy, and this entry has none`,
    );
  }
  const value = valueToken.text;
  let change: (proxy: Proxy) => Proxy;
  if (key === "spn-host") {
    if (value !== "canonical" && value !== "as-written") {
      throw new EntryError(
        valueToken.column,
        `spn-host=${value} is not an option: write spn-host=as-written (the default) or spn-host=canonical (the name the resolver gives back for the proxy's address)`,
      );
    }
    change = (proxy) => {
      const { spnHost: _, ...rest } = proxy;
      return value === "canonical" && proxy.scheme.startsWith("http")
        ? { ...rest, spnHost: "canonical" }
        : rest;
    };
  } else if (key === "auth") {
    const scheme = AUTH_SCHEMES.find((name) => name === value);
    if (scheme === undefined) {
      throw new EntryError(
        valueToken.column,
        `auth=${value} is not an option: write auth=${
          AUTH_SCHEMES.join("|")
        } to answer the proxy with that scheme only (auth=basic also sends it before the proxy asks)`,
      );
    }
    change = (proxy) =>
      proxy.scheme.startsWith("http")
        ? {
          ...proxy,
          auth: scheme,
          ...(scheme === "basic" ? { preemptiveBasic: true } : {}),
        }
        : proxy;
  } else {
    const { username, password } = readCredentials(valueToken, context);
    change = (proxy) =>
      proxy.username !== undefined
        ? proxy
        : { ...proxy, username, password, credentialsFile: value };
  }
  return { kind: "chain", hops: route.hops.map((hop) => hop.map(change)) };
}
