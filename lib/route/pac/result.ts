/**
 * The answer of a PAC script's `FindProxyForURL`: a `;`-separated list of
 * alternatives to try in order, e.g. `PROXY a:3128; SOCKS5 b:1080; DIRECT`.
 * Parsing and formatting, pure.
 *
 * Keywords and default ports are Chromium's (`PROXY` 80, `HTTPS` 443,
 * `SOCKS`/`SOCKS4`/`SOCKS5` 1080); host names are canonicalised as a URL
 * host is (lower case, punycode, IPv6 in its short form). Where Chromium
 * drops an item it cannot read, or takes an empty answer as `DIRECT`, this
 * parser refuses the answer: a PAC file that says something this tool does
 * not understand should be fixed, not half-followed.
 *
 * @module
 */

import {
  formatHostPort,
  isHostName,
  isIPv4,
  isIPv6,
  parsePort,
  splitHostPort,
} from "../../net/address.ts";

/** One alternative of a PAC answer. */
export type PacAlternative =
  | { readonly kind: "direct" }
  | {
    readonly kind: "proxy";
    readonly scheme: PacProxyScheme;
    readonly host: string;
    readonly port: number;
  };

/**
 * How a PAC answer's proxy is spoken to: `PROXY` is `http`, `HTTPS` is
 * `https`, `SOCKS` and `SOCKS4` are `socks4`, `SOCKS5` is `socks5`.
 */
export type PacProxyScheme = "http" | "https" | "socks4" | "socks5";

/** The longest answer read, in characters. */
export const MAX_PAC_RESULT_LENGTH = 64 * 1024;

/** The most alternatives one answer may list. */
export const MAX_PAC_ALTERNATIVES = 32;

/** An answer of `FindProxyForURL` that is not a list of alternatives this tool can follow. */
export class PacResultError extends Error {
  /**
   * The alternative that could not be read, as the script wrote it (cut to
   * 100 characters); absent when the answer as a whole is wrong.
   */
  readonly item?: string;

  /**
   * @param message What is wrong and what the script should return instead.
   * @param item The offending alternative, if one is to blame.
   */
  constructor(message: string, item?: string) {
    super(message);
    this.name = "PacResultError";
    this.item = item;
  }
}

const SCHEMES: Readonly<
  Record<string, { scheme: PacProxyScheme; port: number }>
> = {
  PROXY: { scheme: "http", port: 80 },
  HTTPS: { scheme: "https", port: 443 },
  SOCKS: { scheme: "socks4", port: 1080 },
  SOCKS4: { scheme: "socks4", port: 1080 },
  SOCKS5: { scheme: "socks5", port: 1080 },
};

const KEYWORDS: Readonly<Record<PacProxyScheme, string>> = {
  http: "PROXY",
  https: "HTTPS",
  socks4: "SOCKS",
  socks5: "SOCKS5",
};

const EXAMPLE = `"PROXY proxy.corp:3128; DIRECT"`;

/**
 * Parses "PROXY a:3128; HTTPS b:443; SOCKS c:1080; SOCKS5 d:1080; DIRECT".
 *
 * @param text What `FindProxyForURL` returned.
 * @returns The alternatives in the script's order; never empty.
 * @throws {PacResultError} for anything but a string, an empty answer, one
 *   longer than {@link MAX_PAC_RESULT_LENGTH} or with more than
 *   {@link MAX_PAC_ALTERNATIVES} alternatives, and an alternative with an
 *   unknown keyword, a missing or malformed host, or a bad port.
 *
 * @example
 * ```ts
 * parsePacResult("proxy a ; SOCKS5 [::1]:9050;DIRECT");
 * // [{ kind: "proxy", scheme: "http", host: "a", port: 80 },
 * //  { kind: "proxy", scheme: "socks5", host: "::1", port: 9050 },
 * //  { kind: "direct" }]
 * ```
 */
