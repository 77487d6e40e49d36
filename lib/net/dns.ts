/**
 * Host name canonicalization, for Kerberos service names: the name the
 * system's resolver (hosts file, DNS) gives back for the address a host
 * name resolves to, as browsers on Windows form a proxy's SPN.
 *
 * @module
 */

import { lookup, lookupService } from "node:dns/promises";

// One answer per name for the life of the process: a proxy's name does not
// change under a running tunnel, and each CONNECT must not pay a lookup.
const canonical = new Map<string, Promise<string>>();

/**
 * The canonical name of `host`: resolved to an address, and the address
 * back to a name. Falls back to `host` as written when either step fails.
 *
 * @param host A host name or address, IPv6 without brackets.
 * @returns e.g. `proxy.corp.example` for `proxy`, `localhost` for `127.0.0.1`.
 */
export function canonicalHostName(host: string): Promise<string> {
  let name = canonical.get(host);
  if (name === undefined) {
    name = lookup(host)
      .then(({ address }) => lookupService(address, 0))
      .then(({ hostname }) => hostname.toLowerCase())
      .catch(() => host);
    canonical.set(host, name);
  }
  return name;
}
