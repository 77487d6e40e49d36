/**
 * The functions a PAC script calls — Netscape's set (`isPlainHostName`,
 * `dnsDomainIs`, `isInNet`, `shExpMatch`, `dateRange`, …) and Microsoft's
 * IPv6 extensions (`isInNetEx`, `dnsResolveEx`, `sortIpAddressList`, …) —
 * answering as Chromium and Firefox do, so a PAC file picks the same proxy
 * here as in the browser. Pure: DNS, this machine's addresses, the clock and
 * `alert()`'s log come through a {@link PacHost}, so the sandboxed Worker
 * can install these as its globals and tests can pin every input.
 *
 * What browsers disagree on, or the Netscape text leaves open, follows
 * Chromium: `dnsResolve()` gives IPv4 only and `null` on failure,
 * `myIpAddress()` favours IPv4 and falls back to `127.0.0.1`, failures of the
 * `…Ex()` functions give `""`.
 *
 * @module
 */

import {
  ipBytes,
  ipText,
  isHostName,
  isIPv4,
  isIPv6,
  isLinkLocal,
  isLoopback,
  prefixMatches,
} from "../../net/address.ts";

/** What the helpers need from outside the sandbox: synchronous, answered by the main side. */
export interface PacHost {
  /** IPv4 addresses of host (A records), [] when it does not resolve. */
  resolveIpv4(host: string): string[];
  /** All addresses (IPv6 and IPv4), [] when it does not resolve. */
  resolveAll(host: string): string[];
  /** This machine's addresses, the most likely outbound first; IPv4 and IPv6 mixed. */
  myAddresses(): string[];
  /** The current time (so tests can pin the clock). */
  now(): Date;
  /** alert() text, for the log. */
  alert(message: string): void;
}

/** A function as a PAC script calls it: any arguments, any result. */
export type PacHelper = (...args: unknown[]) => unknown;

/**
 * The addresses read from one {@link PacHost} answer; the rest are ignored,
 * so a host with hundreds of records cannot flood the script.
 */
const MAX_ADDRESSES = 64;

/** `alert()` text past this many characters is cut, to keep the log readable. */
const MAX_ALERT = 2000;

const WEEKDAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const MONTHS = [
  "JAN",
  "FEB",
  "MAR",
  "APR",
  "MAY",
  "JUN",
  "JUL",
  "AUG",
  "SEP",
  "OCT",
  "NOV",
  "DEC",
];

/**
 * The global functions a PAC script sees, keyed by name.
 *
 * @param host DNS, this machine's addresses, the clock and the log.
 * @returns Every helper of the Netscape and Microsoft sets, ready to be
 *   assigned to the sandbox's global object.
 *
 * @example
 * ```ts
 * const helpers = pacHelpers({
 *   resolveIpv4: () => ["10.1.2.3"],
 *   resolveAll: () => ["10.1.2.3"],
 *   myAddresses: () => ["10.0.0.5"],
 *   now: () => new Date(),
 *   alert: (message) => console.log(message),
 * });
 * helpers.isInNet("intranet.corp", "10.0.0.0", "255.0.0.0"); // true
 * ```
 */
