/**
 * `pac=auto`: where to look for a PAC file. First the URL the environment
 * names (`PAC_URL`, then `AUTO_PROXY_URL`), then DNS WPAD:
 * `http://wpad.<suffix>/wpad.dat` for each DNS suffix of this host (the
 * `search` and `domain` lines of /etc/resolv.conf, then the domain of the
 * host name), from the longest suffix down to the organisation's domain.
 * Never a bare top-level domain (`wpad.com`), nor a two-label public
 * suffix such as `co.uk` (`wpad.co.uk` would be anyone's): the devolution
 * stops at two labels, or three when the last two look like a country's
 * public second level. DHCP WPAD (option 252) is not tried. Pure.
 *
 * @module
 */

/** What discovery reads from the machine. */
export interface DiscoveryInputs {
  /** Environment variables; `PAC_URL` and `AUTO_PROXY_URL` are read. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** /etc/resolv.conf's text, when readable. */
  readonly resolvConf?: string;
  /** This host's name, e.g. `laptop.corp.example.com`. */
  readonly hostname?: string;
  /** What the tool was not permitted to read, and the flag it needs, for the log. */
  readonly unread?: readonly string[];
}

/** Most DNS suffixes considered; resolv.conf allows six search domains. */
const MAX_SUFFIXES = 8;

// Second levels that countries use as public suffixes (co.uk, com.au, ...).
const PUBLIC_SECOND_LEVELS = new Set([
  "ac",
  "co",
  "com",
  "edu",
  "gov",
  "net",
  "org",
  "ne",
  "or",
  "go",
]);

/**
 * The DNS suffixes of this host, in the order a resolver would try them.
 *
 * @param inputs resolv.conf and the host name.
 * @returns Lower-case suffixes without a trailing dot, duplicates removed.
 */
export function dnsSuffixes(inputs: DiscoveryInputs): string[] {
  const suffixes: string[] = [];
  for (const line of (inputs.resolvConf ?? "").split("\n")) {
    const [keyword, ...names] = line.trim().split(/\s+/);
    if (keyword === "search" || keyword === "domain") suffixes.push(...names);
  }
  const host = inputs.hostname?.toLowerCase().replace(/\.$/, "") ?? "";
  const dot = host.indexOf(".");
  if (dot > 0) suffixes.push(host.slice(dot + 1));
  const clean = suffixes
    .map((name) => name.toLowerCase().replace(/\.$/, ""))
    .filter((name) => /^[a-z0-9-]+(\.[a-z0-9-]+)*$/.test(name));
  return [...new Set(clean)].slice(0, MAX_SUFFIXES);
}

/**
 * The domains WPAD may look under for one suffix: the suffix, then each
 * parent down to the organisation boundary.
 *
 * @param suffix e.g. `dept.corp.example.com`.
 * @returns e.g. `dept.corp.example.com`, `corp.example.com`, `example.com`.
 *
 * @example
 * ```ts
 * devolve("corp.example.co.uk"); // ["corp.example.co.uk", "example.co.uk"]
 * ```
 */
export function devolve(suffix: string): string[] {
  const labels = suffix.split(".");
  const last = labels.length;
  const minimum = last >= 2 && labels[last - 1].length === 2 &&
      PUBLIC_SECOND_LEVELS.has(labels[last - 2])
    ? 3
    : 2;
  const domains: string[] = [];
  for (let start = 0; last - start >= minimum; start++) {
    domains.push(labels.slice(start).join("."));
  }
  return domains;
}

/**
 * The PAC URLs `pac=auto` tries, in order.
 *
 * @param inputs The environment, resolv.conf and the host name.
 * @returns The environment's URL if set, then the WPAD URLs.
 *
 * @example
 * ```ts
 * pacCandidates({ env: {}, hostname: "pc.corp.example.com" });
 * // ["http://wpad.corp.example.com/wpad.dat", "http://wpad.example.com/wpad.dat"]
 * ```
 */
export function pacCandidates(inputs: DiscoveryInputs): string[] {
  const urls: string[] = [];
  for (const name of ["PAC_URL", "AUTO_PROXY_URL"]) {
    const value = inputs.env[name]?.trim();
    if (value) urls.push(value);
  }
  for (const suffix of dnsSuffixes(inputs)) {
    for (const domain of devolve(suffix)) {
      urls.push(`http://wpad.${domain}/wpad.dat`);
    }
  }
  return [...new Set(urls)];
}
