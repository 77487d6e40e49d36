/**
 * Proxy syntax: `scheme://[user[:password]@]host:port` with percent-decoded
 * credentials, a hop of comma-separated alternatives, and the original
 * `host port` pair. Pure. A password is never quoted in a message.
 *
 * @module
 */

import { splitHostPort } from "../net/address.ts";
import {
  type Hop,
  type Proxy,
  PROXY_SCHEMES,
  type ProxyScheme,
} from "../route/types.ts";
import { type Environment, expandVariables, NO_ENVIRONMENT } from "./expand.ts";
import {
  EntryError,
  parseHostField,
  parsePortField,
  type Token,
} from "./field.ts";

/** The message for a field that is neither a proxy URL nor a proxy host. */
export const EXPECTED_PROXY =
  "expected a proxy URL (http://host:port) or the proxy host followed by its port";

/**
 * Reads one hop: proxy URLs separated by commas, tried in order.
 *
 * @param token The field, e.g. `http://a:3128,http://b:3128`.
 * @param environment The variables `${NAME}` may name.
 * @returns The alternatives.
 * @throws {EntryError} at the first URL that is wrong.
 */
export function parseHop(token: Token, environment: Environment): Hop {
  let column = token.column;
  return token.text.split(",").map((text) => {
    const proxy = parseProxyUrl({ text, column }, environment);
    column += text.length + 1;
    return proxy;
  });
}

/**
 * Reads the original form, proxy host and proxy port as two fields: an
 * HTTP proxy.
 *
 * @param host The proxy host field.
 * @param port The proxy port field.
 * @param environment The variables `${NAME}` may name.
 * @returns The proxy.
 * @throws {EntryError} at the field that is wrong.
 */
export function parseProxyPair(
  host: Token,
  port: Token,
  environment: Environment,
): Proxy {
  const [hostText, portText] = [host, port].map((token) =>
    expandVariables(token, environment)
  );
  return {
    scheme: "http",
    host: parseHostField(hostText, "proxy host"),
    port: parsePortField(portText, "proxy port"),
  };
}

/**
 * Reads a proxy URL outside a config file, e.g. from `HTTPS_PROXY`; no
 * `${NAME}` is expanded.
 *
 * @param text `scheme://[user:pass@]host:port`.
 * @returns The proxy.
 * @throws {EntryError} saying what is wrong (never quoting the password);
 *   its column counts from the URL's first character.
 */
export function parseProxyUrlText(text: string): Proxy {
  return parseProxyUrl({ text, column: 1 }, NO_ENVIRONMENT);
}

