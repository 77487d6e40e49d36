/**
 * What a PAC script is shown: the URL and host passed to
 * `FindProxyForURL(url, host)` for each kind of connection, and the key
 * its answer is cached under. Pure.
 *
 * A tunnel (a fixed forward, a CONNECT or SOCKS request) carries bytes the
 * tool cannot read, so it is shown as what a browser would ask for when it
 * opens such a tunnel: `https://host:port/`, without the port for 443. A
 * plain `http://` request through the local proxy is shown its real URL,
 * as a browser shows it (the URL may carry a query; it stays inside the
 * sandbox and the cache, and is never logged).
 *
 * @module
 */

import type { HostPort } from "../../net/address.ts";

/** The arguments of one `FindProxyForURL` call. */
export interface PacQuery {
  /** The URL argument. */
  readonly url: string;
  /** The host argument: the URL's host, IPv6 without brackets. */
  readonly host: string;
  /**
   * The key its answer is cached under: scheme, host and port for a
   * tunnel, the URL for a plain request.
   */
  readonly cacheKey: string;
}

function urlHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

/**
 * The query for a tunnel to `destination`: `https://host:port/`.
 *
 * @param destination Where the tunnel leads.
 * @returns e.g. `https://ssh.example.com:22/`, `https://example.com/`.
 *
 * @example
 * ```ts
 * tunnelQuery({ host: "::1", port: 22 }).url; // "https://[::1]:22/"
 * ```
 */
export function tunnelQuery(destination: HostPort): PacQuery {
  const host = destination.host.toLowerCase();
  const port = destination.port === 443 ? "" : `:${destination.port}`;
  return {
    url: `https://${urlHost(host)}${port}/`,
    host,
    cacheKey: `https ${host} ${destination.port}`,
  };
}

/**
 * The query for a plain HTTP request: its own URL, fragment dropped. Its
 * answer is cached per URL, since a PAC may choose by path
 * (`shExpMatch(url, "http://downloads.example/big*")`).
 *
 * @param url The request's absolute URL, e.g. `http://intranet/page?x=1`.
 * @param destination The host and port it names.
 * @returns The query.
 */
export function requestQuery(url: string, destination: HostPort): PacQuery {
  const host = destination.host.toLowerCase();
  const hash = url.indexOf("#");
  return {
    url: hash < 0 ? url : url.slice(0, hash),
    host,
    cacheKey: `http ${hash < 0 ? url : url.slice(0, hash)}`,
  };
}
