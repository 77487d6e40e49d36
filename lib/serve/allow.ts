/**
 * The allow rules of `serve`: which targets a tunnel may reach. A rule is
 * `HOST:PORTS`, where HOST is a name (`git.internal`), a wildcard
 * (`*.db.internal`: any name ending so; `*`: any name or address), an
 * address or a CIDR block (`10.0.0.0/8`, `[fd00::/8]`), and PORTS is a
 * port, a range (`5432-5439`) or `*`. Names match the target as the client
 * wrote it; addresses and CIDR blocks match the address the server
 * resolved and will connect to, so a name cannot dodge an address rule.
 * Pure.
 *
 * @module
 */

import { ipBytes, isHostName, isIPv4, isIPv6 } from "../net/address.ts";

/** Which hosts a rule covers. */
export type HostPattern =
  | { readonly kind: "any" }
  | { readonly kind: "name"; readonly name: string }
  | { readonly kind: "suffix"; readonly suffix: string }
  | {
    readonly kind: "cidr";
    readonly network: Uint8Array;
    readonly prefix: number;
  };

/** One allow rule. */
export interface AllowRule {
  /** The rule as written, for the log. */
  readonly text: string;
  /** Which hosts. */
  readonly host: HostPattern;
  /** The first port allowed. */
  readonly fromPort: number;
  /** The last port allowed. */
  readonly toPort: number;
}

const SYNTAX =
  "write HOST:PORTS, e.g. git.internal:22, *.db.internal:5432-5439, 10.0.0.0/8:*, [fd00::/8]:443";

/**
 * Parses one rule.
 *
 * @param text The rule, e.g. `*.db.internal:5432`.
 * @returns The rule, or a message saying what is wrong and what to write.
 *
 * @example
 * ```ts
 * parseAllowRule("10.0.0.0/8:22"); // { host: { kind: "cidr", … }, fromPort: 22, toPort: 22, … }
 * parseAllowRule("git.internal"); // a message: the ports are missing
 * ```
 */
export function parseAllowRule(text: string): AllowRule | string {
  const match = /^(\[[^\]]*\]|[^:[\]]*):([^:]*)$/.exec(text);
  if (match === null) return `"${text}" is not an allow rule: ${SYNTAX}`;
  const [, hostText, portText] = match;
  const ports = parsePorts(portText);
  if (typeof ports === "string") return `"${text}": ${ports}`;
  const host = parseHostPattern(hostText);
  if (typeof host === "string") return `"${text}": ${host}`;
  return { text, host, fromPort: ports[0], toPort: ports[1] };
}

/**
 * Parses comma-separated rules.
 *
 * @param text e.g. `git.internal:22,*.db.internal:5432`.
 * @returns The rules, or the first mistake's message.
 */
export function parseAllowList(text: string): AllowRule[] | string {
  const rules: AllowRule[] = [];
  for (const part of text.split(",")) {
    const rule = parseAllowRule(part.trim());
    if (typeof rule === "string") return rule;
    rules.push(rule);
  }
  return rules;
}

function parsePorts(text: string): [number, number] | string {
  if (text === "*") return [1, 65535];
  const match = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text);
  const from = Number(match?.[1]);
  const to = match?.[2] === undefined ? from : Number(match[2]);
  if (match === null || from < 1 || to > 65535 || from > to) {
    return `the ports must be a port (1-65535), a range such as 5432-5439, or *`;
  }
  return [from, to];
}

function parseHostPattern(text: string): HostPattern | string {
  if (text === "*") return { kind: "any" };
  const bare = text.startsWith("[") ? text.slice(1, -1) : text;
  const [address, prefixText, extra] = bare.split("/");
  if (extra === undefined && (isIPv4(address) || isIPv6(address))) {
    if (text.startsWith("[") !== isIPv6(address)) {
      return "write an IPv6 address or block in brackets ([fd00::/8]) and an IPv4 one without";
    }
    const network = ipBytes(address)!;
    const bits = network.length * 8;
    const prefix = prefixText === undefined ? bits : Number(prefixText);
    if (
      prefixText !== undefined &&
      (!/^\d{1,3}$/.test(prefixText) || prefix > bits)
    ) {
      return `the prefix length must be 0-${bits}`;
    }
    return { kind: "cidr", network: masked(network, prefix), prefix };
  }
  const name = text.toLowerCase();
  if (name.startsWith("*.") && isHostName(name.slice(2))) {
    return { kind: "suffix", suffix: name.slice(1) };
  }
  if (!name.includes("*") && isHostName(name)) return { kind: "name", name };
  return "the host must be a name, *.domain, an address, a CIDR block or *";
}

function masked(address: Uint8Array, prefix: number): Uint8Array {
  return address.map((byte, i) => {
    const keep = Math.max(0, Math.min(8, prefix - i * 8));
    return byte & (0xff << (8 - keep));
  });
}

/** An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) as its IPv4 bytes. */
function unmapped(address: Uint8Array): Uint8Array {
  const mapped = address.length === 16 &&
    address.subarray(0, 10).every((byte) => byte === 0) &&
    address[10] === 0xff && address[11] === 0xff;
  return mapped ? address.subarray(12) : address;
}

function coversPort(rule: AllowRule, port: number): boolean {
  return port >= rule.fromPort && port <= rule.toPort;
}

/**
 * The first rule that allows the host name `name` (not an address) on
 * `port` by its name: an exact name, a `*.` suffix or `*`.
 *
 * @param rules The rules.
 * @param name The target's host name as the client wrote it.
 * @param port The target's port.
 * @returns The rule, or `undefined`.
 */
export function matchName(
  rules: readonly AllowRule[],
  name: string,
  port: number,
): AllowRule | undefined {
  const lower = name.toLowerCase().replace(/\.$/, "");
  return rules.find((rule) =>
    coversPort(rule, port) && (
      rule.host.kind === "any" ||
      (rule.host.kind === "name" && rule.host.name === lower) ||
      (rule.host.kind === "suffix" && lower.endsWith(rule.host.suffix))
    )
  );
}

/**
 * The first rule that allows the address `address` on `port`: a CIDR
 * block or address holding it, or `*`.
 *
 * @param rules The rules.
 * @param address An IPv4 or IPv6 address (without brackets).
 * @param port The target's port.
 * @returns The rule, or `undefined`.
 */
export function matchAddress(
  rules: readonly AllowRule[],
  address: string,
  port: number,
): AllowRule | undefined {
  const raw = ipBytes(address);
  if (raw === undefined) return undefined;
  const bytes = unmapped(raw);
  return rules.find((rule) => {
    if (!coversPort(rule, port)) return false;
    if (rule.host.kind === "any") return true;
    if (rule.host.kind !== "cidr") return false;
    const network = rule.host.network;
    return network.length === bytes.length &&
      masked(bytes, rule.host.prefix).every((byte, i) => byte === network[i]);
  });
}

/**
 * Whether some address rule covers `port`: only then is a name that no
 * name rule allows worth resolving.
 *
 * @param rules The rules.
 * @param port The target's port.
 * @returns `true` when a CIDR or address rule covers `port`.
 */
export function addressRulesCover(
  rules: readonly AllowRule[],
  port: number,
): boolean {
  return rules.some((rule) =>
    rule.host.kind === "cidr" && coversPort(rule, port)
  );
}