function parseProxyUrl(token: Token, environment: Environment): Proxy {
  const { text, column } = token;
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(text);
  if (!scheme) throw new EntryError(column, EXPECTED_PROXY);
  const schemeName = PROXY_SCHEMES.find((name) =>
    name === scheme[1].toLowerCase()
  );
  if (schemeName === undefined) {
    throw new EntryError(
      column,
      `unsupported proxy scheme "${scheme[1]}": use ${
        PROXY_SCHEMES.map((s) => `${s}://`).join(", ")
      }`,
    );
  }
  let rest = text.slice(scheme[0].length).replace(/\/$/, "");
  // A ws:// or wss:// URL keeps its path; its port may be left out.
  const web = WEB_PORTS[schemeName];
  let path: string | undefined;
  if (web !== undefined) {
    const slash = rest.indexOf("/");
    path = slash < 0 ? "/" : rest.slice(slash);
    if (slash >= 0) rest = rest.slice(0, slash);
    checkPath(path, column + scheme[0].length + rest.length);
  }
  const at = rest.lastIndexOf("@");
  const userinfo = at >= 0 ? rest.slice(0, at) : undefined;
  const authority = rest.slice(at + 1);
  const hostPort = web !== undefined && splitHostPort(authority) === undefined
    ? `${authority}:${web}`
    : authority;
  const hostColumn = column + scheme[0].length + at + 1;
  const parts = hostPort.includes("/") ? undefined : splitHostPort(hostPort);
  if (!parts) {
    throw new EntryError(
      hostColumn,
      "the proxy URL needs a host and a port and nothing after them: http://host:port",
    );
  }
  let host: string;
  let port: number;
  try {
    host = parseHostField(
      expandVariables({ text: parts.host, column: hostColumn }, environment),
      "proxy host",
    );
    port = parsePortField(
      expandVariables(
        { text: parts.port, column: hostColumn + parts.host.length + 1 },
        environment,
      ),
      "proxy port",
    );
  } catch (error) {
    // Without "@", `user:password` reads as host and port: never quote them.
    if (userinfo !== undefined || !(error instanceof EntryError)) throw error;
    const which = error.message.includes("proxy port") ? "port" : "host";
    throw new EntryError(
      error.column,
      `invalid proxy ${which} (not shown, in case it is a user name or password written without @host:port): write scheme://[user:password@]host:port`,
    );
  }
  if (path !== undefined) {
    if (userinfo !== undefined) {
      throw new EntryError(
        column,
        `a ${schemeName}:// URL takes no user:password: give the server's token with token=`,
      );
    }
    return { scheme: schemeName, host, port, path };
  }
  if (userinfo === undefined) return { scheme: schemeName, host, port };
  return {
    scheme: schemeName,
    host,
    port,
    ...parseUserinfo(userinfo, column + scheme[0].length, environment),
  };
}

/** The default ports of the schemes whose URLs keep a path. */
const WEB_PORTS: Partial<Record<ProxyScheme, number>> = { ws: 80, wss: 443 };

// The path goes into the upgrade request line: visible ASCII only, no
// spaces, no fragment, bounded.
function checkPath(path: string, column: number): void {
  if (!/^\/[\x21-\x7e]{0,1023}$/.test(path) || path.includes("#")) {
    throw new EntryError(
      column,
      "the URL's path may hold only printable characters without spaces or #, up to 1024 of them: percent-encode the others",
    );
  }
}

function parseUserinfo(
  userinfo: string,
  column: number,
  environment: Environment,
): { username: string; password: string | undefined } {
  const part = (text: string, at: number) => {
    let value: string;
    try {
      value = expandVariables({ text, column: at }, environment, true).text;
    } catch (error) {
      if (error instanceof EntryError) throw error;
      throw new EntryError(
        column,
        "cannot decode the user name or password in the proxy URL: write special characters percent-encoded (%40 for @, %3A for :, %25 for %)",
      );
    }
    checkCredential(value, at);
    return value;
  };
  const colon = userinfo.indexOf(":");
  return {
    username: part(colon >= 0 ? userinfo.slice(0, colon) : userinfo, column),
    password: colon >= 0
      ? part(userinfo.slice(colon + 1), column + colon + 1)
      : undefined,
  };
}

/** The longest user name or password accepted, in characters. */
export const MAX_CREDENTIAL_CHARS = 1024;

/**
 * Refuses a user name or password that would break the request header it
 * goes into: a control character (CR and LF would inject header lines) or
 * more than {@link MAX_CREDENTIAL_CHARS} characters.
 *
 * @param value The user name or password, decoded.
 * @param column Where it is written, for the error.
 * @throws {EntryError} saying which, never quoting the value.
 */
export function checkCredential(value: string, column: number): void {
  // deno-lint-ignore no-control-regex -- control characters are what is refused
  if (/[\x00-\x1f\x7f]/.test(value)) {
    throw new EntryError(
      column,
      "the user name or password holds a control character (such as %0D or %0A): remove it",
    );
  }
  if (value.length > MAX_CREDENTIAL_CHARS) {
    throw new EntryError(
      column,
      `the user name or password is longer than ${MAX_CREDENTIAL_CHARS} characters`,
    );
  }
}
