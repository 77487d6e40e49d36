/**
 * The name lookups the PAC helpers ask the main thread for, answered with
 * the system resolver (hosts file, DNS) as browsers do, each bounded in
 * time and cached briefly: a PAC script may call `dnsResolve` for every
 * request, and a slow resolver must not stall every connection.
 *
 * What the tool may not read is not asked for: run from source without
 * `--allow-sys` or `--allow-read`, Deno would stop the whole tool at a
 * permission prompt on a terminal.
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
  /**
   * Resolves a name: IPv4 addresses (family 4) or all (0).
   * @default the system resolver
   */
  readonly resolve?: (host: string, family: 0 | 4) => Promise<string[]>;
  /** This machine's addresses. @default {@link localAddresses} */
  readonly addresses?: () => string[] | undefined;
  /** Told once when this machine's addresses cannot be read. */
  readonly log?: (level: "warn", message: string) => void;
}

/**
 * Whether the tool holds a permission, asked without a prompt.
 *
 * @param descriptor The permission, e.g. `{ name: "sys", kind: "hostname" }`.
 * @returns `true` when granted.
 */
export function granted(descriptor: Deno.PermissionDescriptor): boolean {
  return Deno.permissions.querySync(descriptor).state === "granted";
}

const MAX_CACHED = 1000;

/** Linux's IPv4 routing table, where the default route's interface is read. */
const ROUTE_TABLE = "/proc/net/route";

/**
 * Lookups through the system resolver, with a time limit and a cache.
 *
 * @param options The limit and the cache time.
 * @returns The lookups.
 */
export function systemLookups(options: SystemLookupsOptions = {}): PacLookups {
  const {
    timeoutMs = 500,
    cacheMs = 60_000,
    resolve = systemResolve,
    addresses = localAddresses,
  } = options;
  let warned = false;
  const mine = () => {
    const found = addresses();
    if (found !== undefined) return found;
    if (!warned) {
      warned = true;
      options.log?.(
        "warn",
        "a PAC's myIpAddress() answers 127.0.0.1: the tool may not read this machine's addresses (give it --allow-sys=networkInterfaces, as deno task start and the binary have)",
      );
    }
    return ["127.0.0.1"];
  };
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
  return {
    resolveIpv4: (host) =>
      cached(`4 ${host}`, () => resolve(host, 4).catch(() => [])),
    resolveAll: (host) =>
      cached(`0 ${host}`, () => resolve(host, 0).catch(() => [])),
    myAddresses: () => cached("me", () => Promise.resolve(mine())),
  };
}

function systemResolve(host: string, family: 0 | 4): Promise<string[]> {
  return lookup(host, { all: true, family }).then((found) =>
    found.map(({ address }) => address)
  );
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
 * IPv4 before IPv6 and loopback last.
 *
 * @returns The addresses, never empty; `undefined` without
 *   `--allow-sys=networkInterfaces`.
 */
export function localAddresses(): string[] | undefined {
  if (!granted({ name: "sys", kind: "networkInterfaces" })) return undefined;
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
  if (!granted({ name: "read", path: ROUTE_TABLE })) return undefined;
  try {
    const table = Deno.readTextFileSync(ROUTE_TABLE);
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
