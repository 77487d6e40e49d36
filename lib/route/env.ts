/**
 * The proxy settings other tools on the machine use: `HTTPS_PROXY` (or
 * `https_proxy`), then `ALL_PROXY`/`all_proxy`, and `NO_PROXY`/`no_proxy`
 * matched the way curl does. Read once at start. Pure.
 *
 * @module
 */

import { type HostPort, ipBytes } from "../net/address.ts";
import type { Proxy, Route } from "./types.ts";
import { errorMessage } from "../errors.ts";

/** The proxy environment, as read at start. */
export interface ProxyEnvironment {
  /** The proxy to use, when one is set. */
  readonly proxy?: Proxy;
  /** Which variable set it, for messages. */
  readonly source?: string;
  /** NO_PROXY entries, lower-cased. */
  readonly noProxy: readonly string[];
}

/**
 * Reads the proxy environment.
 *
 * @param get Reads one variable, e.g. `(name) => Deno.env.get(name)`.
 * @param parseUrl Turns a proxy URL into a proxy; throws on a bad one.
 * @returns The proxy (if any) and the NO_PROXY list.
 * @throws {Error} naming the variable when its URL is not valid.
 */
export function readProxyEnvironment(
  get: (name: string) => string | undefined,
  parseUrl: (text: string) => Proxy,
): ProxyEnvironment {
  const noProxy = (get("NO_PROXY") ?? get("no_proxy") ?? "")
    .split(/[,\s]+/).map((entry) => entry.trim().toLowerCase()).filter(Boolean);
  for (const name of ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]) {
    const value = get(name)?.trim();
    if (!value) continue;
    const url = value.includes("://") ? value : `http://${value}`;
    try {
      return { proxy: parseUrl(url.replace(/\/$/, "")), source: name, noProxy };
    } catch (error) {
      throw new Error(
        `${name} is not a proxy URL: ${errorMessage(error)}`,
      );
    }
  }
  return { noProxy };
}

/**
 * The route the environment gives for `destination`: direct when no proxy
 * is set or NO_PROXY matches, otherwise through the proxy.
 *
 * @param environment The proxy environment.
 * @param destination Where the tunnel leads.
 * @returns A direct route or a one-hop chain.
 */
export function routeFromEnvironment(
  environment: ProxyEnvironment,
  destination: HostPort,
): Route {
  if (!environment.proxy || bypassesProxy(destination, environment.noProxy)) {
    return { kind: "direct" };
  }
  return { kind: "chain", hops: [[environment.proxy]] };
}

/**
 * Tells whether NO_PROXY exempts `target`, as curl reads it: `*` for all;
 * a name matches itself and its subdomains (a leading dot is ignored); an
 * IP address matches itself; `addr/bits` matches a CIDR range; an entry
 * with `:port` matches that port only.
 *
 * @param target The destination.
 * @param noProxy NO_PROXY entries, lower-cased.
 * @returns `true` when the destination is reached directly.
 */
export function bypassesProxy(
  target: HostPort,
  noProxy: readonly string[],
): boolean {
  const host = target.host.toLowerCase().replace(/\.$/, "");
  return noProxy.some((raw) => {
    if (raw === "*") return true;
    let entry = raw;
    const port = /^(\[.*\]|[^:]*):(\d+)$/.exec(entry);
    if (port) {
      if (Number(port[2]) !== target.port) return false;
      entry = port[1];
    }
    entry = entry.replace(/^\[(.*)\]$/, "$1").replace(/^\./, "").replace(
      /\.$/,
      "",
    );
    if (entry.includes("/")) return inCidr(host, entry);
    if (ipBytes(entry)) return ipEquals(host, entry);
    return host === entry || host.endsWith(`.${entry}`);
  });
}

function ipEquals(a: string, b: string): boolean {
  const x = ipToBigInt(a);
  const y = ipToBigInt(b);
  return x !== undefined && y !== undefined && x.bits === y.bits &&
    x.value === y.value;
}

function inCidr(host: string, cidr: string): boolean {
  const [base, bitsText] = cidr.split("/");
  const address = ipToBigInt(host);
  const network = ipToBigInt(base);
  const prefix = Number(bitsText);
  if (!address || !network || address.bits !== network.bits) return false;
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > network.bits) {
    return false;
  }
  const shift = BigInt(network.bits - prefix);
  return address.value >> shift === network.value >> shift;
}

function ipToBigInt(text: string): { value: bigint; bits: number } | undefined {
  const bytes = ipBytes(text);
  if (bytes === undefined) return undefined;
  return {
    value: bytes.reduce((sum, byte) => (sum << 8n) + BigInt(byte), 0n),
    bits: bytes.length * 8,
  };
}