export function parsePacResult(text: unknown): PacAlternative[] {
  if (typeof text !== "string") {
    const what = text === null ? "null" : typeof text;
    throw new PacResultError(
      `FindProxyForURL returned ${what}, not a string: return e.g. ${EXAMPLE}`,
    );
  }
  if (text.length > MAX_PAC_RESULT_LENGTH) {
    throw new PacResultError(
      `FindProxyForURL returned ${text.length} characters, more than the ${MAX_PAC_RESULT_LENGTH} allowed`,
    );
  }
  const items = text.split(";").map((item) => item.trim()).filter(Boolean);
  if (items.length === 0) {
    throw new PacResultError(
      `FindProxyForURL returned an empty answer: return e.g. ${EXAMPLE}, or "DIRECT"`,
    );
  }
  if (items.length > MAX_PAC_ALTERNATIVES) {
    throw new PacResultError(
      `FindProxyForURL returned ${items.length} alternatives, more than the ${MAX_PAC_ALTERNATIVES} allowed`,
    );
  }
  return items.map(parseAlternative);
}

/**
 * Formats alternatives back as a PAC answer string, for `pac` command output and logs.
 *
 * @param alternatives The alternatives, in order.
 * @returns e.g. `PROXY a:3128; SOCKS5 [::1]:9050; DIRECT`, which
 *   {@link parsePacResult} reads back to the same alternatives.
 */
export function formatPacResult(
  alternatives: readonly PacAlternative[],
): string {
  return alternatives.map((alternative) =>
    alternative.kind === "direct"
      ? "DIRECT"
      : `${KEYWORDS[alternative.scheme]} ${formatHostPort(alternative)}`
  ).join("; ");
}

function parseAlternative(item: string): PacAlternative {
  const [keyword, address, ...extra] = item.split(/\s+/);
  const upper = keyword.toUpperCase();
  if (upper === "DIRECT") {
    if (address === undefined) return { kind: "direct" };
    throw itemError(item, "DIRECT takes no address");
  }
  const scheme = SCHEMES[upper];
  if (scheme === undefined) {
    const hint = upper === "HTTP"
      ? "write PROXY host:port for an HTTP proxy"
      : "use PROXY, HTTPS, SOCKS, SOCKS4, SOCKS5 or DIRECT";
    throw itemError(item, `${quote(keyword)} is not a PAC keyword: ${hint}`);
  }
  if (address === undefined) {
    throw itemError(
      item,
      `${upper} needs an address: write ${upper} host:port`,
    );
  }
  if (extra.length > 0) {
    throw itemError(
      item,
      `one address per alternative: separate alternatives with ";"`,
    );
  }
  const split = splitHostPort(address);
  if (
    split === undefined && !address.startsWith("[") &&
    address.split(":").length > 2
  ) {
    throw itemError(
      item,
      `write an IPv6 address in brackets, e.g. ${upper} [::1]:${scheme.port}`,
    );
  }
  let port = scheme.port;
  if (split !== undefined) {
    const parsed = parsePort(split.port);
    if (parsed === undefined) {
      throw itemError(item, `the port must be a number 1–65535`);
    }
    port = parsed;
  }
  const host = canonicalHost(split?.host ?? address);
  if (host === undefined) {
    throw itemError(
      item,
      `${quote(split?.host ?? address)} is not a host name or IP address`,
    );
  }
  return { kind: "proxy", scheme: scheme.scheme, host, port };
}

/**
 * The host as a URL would hold it — lower case, punycode, IPv4 in dotted
 * decimal, IPv6 short and without brackets — or `undefined` unless it is a
 * name or address safe to dial and to write into a CONNECT request.
 */
function canonicalHost(written: string): string | undefined {
  if (written.startsWith("[")) {
    const inner = written.endsWith("]") ? written.slice(1, -1) : "";
    if (!isIPv6(inner)) return undefined;
    return new URL(`http://[${inner}]/`).hostname.slice(1, -1);
  }
  // URL would read these as a user, port or path instead of the host.
  if (written === "" || /[/?#@:[\]\\%]/.test(written)) return undefined;
  let host: string;
  try {
    host = new URL(`http://${written}/`).hostname;
  } catch {
    return undefined;
  }
  return isIPv4(host) || isHostName(host) ? host : undefined;
}

function itemError(item: string, problem: string): PacResultError {
  return new PacResultError(
    `FindProxyForURL returned ${quote(item)}: ${problem}`,
    cut(item),
  );
}

/** Text cut to 100 characters, so a huge answer cannot flood a log line. */
function cut(text: string): string {
  return text.length > 100 ? `${text.slice(0, 100)}…` : text;
}

/** Text in double quotes, cut, control characters escaped, for a message. */
function quote(text: string): string {
  return JSON.stringify(cut(text));
}
