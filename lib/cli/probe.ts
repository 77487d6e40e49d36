/**
 * `probe [CONFIG]` or `probe HOST PORT [--proxy URL ...]`: checks routes step
 * by step and says in plain words what is wrong; without CONFIG, the file
 * `run` would read. `--json` for scripts. A
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
import { chooseConfigPath, loadConfig } from "../config/load.ts";
import { ConfigLoadError, errorMessage, UsageError } from "../errors.ts";
import {
  type ProbeReport,
  probeRoute,
  type RouteReport,
} from "../probe/route_probe.ts";
import { PacEngines } from "../route/pac/engine.ts";
import { alternativeRoutes } from "../route/pac/proxies.ts";
import { formatPacResult } from "../route/pac/result.ts";
import { tunnelQuery } from "../route/pac/url.ts";
import type { TunnelOptions } from "../config/options.ts";
import type { ProxyEnvironment } from "../route/env.ts";
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

/** A route to probe and where it leads; `label` names its entry. */
interface ProbeTarget extends HostPort {
  readonly label: string;
  readonly route: Route;
  /** The entry's own options (token=, ca-file=, timeouts…), over the flags'. */
  readonly options?: Partial<TunnelOptions>;
}

/** Where a local proxy entry's route is tested, unless `--to` says. */
const DEFAULT_TEST_DESTINATION = "example.com:443";

/** The flags `probe` takes: its `--help` lists these. */
export const PROBE_FLAGS = {
  ...TUNNEL_FLAGS,
  [JSON_SWITCH.flag]: { type: "boolean" },
  [TO_SWITCH.flag]: { type: "string" },
} as const;

/**
 * Runs `probe`.
 *
 * @param args The arguments after `probe`.
 * @returns 0 when every route works (a route with alternatives works when
 *   one of them does), 1 when any fails.
 * @throws {UsageError} for a wrong command line.
 */
export async function probeCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(args, PROBE_FLAGS);
  const options = tunnelOptionsFrom(values);
  const environment = proxyEnvironment((level, message) => {
    if (level === "error") console.error(`warning: ${message}`);
  });
  const targets: ProbeTarget[] = [];
  if (positionals.length <= 1) {
    if (values.proxy) {
      throw new UsageError(
        "--proxy goes with HOST PORT, not with a config file",
      );
    }
    // The same file `run` would read.
    const path = chooseConfigPath(
      positionals[0],
      (message) => console.error(`warning: ${message}`),
    );
    try {
      const { entries } = loadConfig(path);
      const test = parseTestDestination(values.to ?? DEFAULT_TEST_DESTINATION);
      for (const entry of entries) {
        const destination = entry.kind === "forward" ? entry.destination : test;
        targets.push({
          label: `line ${entry.line}: ${formatHostPort(entry.source)}`,
          route: entry.kind === "forward"
            ? entry.route
            : routeFor(entry, destination),
          options: entry.options,
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
    throw new UsageError(
      "probe takes a config file (default: the one run reads), or a host and a port",
    );
  }
  const results: (RouteReport & { entry?: string })[] = [];
  await using pac = closing(new PacEngines());
  for (const target of targets) {
    let report: RouteReport;
    if (target.route.kind === "pac") {
      report = await probePac(
        target,
        target.route,
        pac.engines,
        { ...options, ...target.options },
        environment,
        values.json === true,
      );
    } else {
      report = await probeRoute(
        target.route,
        target,
        { ...options, ...target.options },
        environment,
      );
    }
    results.push(target.label ? { entry: target.label, ...report } : report);
    if (!values.json) printReport(target.label, report);
  }
  if (values.json) console.log(JSON.stringify(results, null, 2));
  return results.every((report) => report.ok) ? 0 : 1;
}

// The PAC engines, closed when the probe ends.
function closing(engines: PacEngines) {
  return { engines, [Symbol.asyncDispose]: () => engines.close() };
}

/**
 * Probes a `pac=` route: prints the PAC's answer for the destination, then
 * probes each alternative it names. Like a hop's alternatives, the route
 * works when one of them does.
 */
async function probePac(
  target: ProbeTarget,
  route: Extract<Route, { kind: "pac" }>,
  engines: PacEngines,
  options: TunnelOptions,
  environment: ProxyEnvironment,
  json: boolean,
): Promise<RouteReport> {
  const destination = formatHostPort(target);
  const described = `via pac ${route.source}`;
  const query = tunnelQuery(target);
  let routes: Route[];
  try {
    const { alternatives, scriptName } = await engines.engineFor(
      route,
      options.caCerts,
    ).askRaw(query);
    if (!json) {
      console.log(
        `${
          target.label ? `${target.label} ` : ""
        }PAC ${scriptName}: FindProxyForURL("${query.url}", "${query.host}") = "${
          formatPacResult(alternatives)
        }"`,
      );
    }
    routes = alternativeRoutes(alternatives, route, scriptName);
  } catch (error) {
    return {
      destination,
      route: described,
      ok: false,
      paths: [],
      diagnosis: errorMessage(error),
    };
  }
  const reports: RouteReport[] = [];
  for (const alternative of routes) {
    reports.push(
      await probeRoute(alternative, target, { ...options }, environment),
    );
  }
  const ok = reports.some((report) => report.ok);
  return {
    destination,
    route: described,
    ok,
    paths: reports.flatMap((report) => report.paths),
    ...(ok ? {} : {
      diagnosis: reports.map((report) => report.diagnosis).join("; "),
    }),
  };
}

function printReport(label: string, report: RouteReport): void {
  console.log(
    `${label ? `${label} ` : ""}-> ${report.destination} ${report.route}`,
  );
  const [only] = report.paths;
  if (report.paths.length === 1) {
    printSteps(only, "  ");
    console.log(report.ok ? "  => works\n" : `  => ${report.diagnosis}\n`);
    return;
  }
  report.paths.forEach((path, i) => {
    console.log(
      `  alternative ${i + 1} of ${report.paths.length}: ${path.path}`,
    );
    printSteps(path, "    ");
    console.log(`    => ${path.ok ? "works" : path.diagnosis}`);
  });
  const failed = report.paths.filter((path) => !path.ok).length;
  console.log(
    report.ok
      ? `  => works${
        failed > 0
          ? ` (${failed} of ${report.paths.length} alternatives failed: tunnels fail over to one that works)`
          : ""
      }\n`
      : `  => no alternative works\n`,
  );
}

function printSteps(report: ProbeReport, indent: string): void {
  const width = Math.max(...report.steps.map((step) => step.step.length));
  for (const step of report.steps) {
    console.log(
      `${indent}${step.ok ? "ok  " : "FAIL"}  ${step.step.padEnd(width)}  ${
        `${step.ms} ms`.padStart(8)
      }  ${step.detail}`,
    );
  }
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
