/**
 * `pac FILE|URL|auto HOST [PORT]`: prints what a PAC script answers for a
 * destination, as pactester does, shown the URL the tool would show it:
 * `https://HOST:PORT/` for a tunnel, `http://HOST/` for a plain request.
 *
 * @module
 */

import { UsageError } from "../errors.ts";
import { PacEngines } from "../route/pac/engine.ts";
import { formatPacResult } from "../route/pac/result.ts";
import { requestQuery, tunnelQuery } from "../route/pac/url.ts";
import { parseCommandLine } from "./args.ts";
import { parseDestination } from "./entry_args.ts";

/**
 * Runs `pac`: the answer on stdout, the call it answers on stderr.
 *
 * @param args The arguments after `pac`.
 * @returns 0 when the script answered, 1 when it could not.
 * @throws {UsageError} for a wrong command line.
 */
export async function pacCommand(args: string[]): Promise<number> {
  const { positionals } = parseCommandLine(args, {});
  if (positionals.length < 2 || positionals.length > 3) {
    throw new UsageError(
      "pac takes a PAC file, a URL or auto, then a host and optionally a port: pac corp.pac intranet.example 443",
    );
  }
  const [source, host, port] = positionals;
  const destination = parseDestination(host, port ?? "80");
  const query = port === undefined
    ? requestQuery(
      `http://${host.includes(":") ? `[${host}]` : host}/`,
      destination,
    )
    : tunnelQuery(destination);
  const engines = new PacEngines({
    log: (level, message) => console.error(`${level}: ${message}`),
  });
  try {
    const { value, alternatives, scriptName } = await engines.engineFor({
      kind: "pac",
      source,
    }).askRaw(query);
    console.error(
      `${scriptName}: FindProxyForURL("${query.url}", "${query.host}")`,
    );
    console.log(
      typeof value === "string" ? value.trim() : formatPacResult(alternatives),
    );
    return 0;
  } finally {
    await engines.close();
  }
}
