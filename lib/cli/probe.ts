/**
 * `probe CONFIG` or `probe HOST PORT [--proxy URL ...]`: checks routes step
 * by step and says in plain words what is wrong. `--json` for scripts. A
 * local proxy entry's route is checked with a test CONNECT to `--to
 * HOST:PORT` (example.com:443 unless given), its `direct-for=` applied.
 *
 * @module
 */

import {
  formatHostPort,
  type HostPort,
  splitHostPort,
} from "../net/address.ts";
import { routeFor } from "../local/rules.ts";
import { loadConfig } from "../config/load.ts";
import { ConfigLoadError, UsageError } from "../errors.ts";
import { type ProbeReport, probeRoute } from "../probe/route_probe.ts";
import { errorMessage } from "../errors.ts";
import { PacEngines } from "../route/pac/engine.ts";
import { alternativeRoutes } from "../route/pac/proxies.ts";
import { formatPacResult } from "../route/pac/result.ts";
import { tunnelQuery } from "../route/pac/url.ts";
import type { Route } from "../route/types.ts";
import {
  parseCommandLine,
  proxyEnvironment,
  reportConfigError,
} from "./args.ts";
import { parseDestination, parseRouteArguments } from "./entry_args.ts";
import {
  JSON_SWITCH,
  TO_SWITCH,
  TUNNEL_FLAGS,
  tunnelOptionsFrom,
} from "./flags.ts";

/** Where a local proxy entry's route is tested, unless `--to` says. */
const DEFAULT_TEST_DESTINATION = "example.com:443";

/**
 * Runs `probe`.
 *
 * @param args The arguments after `probe`.
 * @returns 0 when every route works, 1 when any fails.
 * @throws {UsageError} for a wrong command line.
 */
export async function probeCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(args, {
    ...TUNNEL_FLAGS,
    [JSON_SWITCH.flag]: { type: "boolean" },
    [TO_SWITCH.flag]: { type: "string" },
  });
  const options = tunnelOptionsFrom(values);
  const environment = proxyEnvironment((level, message) => {
    if (level === "error") console.error(`warning: ${message}`);
  });
  const targets: { label: string; route: Route; host: string; port: number }[] =
    [];
  if (positionals.length === 1) {
    if (values.proxy) {
      throw new UsageError(
        "--proxy goes with HOST PORT, not with a config file",
      );
    }
    try {
      const { entries } = loadConfig(positionals[0]);
      const test = parseTestDestination(values.to ?? DEFAULT_TEST_DESTINATION);
      for (const entry of entries) {
        const destination = entry.kind === "forward" ? entry.destination : test;
        targets.push({
          label: `line ${entry.line}: ${formatHostPort(entry.source)}`,
          route: entry.kind === "forward"
            ? entry.route
            : routeFor(entry, destination),
          ...destination,
        });
      }
    } catch (error) {
      if (!(error instanceof ConfigLoadError)) throw error;
      reportConfigError(error);
      return 1;
    }
  } else if (positionals.length === 2) {
    const destination = parseDestination(positionals[0], positionals[1]);
    targets.push({
      label: "",
      route: parseRouteArguments(values.proxy),
      ...destination,
    });
  } else {
    throw new UsageError("probe takes a config file, or a host and a port");
  }
  const results: (ProbeReport & { entry?: string })[] = [];
  await using pac = closing(new PacEngines());
  for (const target of targets) {
    let routes = [target.route];
    if (target.route.kind === "pac") {
      // The PAC's answer first, then each of its alternatives probed.
      const query = tunnelQuery(target);
      try {
        const { alternatives, scriptName } = await pac.engines.engineFor(
          target.route,
          options.caCerts,
        ).askRaw(query);
        if (!values.json) {
          console.log(
            `${
              target.label ? `${target.label} ` : ""
            }PAC ${scriptName}: FindProxyForURL("${query.url}", "${query.host}") = "${
              formatPacResult(alternatives)
            }"`,
          );
        }
        routes = alternativeRoutes(alternatives, target.route, scriptName);
      } catch (error) {
        const report: ProbeReport & { entry?: string } = {
          destination: formatHostPort(target),
          path: `via pac ${target.route.source}`,
          ok: false,
          steps: [],
          diagnosis: errorMessage(error),
        };
        results.push(
          target.label ? { entry: target.label, ...report } : report,
        );
        if (!values.json) printReport(target.label, report);
        continue;
      }
    }
    const reports: ProbeReport[] = [];
    for (const route of routes) {
      reports.push(
        ...await probeRoute(route, target, { ...options }, environment),
      );
    }
    for (const report of reports) {
      results.push(target.label ? { entry: target.label, ...report } : report);
      if (!values.json) printReport(target.label, report);
    }
  }
  if (values.json) console.log(JSON.stringify(results, null, 2));
  return results.every((report) => report.ok) ? 0 : 1;
}

// The PAC engines, closed when the probe ends.
function closing(engines: PacEngines) {
  return { engines, [Symbol.asyncDispose]: () => engines.close() };
}

function printReport(label: string, report: ProbeReport): void {
  console.log(
    `${label ? `${label} ` : ""}-> ${report.destination} ${report.path}`,
  );
  const width = Math.max(...report.steps.map((step) => step.step.length));
  for (const step of report.steps) {
    console.log(
      `  ${step.ok ? "ok  " : "FAIL"}  ${step.step.padEnd(width)}  ${
        `${step.ms} ms`.padStart(8)
      }  ${step.detail}`,
    );
  }
  console.log(report.ok ? "  => works\n" : `  => ${report.diagnosis}\n`);
}

function parseTestDestination(text: string): HostPort {
  const parts = splitHostPort(text);
  if (parts === undefined) {
    throw new UsageError(
      `--to ${text} is not HOST:PORT: write e.g. --to example.com:443`,
    );
  }
  return parseDestination(parts.host.replace(/^\[(.*)\]$/, "$1"), parts.port);
}
