/**
 * A PAC answer's alternatives as the proxies the chain walk dials, and
 * the rule that decides which of them may receive the entry's
 * credentials. Pure.
 *
 * Credentials go only to a proxy whose host `credentials-for=` names
 * (NO_PROXY-style patterns: a name and its subdomains, an address, a CIDR
 * range, `host:port`). Without `credentials-for=`, a PAC fetched from a
 * URL may send them to proxies in the PAC server's own domain (the URL's
 * host minus its first label, e.g. `corp.example.com` for
 * `wpad.corp.example.com`, never a bare top-level or public suffix; the
 * server itself when it is an address or a single label); a PAC read from
 * a file names no domain, so the config requires `credentials-for=` there.
 * A script can name any proxy; the user decides which of them see a
 * password.
 *
 * @module
 */

import { ipBytes } from "../../net/address.ts";
import { bypassesProxy } from "../env.ts";
import type { PacRoute, Proxy, Route } from "../types.ts";
import { devolve } from "./discover.ts";
import type { PacAlternative } from "./result.ts";

/**
 * The proxy host patterns that may receive the route's credentials.
 *
 * @param route The PAC route.
 * @param scriptName Where the script in use came from: the file, or the
 *   URL (for `auto`, the URL discovery found).
 * @returns NO_PROXY-style patterns; empty when none may.
 *
 * @example
 * ```ts
 * credentialHosts({ kind: "pac", source: "http://wpad.corp.example.com/wpad.dat" },
 *   "http://wpad.corp.example.com/wpad.dat"); // ["corp.example.com"]
 * ```
 */
export function credentialHosts(
  route: PacRoute,
  scriptName: string,
): readonly string[] {
  if (route.credentialsFor !== undefined) return route.credentialsFor;
  let host: string;
  try {
    const url = new URL(scriptName);
    if (url.protocol !== "http:" && url.protocol !== "https:") return [];
    host = url.hostname.replace(/^\[|\]$/g, "").toLowerCase();
  } catch {
    return [];
  }
  if (ipBytes(host) !== undefined) return [host];
  const parent = host.slice(host.indexOf(".") + 1);
  return host.includes(".") && devolve(parent).length > 0 ? [parent] : [host];
}

/** A PAC alternative this tool cannot dial, e.g. `SOCKS4`. */
export class UnsupportedAlternativeError extends Error {
  /** @param alternative What the script named, e.g. `socks4://p:1080`. */
  constructor(alternative: string) {
    super(
      `the PAC names ${alternative}, which httptunneling cannot use (SOCKS4); it is skipped`,
    );
    this.name = "UnsupportedAlternativeError";
  }
}

/**
 * The proxy to dial for one alternative, with the route's credentials when
 * {@link credentialHosts} allows that proxy.
 *
 * @param alternative A proxy alternative of the answer.
 * @param route The PAC route.
 * @param scriptName Where the script in use came from.
 * @returns The proxy: PROXY is `http`, HTTPS `https`, SOCKS5 `socks5h`
 *   (the proxy resolves names, as browsers let it).
 * @throws {UnsupportedAlternativeError} for SOCKS4.
 */
export function proxyFor(
  alternative: PacAlternative & { kind: "proxy" },
  route: PacRoute,
  scriptName: string,
): Proxy {
  const { scheme, host, port } = alternative;
  if (scheme === "socks4") {
    throw new UnsupportedAlternativeError(`socks4://${host}:${port}`);
  }
  const proxy: Proxy = {
    scheme: scheme === "socks5" ? "socks5h" : scheme,
    host,
    port,
  };
  const { credentials } = route;
  if (
    credentials === undefined ||
    !bypassesProxy(proxy, credentialHosts(route, scriptName))
  ) {
    return proxy;
  }
  return { ...proxy, ...credentials };
}

/**
 * Each alternative of an answer as a route of its own, for `probe`: DIRECT
 * as `direct`, a proxy as a one-hop chain; SOCKS4 is left out.
 *
 * @param alternatives The answer's alternatives.
 * @param route The PAC route.
 * @param scriptName Where the script in use came from.
 * @returns The routes, in the answer's order.
 */
export function alternativeRoutes(
  alternatives: readonly PacAlternative[],
  route: PacRoute,
  scriptName: string,
): Route[] {
  return alternatives.flatMap((alternative): Route[] => {
    if (alternative.kind === "direct") return [{ kind: "direct" }];
    if (alternative.scheme === "socks4") return [];
    return [{
      kind: "chain",
      hops: [[proxyFor(alternative, route, scriptName)]],
    }];
  });
}
