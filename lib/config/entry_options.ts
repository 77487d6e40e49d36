/**
 * An entry's options as `key=value` words, the way they are written in a
 * config line, for `check`: tunnel settings from the option table, the
 * proxies' `credentials=`, `auth=` and `spn-host=`, and a local proxy's
 * `direct-for=`, `allow=` and `client-auth=` with the password masked.
 * Pure.
 *
 * @module
 */

import type { TunnelEntry } from "./entry.ts";
import { TUNNEL_OPTION_ROWS, type TunnelOptions } from "./options.ts";

/**
 * The options an entry sets, as written in a config line; secrets masked.
 *
 * @param entry A config entry.
 * @returns e.g. `["idle-timeout=14m", "credentials=proxy.cred", "auth=ntlm"]`;
 *   empty when it sets none.
 * @example
 * ```ts
 * describeEntryOptions(entry); // ["client-auth=team:***", "allow=10.1.0.0/16"]
 * ```
 */
export function describeEntryOptions(entry: TunnelEntry): string[] {
  const words: string[] = [];
  for (const row of TUNNEL_OPTION_ROWS) {
    const value = entry.options[row.field];
    if (value === undefined) continue;
    words.push(`${row.key}=${formatSetting(row.field, value)}`);
  }
  if (entry.route.kind === "chain") {
    const proxies = entry.route.hops.flat();
    const once = (word: string | undefined) => {
      if (word !== undefined && !words.includes(word)) words.push(word);
    };
    for (const proxy of proxies) {
      once(proxy.credentialsFile && `credentials=${proxy.credentialsFile}`);
    }
    for (const proxy of proxies) once(proxy.auth && `auth=${proxy.auth}`);
    for (const proxy of proxies) {
      once(proxy.spnHost && `spn-host=${proxy.spnHost}`);
    }
  }
  if (entry.kind !== "forward") {
    if (entry.directFor.length > 0) {
      words.push(`direct-for=${entry.directFor.join(",")}`);
    }
    if (entry.allow.length > 0) words.push(`allow=${entry.allow.join(",")}`);
    if (entry.clientCredentials) {
      words.push(`client-auth=${entry.clientCredentials.username}:***`);
    }
  }
  return words;
}

function formatSetting(
  field: keyof TunnelOptions,
  value: NonNullable<TunnelOptions[keyof TunnelOptions]>,
): string {
  if (field === "caCerts") {
    // The option holds the file's contents, not its name.
    const pem = (value as readonly string[]).join("\n");
    const count = pem.match(/-----BEGIN CERTIFICATE-----/g)?.length ?? 0;
    return `(${count} certificate${count === 1 ? "" : "s"})`;
  }
  const row = TUNNEL_OPTION_ROWS.find((each) => each.field === field)!;
  const format = row.type.format as ((value: unknown) => string) | undefined;
  return format?.(value) ?? String(value);
}
