/**
 * Walks one route step by step, timing each (name resolution, TCP connect,
 * TLS with the certificate's subject and expiry, each proxy's answer with
 * the authentication offered and used, the Kerberos ticket for a proxy
 * that offers Negotiate, the destination's first bytes), and explains the
 * first failure.
 *
 * @module
 */

import { lookup } from "node:dns/promises";
import tls from "node:tls";
import type { TunnelOptions } from "../config/options.ts";
import { formatHostPort, type HostPort } from "../net/address.ts";
import { closeQuietly, type Duplex } from "../net/duplex.ts";
import {
  offersScheme,
  printable,
  proxyChallenges,
  type ResponseHead,
} from "../proxy/http_head.ts";
import { type ChainHook, HopFailure, openChain } from "../route/chain.ts";
import { type ProxyEnvironment, routeFromEnvironment } from "../route/env.ts";
import {
  describeProxy,
  describeRoute,
  type Proxy,
  type Route,
} from "../route/types.ts";
import { formatDuration } from "../time/duration.ts";
import { diagnose, type FailurePlace } from "./diagnose.ts";
import { canonicalHostName } from "../net/dns.ts";
import { inspectKerberos } from "./kerberos.ts";
import { endsAtServe, probeTransports } from "./transports.ts";

/** One step of a probe. */
export interface ProbeStep {
  /** What was tried, e.g. `connect 127.0.0.1:3128`. */
  readonly step: string;
  /** Whether it worked. */
  readonly ok: boolean;
  /** How long it took, in milliseconds. */
  readonly ms: number;
  /** What came of it: addresses, a status line, a certificate, a banner. */
  readonly detail: string;
}

/** The outcome of probing one path. */
export interface ProbeReport {
  /** Where the tunnel leads. */
  readonly destination: string;
  /** The path probed, e.g. `via http://a:3128 -> socks5://b:1080` or `direct`. */
  readonly path: string;
  /** Whether the path works end to end. */
  readonly ok: boolean;
  /** The steps, in order. */
  readonly steps: ProbeStep[];
  /** A sentence on the first failure and what to do. */
  readonly diagnosis?: string;
}

/**
 * The outcome of probing a route: each combination of its hops'
 * alternatives is a path, and the route works when any path does, as a
 * tunnel fails over to whichever works.
 */
export interface RouteReport {
  /** Where the tunnel leads. */
  readonly destination: string;
  /** The route as written, e.g. `via http://a:3128,http://b:3128`. */
  readonly route: string;
  /** Whether any path works. */
  readonly ok: boolean;
  /** Each path probed, in the order a tunnel would try them. */
  readonly paths: ProbeReport[];
  /**
   * When no path works: the first path's sentence, or with alternatives
   * one sentence per path.
   */
  readonly diagnosis?: string;
}

/** How long to wait for a destination that may speak first (e.g. SSH). */
const FIRST_BYTE_WAIT_MS = 2_000;
const MAX_PATHS = 8;

/**
 * Probes a route: every combination of its hops' alternatives (up to 8).
 *
 * @param route The route.
 * @param destination Where it leads.
 * @param options Time limits and trusted CAs.
 * @param environment For `env` routes.
 * @returns The route's verdict, with a report per path.
 */
export async function probeRoute(
  route: Route,
  destination: HostPort,
  options: TunnelOptions,
  environment: ProxyEnvironment,
): Promise<RouteReport> {
  const resolved = route.kind === "env"
    ? routeFromEnvironment(environment, destination)
    : route;
  let paths: Proxy[][] = [[]];
  if (resolved.kind === "chain") {
    for (const hop of resolved.hops) {
      paths = paths.flatMap((path) => hop.map((proxy) => [...path, proxy]))
        .slice(0, MAX_PATHS);
    }
  }
  const reports: ProbeReport[] = [];
  for (const path of paths) {
    reports.push(await probePath(path, destination, options));
  }
  const ok = reports.some((report) => report.ok);
  return {
    destination: formatHostPort(destination),
    route: route.kind === "env" && resolved.kind === "chain"
      ? `${describeRoute(route)}: ${describeRoute(resolved)}`
      : describeRoute(resolved),
    ok,
    paths: reports,
    ...(ok ? {} : {
      diagnosis: reports.length === 1
        ? reports[0].diagnosis
        : reports.map((report) => `${report.path}: ${report.diagnosis}`)
          .join("; "),
    }),
  };
}

class StepFailure extends Error {
  constructor(readonly place: FailurePlace, readonly failure: Error) {
    super(failure.message);
  }
}

