/**
 * How a tunnel reaches its destination: directly, through a chain of
 * proxies (each hop with alternatives tried in order), or through the proxy
 * the environment names.
 *
 * @module
 */

import { formatHostPort, type HostPort } from "../net/address.ts";

/** The proxy protocols a hop may speak. */
export type ProxyScheme =
  | "http"
  | "https"
  | "socks5"
  | "socks5h"
  | "ws"
  | "wss";

/** The schemes a proxy URL may use. */
export const PROXY_SCHEMES: readonly ProxyScheme[] = [
  "http",
  "https",
  "socks5",
  "socks5h",
  "ws",
  "wss",
];

/** A proxy, with optional credentials. */
export interface Proxy extends HostPort {
  /**
   * `http` and `https` speak CONNECT; `socks5`/`socks5h` speak SOCKS5;
   * `ws`/`wss` are this tool's tunnel server (`serve`), over WebSocket.
   */
  readonly scheme: ProxyScheme;
  /** The URL's path, from `/`, for `ws`/`wss`; absent for the others. */
  readonly path?: string;
  /** User name, percent-decoded. */
  readonly username?: string;
  /** Password, percent-decoded. Never logged. */
  readonly password?: string;
  /** The file the credentials came from (`credentials=`), as written. */
  readonly credentialsFile?: string;
  /** Send Basic credentials with the first request, before any 407. */
  readonly preemptiveBasic?: boolean;
  /** The only authentication scheme to answer with (`auth=`); any when absent. */
  readonly auth?: AuthScheme;
  /**
   * The host name Kerberos asks a ticket for (`spn-host=`): the proxy's
   * host as written (absent), or its canonical name.
   */
  readonly spnHost?: "canonical";
}

/** The authentication schemes `auth=` can force. */
export type AuthScheme = "negotiate" | "ntlm" | "digest" | "basic";

/** The values `auth=` takes. */
export const AUTH_SCHEMES: readonly AuthScheme[] = [
  "negotiate",
  "ntlm",
  "digest",
  "basic",
];

/** One hop of a chain: alternatives, tried in order when one fails. */
export type Hop = readonly Proxy[];

/** What a `pac=` route does when its PAC cannot answer. */
export type PacFallback = "direct" | "error";

/**
 * A route a PAC script chooses per destination (`pac=`): its answer is an
 * ordered list of proxies and DIRECT, tried with failover.
 */
export interface PacRoute {
  /** Tells the kinds of route apart. */
  readonly kind: "pac";
  /** A file path, an `http(s)://` URL, or `auto`. */
  readonly source: string;
  /** Limit for one script call (`pac-timeout=`); 1 s when absent. */
  readonly timeoutMs?: number;
  /** How long an answer is reused (`pac-cache=`); 60 s when absent. */
  readonly cacheMs?: number;
  /** Time between fetches of a URL (`pac-refresh=`); 15 min when absent. */
  readonly refreshMs?: number;
  /** What to do when the script cannot answer (`pac-fallback=`); `error` when absent. */
  readonly fallback?: PacFallback;
  /** Credentials for the proxies the script names (`credentials=`). */
  readonly credentials?: {
    readonly username: string;
    readonly password: string;
  };
  /**
   * The proxy hosts the credentials may be sent to (`credentials-for=`),
   * NO_PROXY-style patterns; absent: see `credentialHosts` (pac/proxies.ts).
   */
  readonly credentialsFor?: readonly string[];
}

/** The way from this tool to a destination. */
export type Route =
  | { readonly kind: "direct" }
  | { readonly kind: "env" }
  | { readonly kind: "chain"; readonly hops: readonly Hop[] }
  | PacRoute;

/**
 * Describes a proxy for logs, with the password masked.
 *
 * @param proxy The proxy.
 * @returns e.g. `http://jane:***@proxy.example:3128`.
 */
export function describeProxy(proxy: Proxy): string {
  const user = proxy.username === undefined
    ? ""
    : `${encodeURIComponent(proxy.username)}:***@`;
  return `${proxy.scheme}://${user}${formatHostPort(proxy)}${proxy.path ?? ""}`;
}

/**
 * Describes a route for logs and tables, without passwords.
 *
 * @param route The route to describe.
 * @returns `direct`, `via env`, `via pac /etc/corp.pac`, or
 *   `via http://a:3128 -> socks5://b:1080,socks5://c:1080`.
 */
export function describeRoute(route: Route): string {
  if (route.kind === "direct") return "direct";
  if (route.kind === "env") return "via env";
  if (route.kind === "pac") return `via pac ${route.source}`;
  return `via ${
    route.hops.map((hop) => hop.map(describeProxy).join(",")).join(" -> ")
  }`;
}
