/**
 * `status [ADDR] [--watch | --json] [--wide]`: shows the entries, their
 * failures and proxies, the transport of each session route, and the
 * live tunnels of a tool started with
 * `run --status ADDR`, like `ss` does for sockets, fitted to the terminal
 * unless `--wide`.
 *
 * @module
 */

import { formatHostPort } from "../net/address.ts";
import { formatDuration } from "../time/duration.ts";
import { errorMessage, type FailureReason, UsageError } from "../errors.ts";
import { formatBytes } from "../observe/log.ts";
import type { statusDocument } from "../observe/status_server.ts";
import { parseCommandLine } from "./args.ts";
import { parseStatusAddress } from "./entry_args.ts";
import { JSON_SWITCH, WATCH_SWITCH, WIDE_SWITCH } from "./flags.ts";
import { formatTable } from "./table.ts";

/** The width tables fit when stdout is not a terminal. */
const DEFAULT_WIDTH = 100;

/** Where `status` looks when no address is given. */
export const DEFAULT_STATUS_ADDRESS = "127.0.0.1:9191";

type Status = ReturnType<typeof statusDocument>;

/** The flags `status` takes: its `--help` lists these. */
export const STATUS_FLAGS = {
  [WATCH_SWITCH.flag]: { type: "boolean", short: WATCH_SWITCH.short },
  [JSON_SWITCH.flag]: { type: "boolean" },
  [WIDE_SWITCH.flag]: { type: "boolean" },
} as const;

/**
 * Runs `status`.
 *
 * @param args The arguments after `status`.
 * @returns 0 when the status was read, 1 when the tool could not be reached.
 * @throws {UsageError} for a wrong command line.
 */
export async function statusCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(args, STATUS_FLAGS);
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
          fetchProblem(error)
        }; is the tool running with --status ${formatHostPort(address)}?`,
      );
      return 1;
    }
    if (values.json && !values.watch) {
      console.log(JSON.stringify(status, null, 2));
      return 0;
    }
    const table = renderStatus(status, {
      width: values.wide ? undefined : terminalWidth(),
    });
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

// fetch says "fetch failed"; what failed is in its cause.
function fetchProblem(error: unknown): string {
  const cause = error instanceof Error && error.cause instanceof Error
    ? error.cause
    : error;
  return /connection refused/i.test(errorMessage(cause))
    ? "nothing listens there (connection refused)"
    : errorMessage(cause);
}

/** Options of {@link renderStatus}. */
export interface RenderOptions {
  /** The terminal's width to fit, cutting long cells in the middle; all of every cell when absent. */
  readonly width?: number;
}

/** Failure reasons in the order the table shows them. */
export const REASONS: readonly FailureReason[] = [
  "connect",
  "timeout",
  "refused",
  "auth",
  "protocol",
  "tls",
  "client",
  "other",
];

/**
 * Renders a status document as tables: entries; their traffic and
 * failures by reason; the proxies of their routes with their health; the
 * session routes' transports (WebSocket or poll, and why `auto` fell
 * back); live tunnels.
 *
 * @param status The `/status` document.
 * @param options The width to fit.
 * @returns The text.
 */
export function renderStatus(
  status: Status,
  options: RenderOptions = {},
): string {
  const fit = (shrink: number[]) => ({ maxWidth: options.width, shrink });
  // The entries' table leaves out bytes so that the route has room; they
  // go with the failures in the next one.
  const entries = formatTable([
    [
      "SOURCE",
      "DESTINATION",
      "ROUTE",
      "STATE",
      "OPEN",
      "ACCEPTED",
      "FAILED",
    ],
    ...status.entries.map((entry) => [
      entry.source,
      entry.destination,
      entry.route,
      entry.error ? `${entry.state}: ${entry.error}` : entry.state,
      String(entry.active),
      String(entry.accepted),
      String(Object.values(entry.failed).reduce((sum, n) => sum + (n ?? 0), 0)),
    ]),
  ], fit([2, 3, 0, 1]));
  const sections = [entries];
  if (status.entries.length > 0) {
    const reasons = REASONS.filter((reason) =>
      status.entries.some((entry) => (entry.failed[reason] ?? 0) > 0)
    );
    sections.push(
      `traffic, and failures by reason\n${
        formatTable([
          [
            "SOURCE",
            "UP",
            "DOWN",
            ...reasons.map((reason) => reason.toUpperCase()),
          ],
          ...status.entries.map((entry) => [
            entry.source,
            formatBytes(entry.bytesUp),
            formatBytes(entry.bytesDown),
            ...reasons.map((reason) => String(entry.failed[reason] ?? 0)),
          ]),
        ], fit([0]))
      }`,
    );
  }
  const proxies = status.entries.flatMap((entry) =>
    (entry.proxies ?? []).map((proxy) => [
      entry.source,
      String(proxy.hop),
      proxy.proxy,
      proxy.state === "skipped" && proxy.skippedUntil
        ? `skipped until ${proxy.skippedUntil.slice(11, 19)} UTC`
        : proxy.state,
      String(proxy.failures),
      proxy.reason ? `${proxy.reason}: ${proxy.error ?? ""}` : "",
    ])
  );
  if (proxies.length > 0) {
    sections.push(
      `proxies\n${
        formatTable(
          [
            ["ENTRY", "HOP", "PROXY", "STATE", "FAILURES", "LAST ERROR"],
            ...proxies,
          ],
          fit([5, 2]),
        )
      }`,
    );
  }
  // A document from an older tool has no session routes.
  const routes = status.sessionRoutes ?? [];
  if (routes.length > 0) {
    sections.push(
      `session transports\n${
        formatTable([
          ["ROUTE", "MODE", "TRANSPORT", "SESSIONS", "SINCE", "FALLBACK"],
          ...routes.map((route) => [
            route.route,
            route.mode,
            route.transport === "poll" ? "poll" : "WebSocket",
            String(route.sessions),
            `${route.since.slice(11, 19)} UTC`,
            route.fallback === null
              ? ""
              : `fell back to poll: ${route.fallback}`,
          ]),
        ], fit([5, 0]))
      }`,
    );
  }
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
  ], fit([3]));
  sections.push(`${status.tunnels.length} live tunnel(s)\n${tunnels}`);
  const reload = status.config.lastReload
    ? `, last reload ${status.config.lastReload.time}: ${status.config.lastReload.result}`
    : "";
  return `httptunneling ${status.version} (pid ${status.pid})${
    status.config.path ? `, config ${status.config.path}` : ""
  }${reload}\n\n${sections.join("\n\n")}`;
}

/** The width to fit: the terminal's, or 100 columns when not a terminal. */
function terminalWidth(): number {
  try {
    if (Deno.stdout.isTerminal()) return Deno.consoleSize().columns;
  } catch {
    // No console to ask: the usual width.
  }
  return DEFAULT_WIDTH;
}
