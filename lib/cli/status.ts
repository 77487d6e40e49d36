/**
 * `status [ADDR] [--watch]`: shows the entries and live tunnels of a tool
 * started with `run --status ADDR`, like `ss` does for sockets.
 *
 * @module
 */

import { formatHostPort } from "../net/address.ts";
import { formatDuration } from "../time/duration.ts";
import { errorMessage, UsageError } from "../errors.ts";
import { formatBytes } from "../observe/log.ts";
import type { statusDocument } from "../observe/status_server.ts";
import { parseCommandLine } from "./args.ts";
import { parseStatusAddress } from "./entry_args.ts";
import { JSON_SWITCH, WATCH_SWITCH } from "./flags.ts";
import { formatTable } from "./table.ts";

/** Where `status` looks when no address is given. */
export const DEFAULT_STATUS_ADDRESS = "127.0.0.1:9191";

type Status = ReturnType<typeof statusDocument>;

/**
 * Runs `status`.
 *
 * @param args The arguments after `status`.
 * @returns 0 when the status was read, 1 when the tool could not be reached.
 * @throws {UsageError} for a wrong command line.
 */
export async function statusCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(args, {
    [WATCH_SWITCH.flag]: { type: "boolean", short: WATCH_SWITCH.short },
    [JSON_SWITCH.flag]: { type: "boolean" },
  });
  if (positionals.length > 1) {
    throw new UsageError("status takes at most one address");
  }
  const address = parseStatusAddress(positionals[0] ?? DEFAULT_STATUS_ADDRESS);
  const url = `http://${formatHostPort(address)}/status`;
  while (true) {
    let status: Status;
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
      status = await response.json();
    } catch (error) {
      console.error(
        `cannot read ${url}: ${
          errorMessage(error)
        } (is the tool running with --status ${formatHostPort(address)}?)`,
      );
      return 1;
    }
    if (values.json && !values.watch) {
      console.log(JSON.stringify(status, null, 2));
      return 0;
    }
    const table = renderStatus(status);
    if (!values.watch) {
      console.log(table);
      return 0;
    }
    // Redraw in place: home the cursor and clear the screen first.
    await Deno.stdout.write(
      new TextEncoder().encode(`\x1b[H\x1b[2J${table}\n`),
    );
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
}

/**
 * Renders a status document as two tables: entries, then live tunnels.
 *
 * @param status The `/status` document.
 * @returns The text.
 */
export function renderStatus(status: Status): string {
  const entries = formatTable([
    [
      "SOURCE",
      "DESTINATION",
      "ROUTE",
      "STATE",
      "ACTIVE",
      "ACCEPTED",
      "FAILED",
      "UP",
      "DOWN",
    ],
    ...status.entries.map((entry) => [
      entry.source,
      entry.destination,
      entry.route,
      entry.error ? `${entry.state}: ${entry.error}` : entry.state,
      String(entry.active),
      String(entry.accepted),
      String(Object.values(entry.failed).reduce((sum, n) => sum + (n ?? 0), 0)),
      formatBytes(entry.bytesUp),
      formatBytes(entry.bytesDown),
    ]),
  ]);
  const tunnels = formatTable([
    ["ID", "CLIENT", "ENTRY", "DESTINATION", "UP", "DOWN", "AGE", "IDLE"],
    ...status.tunnels.map((tunnel) => [
      tunnel.id,
      tunnel.client,
      tunnel.entry,
      tunnel.destination,
      formatBytes(tunnel.bytesUp),
      formatBytes(tunnel.bytesDown),
      formatDuration(tunnel.ageMs),
      formatDuration(tunnel.idleMs),
    ]),
  ]);
  const reload = status.config.lastReload
    ? `, last reload ${status.config.lastReload.time}: ${status.config.lastReload.result}`
    : "";
  return `httptunneling ${status.version} (pid ${status.pid})${
    status.config.path ? `, config ${status.config.path}` : ""
  }${reload}\n\n${entries}\n\n${status.tunnels.length} live tunnel(s)\n${tunnels}`;
}
