/**
 * What `serve --status` shows: the `/status` document and the `/metrics`
 * text of the far end, for the status server.
 *
 * @module
 */

import { VERSION } from "../version.ts";
import type { ReloadState } from "./reload.ts";
import type { FarEnd } from "./server.ts";

/**
 * The /status document of serve.
 *
 * @param farEnd The running far end.
 * @param listen The bound address.
 * @param configPath The config file, if any.
 * @param state The last reload.
 * @returns Plain data, ready for JSON; token names only, never tokens.
 */
export function serveStatus(
  farEnd: FarEnd,
  listen: string,
  configPath: string | undefined,
  state: ReloadState,
) {
  const now = Date.now();
  return {
    version: VERSION,
    pid: Deno.pid,
    memory: Deno.memoryUsage(),
    listen,
    config: {
      path: configPath ?? null,
      tokensFile: farEnd.settings.tokensFile,
      lastReload: state.lastReload ?? null,
    },
    tokens: farEnd.tokens.map((token) => token.name),
    allow: farEnd.settings.allow.map((rule) => rule.text),
    maxTunnels: farEnd.settings.maxTunnels ?? null,
    refusals: Object.fromEntries(farEnd.refusals),
    sessions: farEnd.sessions.list(),
    tunnels: [...farEnd.open].map((each) => ({
      id: each.id,
      via: each.via ?? null,
      token: each.token,
      client: each.client,
      target: each.target,
      bytesUp: each.tunnel.counters.bytesUp,
      bytesDown: each.tunnel.counters.bytesDown,
      ageMs: now - each.startedAt,
    })),
  };
}

/**
 * The /metrics text of serve: the tool's families, kept under the listen
 * address as entry, and the refusals by word.
 *
 * @param farEnd The running far end.
 * @param label The entry label, the listen address.
 * @returns Prometheus text.
 */
export function serveMetrics(farEnd: FarEnd, label: string): string {
  let bytesUp = 0;
  let bytesDown = 0;
  for (const each of farEnd.open) {
    bytesUp += each.tunnel.counters.bytesUp;
    bytesDown += each.tunnel.counters.bytesDown;
  }
  const live = new Map([[label, {
    active: farEnd.open.size,
    bytesUp,
    bytesDown,
  }]]);
  const refusals = [...farEnd.refusals].sort().map(([word, count]) =>
    `httptunneling_serve_refusals_total{reason="${word}"} ${count}`
  );
  return farEnd.metrics.render(live) + [
    "# HELP httptunneling_serve_refusals_total Tunnel requests refused, by reason.",
    "# TYPE httptunneling_serve_refusals_total counter",
    ...refusals,
  ].join("\n") + "\n";
}
