/**
 * The name lookups the PAC helpers ask the main thread for, answered with
 * the system resolver (hosts file, DNS) as browsers do, each bounded in
 * time and cached briefly: a PAC script may call `dnsResolve` for every
 * request, and a slow resolver must not stall every connection.
 *
 * @module
 */

import { lookup } from "node:dns/promises";

/** The lookups a PAC sandbox needs answered. */
export interface PacLookups {
  /** IPv4 addresses of `host`; `[]` when it does not resolve in time. */
  resolveIpv4(host: string): Promise<string[]>;
  /** IPv6 and IPv4 addresses of `host`; `[]` when it does not resolve. */
  resolveAll(host: string): Promise<string[]>;
  /** This machine's addresses, the likely outbound one first. */
  myAddresses(): Promise<string[]>;
}

/** Options of {@link systemLookups}. */
export interface SystemLookupsOptions {
  /** Longest wait for one lookup. @default 500 */
  readonly timeoutMs?: number;
  /** How long an answer (or a failure) is reused. @default 60000 */
  readonly cacheMs?: number;
}

const MAX_CACHED = 1000;

/**
 * Lookups through the system resolver, with a time limit and a cache.
 *
 * @param options The limit and the cache time.
 * @returns The lookups.
 */
export function systemLookups(options: SystemLookupsOptions = {}): PacLookups {
  const { timeoutMs = 500, cacheMs = 60_000 } = options;
  const cache = new Map<string, { until: number; answer: Promise<string[]> }>();
  const cached = (key: string, ask: () => Promise<string[]>) => {
    const now = Date.now();
    const hit = cache.get(key);
    if (hit && hit.until > now) return hit.answer;
    if (cache.size >= MAX_CACHED) cache.clear();
    const answer = withinTime(ask(), timeoutMs);
    cache.set(key, { until: now + cacheMs, answer });
    return answer;
  };
  const resolve = (host: string, family: 0 | 4) =>
    lookup(host, { all: true, family }).then(
      (found) => found.map(({ address }) => address),
      () => [],
    );
  return {
    resolveIpv4: (host) => cached(`4 ${host}`, () => resolve(host, 4)),
    resolveAll: (host) => cached(`0 ${host}`, () => resolve(host, 0)),
    myAddresses: () => cached("me", () => Promise.resolve(localAddresses())),
  };
}

function withinTime(answer: Promise<string[]>, ms: number): Promise<string[]> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<string[]>((resolve) => {
    timer = setTimeout(() => resolve([]), ms);
  });
  return Promise.race([answer, late]).finally(() => clearTimeout(timer));
}

/**
 * This machine's addresses: those of the interface the default route
 * leaves by first (read from /proc/net/route on Linux), then the others,
 * IPv4 before IPv6 and loopback last. Reading interfaces needs
 * `--allow-sys=networkInterfaces`; without it the answer is loopback, as
 * browsers answer when they find no address.
 *
 * @returns The addresses, never empty.
 */
export function localAddresses(): string[] {
  let interfaces: Deno.NetworkInterfaceInfo[];
  try {
    interfaces = Deno.networkInterfaces();
  } catch {
    return ["127.0.0.1"];
  }
  const outbound = defaultRouteInterface();
  const rank = (info: Deno.NetworkInterfaceInfo) =>
    (info.address.startsWith("127.") || info.address === "::1" ? 4 : 0) +
    (info.family === "IPv6" ? 2 : 0) + (info.name === outbound ? 0 : 1);
  const sorted = interfaces
    .filter((info) => !info.address.toLowerCase().startsWith("fe80"))
    .sort((a, b) => rank(a) - rank(b))
    .map((info) => info.address);
  return sorted.length > 0 ? [...new Set(sorted)] : ["127.0.0.1"];
}

function defaultRouteInterface(): string | undefined {
  try {
    const table = Deno.readTextFileSync("/proc/net/route");
    return parseDefaultRoute(table);
  } catch {
    return undefined;
  }
}

/**
 * The interface of the default IPv4 route in a Linux `/proc/net/route`
 * table.
 *
 * @param table The file's text.
 * @returns e.g. `eth0`, or `undefined` without a default route.
 */
export function parseDefaultRoute(table: string): string | undefined {
  for (const line of table.split("\n").slice(1)) {
    const [name, destination, , , , , , mask] = line.trim().split(/\s+/);
    if (destination === "00000000" && mask === "00000000") return name;
  }
  return undefined;
}