async function probePath(
  proxies: Proxy[],
  destination: HostPort,
  options: TunnelOptions,
): Promise<ProbeReport> {
  const steps: ProbeStep[] = [];
  const path = proxies.length === 0
    ? "direct"
    : `via ${proxies.map(describeProxy).join(" -> ")}`;
  const target = formatHostPort(destination);
  const timed = async <T>(
    step: string,
    place: FailurePlace,
    run: () => Promise<T>,
    detail: (value: T) => string,
  ): Promise<T> => {
    const started = performance.now();
    try {
      const value = await run();
      steps.push({
        step,
        ok: true,
        ms: elapsed(started),
        detail: detail(value),
      });
      return value;
    } catch (error) {
      const failure = error instanceof Error ? error : new Error(String(error));
      steps.push({
        step,
        ok: false,
        ms: elapsed(started),
        detail: failure.message,
      });
      throw new StepFailure(place, failure);
    }
  };
  // The same walk the tunnels take, each step timed and explained.
  const hook: ChainHook = {
    async step(step, run) {
      const label = formatHostPort(step.target);
      const proxy = step.proxy && formatHostPort(step.proxy);
      switch (step.kind) {
        case "connect":
          await timed(
            `resolve ${step.target.host}`,
            { proxy, target: label, step: "resolve" },
            () => lookup(step.target.host, { all: true }),
            (addresses) => addresses.map((a) => a.address).join(", "),
          );
          return await timed(
            `connect ${label}`,
            { proxy, target: label, step: "connect" },
            () => run(),
            () => "TCP connected",
          );
        case "handshake": {
          // Only the first hop can be reached on a side connection.
          let certificate = "";
          return await timed(
            `${step.name} with ${label}`,
            { proxy, target: label, step: "tls" },
            async () => {
              if (step.proxy === proxies[0]) {
                certificate = await inspectCertificate(step.proxy!, options);
              }
              return await run();
            },
            () => `${certificate || "handshake done"}, trusted`,
          );
        }
        case "ask": {
          const heads: ResponseHead[] = [];
          let used: string | undefined;
          try {
            return await timed(
              `${step.name} ${label} via ${proxy}`,
              { proxy, target: label, step: "ask" },
              () =>
                run({
                  response: (head) => heads.push(head),
                  authenticating: (scheme) => used = scheme,
                }),
              () => describeAnswer(heads, used),
            );
          } finally {
            if (
              step.proxy &&
              heads.some((head) => offersScheme(head, "negotiate"))
            ) {
              const started = performance.now();
              const kerberos = inspectKerberos(
                step.proxy.spnHost === "canonical"
                  ? await canonicalHostName(step.proxy.host)
                  : step.proxy.host,
              );
              steps.push({
                step: `Kerberos for ${kerberos.spn}`,
                ok: kerberos.ok,
                ms: elapsed(started),
                detail: kerberos.detail,
              });
            }
          }
        }
      }
    },
  };
  const report = await walkPath(
    proxies,
    destination,
    options,
    path,
    hook,
    steps,
  );
  if (!endsAtServe(proxies)) return report;
  // Tunnels to serve run over sessions: whichever transport gets through.
  const transports = await probeTransports(proxies, destination, options);
  steps.push(...transports);
  return transports.some((step) => step.ok)
    ? { destination: target, path, ok: true, steps }
    : report;
}

// The chain to the destination, as a v1 tunnel walks it.
async function walkPath(
  proxies: Proxy[],
  destination: HostPort,
  options: TunnelOptions,
  path: string,
  hook: ChainHook,
  steps: ProbeStep[],
): Promise<ProbeReport> {
  const target = formatHostPort(destination);
  let stream: Duplex | undefined;
  try {
    stream = await openChain(proxies, destination, options, { hook });
    const banner = await firstBytes(stream);
    steps.push({
      step: `first bytes from ${target}`,
      ok: true,
      ms: banner.ms,
      detail: banner.text === undefined
        ? `none within ${
          formatDuration(FIRST_BYTE_WAIT_MS)
        }: the destination waits for the client to speak (normal for HTTP, TLS, most databases)`
        : `spoke first: "${banner.text}"`,
    });
    return { destination: target, path, ok: true, steps };
  } catch (error) {
    const step = error instanceof HopFailure ? error.failure : error;
    if (!(step instanceof StepFailure)) throw error;
    return {
      destination: target,
      path,
      ok: false,
      steps,
      diagnosis: diagnose(step.failure, step.place),
    };
  } finally {
    if (stream) closeQuietly(stream);
  }
}

/** The proxy's last status line, and the authentication offered and used. */
function describeAnswer(heads: ResponseHead[], used?: string): string {
  const offered = heads.flatMap((head) =>
    proxyChallenges(head).map((challenge) => challenge.schemeName)
  );
  const auth = offered.length || used
    ? `; authentication offered: ${
      [...new Set(offered)].join(", ") || "none"
    }, used: ${used ?? "none"}`
    : "";
  return `${heads.at(-1)?.statusLine ?? "granted"}${auth}`;
}

/**
 * Reads the subject and expiry of an https:// proxy's certificate on a side
 * connection; whether it is trusted is decided by the real TLS handshake.
 */
function inspectCertificate(
  proxy: Proxy,
  options: TunnelOptions,
): Promise<string> {
  return new Promise((resolve) => {
    const socket = tls.connect({
      host: proxy.host,
      port: proxy.port,
      rejectUnauthorized: false,
      servername: /^[\d.]+$|:/.test(proxy.host) ? undefined : proxy.host,
    }, () => {
      const certificate = socket.getPeerCertificate();
      // The proxy chose these strings: an escape sequence in a subject
      // would otherwise reach the user's terminal.
      const subject = printable(
        Object.entries(certificate?.subject ?? {})
          .map(([key, value]) => `${key}=${value}`).join(", "),
      ).slice(0, 200);
      socket.destroy();
      resolve(
        `certificate ${subject || "(no subject)"}, expires ${
          printable(certificate?.valid_to ?? "?")
        }`,
      );
    });
    socket.setTimeout(options.handshakeTimeoutMs, () => {
      socket.destroy();
      resolve("");
    });
    socket.on("error", () => resolve(""));
  });
}

async function firstBytes(
  stream: Duplex,
): Promise<{ text?: string; ms: number }> {
  const started = performance.now();
  const buffer = new Uint8Array(256);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const n = await Promise.race([
    stream.read(buffer).catch(() => null),
    new Promise<null>((resolve) =>
      timer = setTimeout(() => resolve(null), FIRST_BYTE_WAIT_MS)
    ),
  ]);
  clearTimeout(timer);
  if (!n) return { ms: elapsed(started) };
  const text = printable(
    new TextDecoder().decode(buffer.subarray(0, n)).split(/\r?\n/)[0],
  ).slice(0, 80);
  return { text, ms: elapsed(started) };
}

function elapsed(started: number): number {
  return Math.round(performance.now() - started);
}
