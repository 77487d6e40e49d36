/**
 * `check CONFIG`: validates a config file and prints its entries, each
 * with the options it sets, secrets masked; the PAC files that `pac=`
 * routes name are read (or fetched) and compiled too.
 *
 * @module
 */

import { formatHostPort } from "../net/address.ts";
import { chooseConfigPath, loadConfig } from "../config/load.ts";
import { describeService, type TunnelEntry } from "../config/entry.ts";
import { ConfigLoadError, errorMessage, UsageError } from "../errors.ts";
import { PacEngines } from "../route/pac/engine.ts";
import { describeRoute } from "../route/types.ts";
import { describeEntryOptions } from "../config/entry_options.ts";
import { parseCommandLine, reportConfigError } from "./args.ts";
import { formatTable } from "./table.ts";

/**
 * Runs `check`: prints a table of the entries on stdout, or one
 * `file:line:col: message` line per error on stderr.
 *
 * @param args The arguments after `check`.
 * @returns 0 when the config is valid, 1 when it or a PAC it names has errors.
 * @throws {UsageError} for more than one config path.
 */
export async function checkCommand(args: string[]): Promise<number> {
  const { positionals } = parseCommandLine(args, {});
  if (positionals.length > 1) {
    throw new UsageError("check takes one config file: check tunnels.conf");
  }
  // The same file `run` would read.
  const path = chooseConfigPath(
    positionals[0],
    (message) => console.error(`warning: ${message}`),
  );
  let entries: TunnelEntry[];
  try {
    let warnings: string[];
    ({ entries, warnings } = loadConfig(path));
    for (const warning of warnings) console.error(`warning: ${warning}`);
  } catch (error) {
    if (!(error instanceof ConfigLoadError)) throw error;
    reportConfigError(error);
    return 1;
  }
  console.log(formatTable([
    ["LINE", "SOURCE", "DESTINATION", "ROUTE", "OPTIONS"],
    ...entries.map((entry) => [
      String(entry.line),
      formatHostPort(entry.source),
      describeService(entry),
      describeRoute(entry.route),
      describeEntryOptions(entry).join(" ") || "-",
    ]),
  ]));
  if (!(await compilePacs(path, entries))) return 1;
  console.log(
    `${path}: ${entries.length} entr${
      entries.length === 1 ? "y" : "ies"
    }, no errors`,
  );
  return 0;
}

// Each PAC source once; its errors as `config:line: pac corp.pac:12: ...`.
async function compilePacs(
  path: string,
  entries: TunnelEntry[],
): Promise<boolean> {
  const engines = new PacEngines();
  const seen = new Set<string>();
  let ok = true;
  try {
    for (const entry of entries) {
      const { route } = entry;
      if (route.kind !== "pac" || seen.has(route.source)) continue;
      seen.add(route.source);
      try {
        const name = await engines.engineFor(route, entry.options.caCerts)
          .compile();
        console.log(`${path}:${entry.line}: PAC ${name} compiles`);
      } catch (error) {
        ok = false;
        console.error(`${path}:${entry.line}: ${errorMessage(error)}`);
      }
    }
  } finally {
    await engines.close();
  }
  return ok;
}