export function pacHelpers(host: PacHost): Record<string, PacHelper> {
  const dnsResolve = (name: unknown): string | null => {
    if (typeof name !== "string") return null;
    if (isIPv4(name)) return name;
    const query = dnsName(name);
    if (query === undefined) return null;
    return addresses(host.resolveIpv4(query)).find(isIPv4) ?? null;
  };
  const dnsResolveEx = (name: unknown): string => {
    if (typeof name !== "string") return "";
    if (isIPv4(name) || isIPv6(name)) return name;
    const query = dnsName(name);
    if (query === undefined) return "";
    return addresses(host.resolveAll(query)).join(";");
  };
  const ownAddresses = () => {
    const usable: string[] = [];
    const linkLocal: string[] = [];
    const seen = new Set<string>();
    for (const address of addresses(host.myAddresses())) {
      const key = ipText(ipBytes(address)!);
      // The hostname's records often include loopback; it says nothing
      // about the network the machine is on.
      if (isLoopback(address) || seen.has(key)) continue;
      seen.add(key);
      (isLinkLocal(address) ? linkLocal : usable).push(address);
    }
    return { usable, linkLocal };
  };
  return {
    isPlainHostName,
    dnsDomainIs: (name: unknown, domain: unknown) => {
      const text = string("dnsDomainIs", name);
      return text.endsWith(string("dnsDomainIs", domain));
    },
    localHostOrDomainIs: (name: unknown, fullName: unknown) => {
      const text = string("localHostOrDomainIs", name);
      const full = string("localHostOrDomainIs", fullName);
      return text === full || full.startsWith(`${text}.`);
    },
    dnsDomainLevels: (name: unknown) =>
      string("dnsDomainLevels", name).split(".").length - 1,
    shExpMatch: (text: unknown, pattern: unknown) =>
      globMatches(string("shExpMatch", text), string("shExpMatch", pattern)),
    convert_addr: (address: unknown) => convertAddr(address),
    dnsResolve,
    dnsResolveEx,
    isResolvable: (name: unknown) => dnsResolve(name) !== null,
    isResolvableEx: (name: unknown) => dnsResolveEx(name) !== "",
    isInNet: (address: unknown, pattern: unknown, mask: unknown) => {
      if (typeof pattern !== "string" || typeof mask !== "string") return false;
      if (!isIPv4(pattern) || !isIPv4(mask)) return false;
      const ip = typeof address === "string" && isIPv4(address)
        ? address
        : dnsResolve(address);
      if (ip === null) return false;
      const [a, p, m] = [ipBytes(ip)!, ipBytes(pattern)!, ipBytes(mask)!];
      return a.every((byte, i) => (byte & m[i]) === (p[i] & m[i]));
    },
    isInNetEx,
    sortIpAddressList,
    myIpAddress: () => {
      const { usable, linkLocal } = ownAddresses();
      return favourIPv4(usable) ?? favourIPv4(linkLocal) ?? "127.0.0.1";
    },
    myIpAddressEx: () => {
      const { usable, linkLocal } = ownAddresses();
      // Like Chromium, at most one link-local address, and only when there
      // is nothing better.
      if (usable.length > 0) return usable.join(";");
      return favourIPv4(linkLocal) ?? "";
    },
    weekdayRange: (...args: unknown[]) => weekdayRange(host.now(), args),
    dateRange: (...args: unknown[]) => dateRange(host.now(), args),
    timeRange: (...args: unknown[]) => timeRange(host.now(), args),
    alert: (...args: unknown[]) => {
      const message = args.length === 0 ? "undefined" : String(args[0]);
      host.alert(
        message.length > MAX_ALERT
          ? `${message.slice(0, MAX_ALERT)}… (${message.length} characters)`
          : message,
      );
    },
    getClientVersion: () => "1.0",
  };
}

/** The argument as a string; a PAC helper given anything else throws, as in browsers. */
function string(name: string, value: unknown): string {
  if (typeof value !== "string") {
    throw new TypeError(
      `${name}() needs string arguments, not ${
        value === null ? "null" : typeof value
      }`,
    );
  }
  return value;
}

/** The valid IP addresses of a host answer, at most {@link MAX_ADDRESSES}. */
function addresses(list: readonly unknown[]): string[] {
  return list.slice(0, MAX_ADDRESSES).filter((address): address is string =>
    typeof address === "string" && ipBytes(address) !== undefined
  );
}

/** The first IPv4 address of `list`, else its first. */
function favourIPv4(list: readonly string[]): string | undefined {
  return list.find(isIPv4) ?? list[0];
}

/**
 * The name to ask DNS for: an international name in its punycode form, as
 * Chromium asks; `undefined` for text no DNS name can be, which is then
 * unresolvable without a query.
 */
