/**
 * Which session transports get through a path to `serve`: for a path
 * whose last hop is ws:// or wss://, a stream to the destination is opened
 * over a session once over WebSocket and once over the poll transport, as
 * tunnels open them (lib/route/session_pool.ts), and each is one step of
 * the probe's report.
 *
 * @module
 */

import type { TunnelOptions } from "../config/options.ts";
import { errorMessage } from "../errors.ts";
import { formatHostPort, type HostPort } from "../net/address.ts";
import { closeQuietly } from "../net/duplex.ts";
import { ProxyHealth } from "../route/health.ts";
import { SessionPool } from "../route/session_pool.ts";
import type { Proxy } from "../route/types.ts";
import type { ProbeStep } from "./route_probe.ts";

const TRANSPORTS = [
  ["ws", "WebSocket"],
  ["poll", "poll (plain HTTP requests)"],
] as const;

/**
 * Whether a path ends at this tool's server, so that its tunnels run over
 * sessions and both transports are worth a look.
 *
 * @param proxies The path's proxies, in order.
 * @returns `true` when the last one is ws:// or wss:// and no other is.
 */
export function endsAtServe(proxies: readonly Proxy[]): boolean {
  const server = (proxy: Proxy) =>
    proxy.scheme === "ws" || proxy.scheme === "wss";
  return proxies.length > 0 && server(proxies[proxies.length - 1]) &&
    !proxies.slice(0, -1).some(server);
}

/**
 * Opens a stream to `destination` over a session through `proxies`, once
 * per transport.
 *
 * @param proxies The path, its last hop the server.
 * @param destination Where the stream leads.
 * @param options Limits, trust, token.
 * @returns One step per transport: whether a stream opened, and how long
 *   the session and stream took.
 */
export async function probeTransports(
  proxies: readonly Proxy[],
  destination: HostPort,
  options: TunnelOptions,
): Promise<ProbeStep[]> {
  const hops = proxies.map((proxy) => [proxy]);
  const server = proxies[proxies.length - 1];
  const steps: ProbeStep[] = [];
  for (const [transport, name] of TRANSPORTS) {
    const pool = new SessionPool();
    const started = performance.now();
    let outcome: { ok: boolean; detail: string };
    try {
      const opened = await pool.open(
        hops,
        destination,
        { ...options, transport, mux: true, resume: false },
        { health: new ProxyHealth() },
      );
      if (opened !== undefined) closeQuietly(opened.stream);
      outcome = opened === undefined
        ? {
          ok: false,
          detail: "the server speaks httptunneling.v1 only (an older serve)",
        }
        : {
          ok: true,
          detail: `works: a stream to ${formatHostPort(destination)} opened`,
        };
    } catch (error) {
      outcome = { ok: false, detail: errorMessage(error) };
    } finally {
      await pool.close();
    }
    steps.push({
      step: `transport ${transport}: ${name} to ${formatHostPort(server)}${
        server.path ?? "/"
      }`,
      ms: Math.round(performance.now() - started),
      ...outcome,
    });
  }
  return steps;
}