function dnsName(name: string): string | undefined {
  if (name.length === 0 || name.length > 1024) return undefined;
  // Characters URL would read as a user, port or path, not as a host.
  if (/[\s/?#@:[\]\\%]/.test(name)) return undefined;
  let query = name;
  if (/[^ -~]/.test(name)) {
    try {
      query = new URL(`http://${name}/`).hostname;
    } catch {
      return undefined;
    }
  }
  return isHostName(query) ? query : undefined;
}

/**
 * Whether `name` has no domain part. Chromium's rule: no dot, and not an
 * IPv6 literal (`::1` has no dot but is no host name).
 */
function isPlainHostName(name: unknown): boolean {
  if (typeof name !== "string") {
    throw new TypeError("isPlainHostName() requires 1 string parameter");
  }
  return !name.includes(".") && !isIPv6(name);
}

/**
 * `convert_addr()`: a dotted quad as a signed 32-bit number, each part
 * masked to 8 bits, as the Netscape library computes it.
 */
function convertAddr(address: unknown): number {
  const parts = string("convert_addr", address).split(".").map(Number);
  return ((parts[0] & 0xff) << 24) | ((parts[1] & 0xff) << 16) |
    ((parts[2] & 0xff) << 8) | (parts[3] & 0xff);
}

/**
 * Shell glob: `*` matches any run of characters, `?` any one, every other
 * character itself. Walks both strings with one backtrack point, so no
 * pattern can take longer than text × pattern steps (a regular expression
 * built from the glob can take exponential time).
 */
function globMatches(text: string, pattern: string): boolean {
  let t = 0;
  let p = 0;
  let starP = -1;
  let starT = 0;
  while (t < text.length) {
    if (p < pattern.length && (pattern[p] === "?" || pattern[p] === text[t])) {
      t++;
      p++;
    } else if (p < pattern.length && pattern[p] === "*") {
      starP = p++;
      starT = t;
    } else if (starP >= 0) {
      p = starP + 1;
      t = ++starT;
    } else {
      return false;
    }
  }
  while (pattern[p] === "*") p++;
  return p === pattern.length;
}

/**
 * `isInNetEx(address, "prefix/bits")`, IPv4 or IPv6 on either side: an IPv4
 * address meets an IPv6 prefix as `::ffff:a.b.c.d`, as in Chromium.
 * `null` unless both arguments are strings; `false` for an address or a
 * prefix that cannot be read.
 */
function isInNetEx(address: unknown, prefix: unknown): boolean | null {
  if (typeof address !== "string" || typeof prefix !== "string") return null;
  let ip = ipBytes(address);
  const match = /^([^/]+)\/(\d{1,3})$/.exec(prefix);
  if (ip === undefined || match === null) return false;
  let bits = Number(match[2]);
  let network = ipBytes(match[1]) ?? shortIPv6Prefix(match[1], bits);
  if (network === undefined || bits > network.length * 8) return false;
  if (ip.length === 4 && network.length === 16) ip = ipv4Mapped(ip);
  if (ip.length === 16 && network.length === 4) {
    network = ipv4Mapped(network);
    bits += 96;
  }
  return prefixMatches(ip, network, bits);
}

/**
 * An IPv6 prefix written with its leading groups only, `3ffe:8311:ffff/48`
 * (pacparser's tests use this form; Chromium reads no such prefix, so this
 * only turns a certain `false` into a match): the groups, padded with
 * zeros, when the prefix ends within them.
 */
function shortIPv6Prefix(text: string, bits: number): Uint8Array | undefined {
  const groups = text.split(":");
  if (!/^[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,6}$/.test(text)) {
    return undefined;
  }
  if (bits > groups.length * 16) return undefined;
  return ipBytes(`${text}::`);
}

/** `a.b.c.d` as the IPv4-mapped IPv6 address `::ffff:a.b.c.d`. */
function ipv4Mapped(bytes: Uint8Array): Uint8Array {
  const mapped = new Uint8Array(16);
  mapped[10] = mapped[11] = 0xff;
  mapped.set(bytes, 12);
  return mapped;
}

/**
 * `sortIpAddressList("a;b;…")`, as Chromium sorts: spaces and tabs dropped,
 * empty items skipped, IPv6 before IPv4, each family in ascending order,
 * equal addresses kept in their order and every address kept as written.
 * `false` for an empty list or one with a non-address; `null` unless given
 * a string.
 */
function sortIpAddressList(list: unknown): string | false | null {
  if (typeof list !== "string") return null;
  const items = list.replace(/[ \t]/g, "").split(";").filter(Boolean);
  const parsed = items.map((text) => ({ text, bytes: ipBytes(text) }));
  if (parsed.length === 0 || parsed.some(({ bytes }) => !bytes)) return false;
  return parsed.sort((a, b) => compareAddresses(a.bytes!, b.bytes!))
    .map(({ text }) => text).join(";");
}

/** IPv6 first, then by value. */
function compareAddresses(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return b.length - a.length;
  const i = a.findIndex((byte, index) => byte !== b[index]);
  return i < 0 ? 0 : a[i] - b[i];
}

/**
 * The arguments of a time function without a trailing `"GMT"`, and whether
 * there was one.
 */
function clockArguments(
  args: readonly unknown[],
): { values: readonly unknown[]; gmt: boolean } {
  const gmt = args.length > 0 && args[args.length - 1] === "GMT";
  return { values: gmt ? args.slice(0, -1) : args, gmt };
}

/**
 * `now` as a Date whose UTC fields are the wall clock's: the local time
 * zone's, or UTC's for `gmt`. Ranges are then computed in UTC, where no
 * daylight-saving jump skips or repeats an hour.
 */
function wallClock(now: Date, gmt: boolean): Date {
  if (gmt) return new Date(now.getTime());
  return fieldDate(
    now.getFullYear(),
    now.getMonth(),
    now.getDate(),
    now.getHours(),
    now.getMinutes(),
    now.getSeconds(),
    now.getMilliseconds(),
  );
}

/** A Date with the given UTC fields; years below 100 taken literally. */
function fieldDate(
  year: number,
  month: number,
  day: number,
  hours: number,
  minutes: number,
  seconds: number,
  milliseconds = 0,
): Date {
  const date = new Date(0);
  date.setUTCFullYear(year, month, day);
  date.setUTCHours(hours, minutes, seconds, milliseconds);
  return date;
}

/** Whether `value` lies in `[start, end]`, wrapping around when start > end. */
function within(start: number, value: number, end: number): boolean {
  return start <= end
    ? start <= value && value <= end
    : value <= end || value >= start;
}

/**
 * `weekdayRange(wd1 [, wd2] [, "GMT"])`: upper-case three-letter days, the
 * range inclusive and wrapping past Saturday (`"SAT", "WED"`).
 */
function weekdayRange(now: Date, args: readonly unknown[]): boolean {
  if (args.length === 0) return false;
  const { values, gmt } = clockArguments(args);
  const today = gmt ? now.getUTCDay() : now.getDay();
  const first = indexOf(WEEKDAYS, values[0]);
  const last = values.length === 2 ? indexOf(WEEKDAYS, values[1]) : first;
  if (first < 0 || last < 0) return false;
  return within(first, today, last);
}

/** The position of a name in `names`, or -1 (names are case-sensitive, as in browsers). */
function indexOf(names: readonly string[], value: unknown): number {
  return typeof value === "string" ? names.indexOf(value) : -1;
}

/**
 * `dateRange(…)` in every Netscape form — day, month or year alone; two
 * days, months or years; day-month, month-year or day-month-year pairs —
 * with an optional `"GMT"`. A lone number below 32 is a day, from 32 on a
 * year; upper-case three-letter months.
 *
 * The range is computed the way browsers' library does, so answers agree
 * with them: the start begins as 1 January 00:00:00 and the end as
 * 31 December 23:59:59 of this year, the first half of the arguments
 * overwrite the start's fields and the second half the end's, in order, as
 * `Date` setters would (so an end of `"FEB"` is 31 February, which rolls
 * over into March); two bare days are days of the current month; a range
 * whose start lies after its end wraps around the new year. One deviation:
 * with `"GMT"`, this year and this month are UTC's too, where browsers mix
 * in the local ones (and so disagree with themselves around New Year).
 */
function dateRange(now: Date, args: readonly unknown[]): boolean {
  if (args.length === 0) return false;
  const { values, gmt } = clockArguments(args);
  const clock = wallClock(now, gmt);
  if (values.length === 1) {
    const field = dateField(values[0]);
    if (field === undefined) return false;
    const current = {
      day: clock.getUTCDate(),
      month: clock.getUTCMonth(),
      year: clock.getUTCFullYear(),
    }[field.kind];
    return current === field.value;
  }
  const year = clock.getUTCFullYear();
  const start = fieldDate(year, 0, 1, 0, 0, 0);
  const end = fieldDate(year, 11, 31, 23, 59, 59);
  const half = values.length >> 1;
  let daysOfThisMonth = false;
  for (const [i, value] of values.entries()) {
    const field = dateField(value);
    if (field === undefined) return false;
    const date = i < half ? start : end;
    if (field.kind === "day") {
      date.setUTCDate(field.value);
      daysOfThisMonth ||= i < half && values.length <= 2;
    } else if (field.kind === "month") date.setUTCMonth(field.value);
    else date.setUTCFullYear(field.value);
  }
  if (daysOfThisMonth) {
    start.setUTCMonth(clock.getUTCMonth());
    end.setUTCMonth(clock.getUTCMonth());
  }
  return within(start.getTime(), clock.getTime(), end.getTime());
}

/** One `dateRange` argument: a day (number below 32), a year, or a month name. */
function dateField(
  value: unknown,
): { kind: "day" | "month" | "year"; value: number } | undefined {
  const number = Number.parseInt(String(value), 10);
  if (Number.isNaN(number)) {
    const month = indexOf(MONTHS, value);
    return month < 0 ? undefined : { kind: "month", value: month };
  }
  return { kind: number < 32 ? "day" : "year", value: number };
}

/**
 * `timeRange(…)`: an hour; two hours (from the first's start to the end of
 * the second, not wrapping, as in browsers); `h1, m1, h2, m2` (to the end
 * of minute m2); or `h1, m1, s1, h2, m2, s2` — the last two wrapping past
 * midnight — with an optional `"GMT"`.
 *
 * @throws {TypeError} for 3, 5 or more than 6 numbers, as browsers throw.
 */
function timeRange(now: Date, args: readonly unknown[]): boolean {
  if (args.length === 0) return false;
  const { values, gmt } = clockArguments(args);
  const clock = wallClock(now, gmt);
  const hour = clock.getUTCHours();
  const n = values.map(Number);
  if (n.length === 1) return hour === n[0];
  if (n.length === 2) return n[0] <= hour && hour <= n[1];
  if (n.length !== 4 && n.length !== 6) {
    throw new TypeError(
      `timeRange() takes 1, 2, 4 or 6 numbers and an optional "GMT", not ${n.length}`,
    );
  }
  const seconds = hour * 3600 + clock.getUTCMinutes() * 60 +
    clock.getUTCSeconds();
  const [start, end] = n.length === 6
    ? [n[0] * 3600 + n[1] * 60 + n[2], n[3] * 3600 + n[4] * 60 + n[5]]
    : [n[0] * 3600 + n[1] * 60, n[2] * 3600 + n[3] * 60 + 59];
  return within(start, seconds, end);
}
