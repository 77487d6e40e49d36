/**
 * Counters per entry (accepted, failed by reason, bytes each way, handshake
 * time) and per reload result, rendered in the Prometheus text format.
 * Keyed by source address, so they survive reloads that keep an entry.
 *
 * @module
 */

import { type FailureReason, routeFailure } from "../errors.ts";

/**
 * Classifies an error from opening a route.
 *
 * @param error What dialing threw.
 * @returns The failure reason label.
 */
export function failureReason(error: unknown): FailureReason {
  return routeFailure(error)?.reason ?? "other";
}

/** Upper bounds of the handshake-duration histogram, in seconds. */
export const HANDSHAKE_BUCKETS = [
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
];

const KNOWN_METHODS = new Set([
  "GET",
  "HEAD",
  "POST",
  "PUT",
  "DELETE",
  "OPTIONS",
  "PATCH",
  "TRACE",
]);

/** Counters of one entry. */
export interface EntryCounters {
  accepted: number;
  failed: Partial<Record<FailureReason, number>>;
  /** Bytes of tunnels that have ended. */
  bytesUp: number;
  bytesDown: number;
}

/** {@link Metrics} as plain data, to send to another thread. */
export interface MetricsData {
  readonly entries: [string, EntryCounters][];
  readonly reloads: [string, number][];
  readonly buckets: number[];
  readonly handshakes: number;
  readonly handshakeSeconds: number;
  readonly requests: [string, number][];
  readonly upstreamIdle: number;
  readonly proxyFailures: [string, number][];
  readonly failovers: [string, number][];
}

/** The tool's counters. */
export class Metrics {
  /** Counters by entry source. */
  readonly entries: Map<string, EntryCounters> = new Map();
  /** Reloads by result. */
  readonly reloads: Map<string, number> = new Map();
  #buckets = HANDSHAKE_BUCKETS.map(() => 0);
  #handshakes = 0;
  #handshakeSeconds = 0;
  /** Plain HTTP requests of local proxies, by `entry method class`. */
  readonly requests: Map<string, number> = new Map();
  /** Idle kept-alive upstream connections, set by the pool. */
  upstreamIdle = 0;
  /** Proxy failures, by the JSON of `[entry, proxy, reason]`. */
  readonly proxyFailures: Map<string, number> = new Map();
  /** Failovers, by the JSON of `[entry, from, to]`. */
  readonly failovers: Map<string, number> = new Map();

  /** The counters of `entry`, created on first use. */
  entry(entry: string): EntryCounters {
    let counters = this.entries.get(entry);
    if (!counters) {
      counters = { accepted: 0, failed: {}, bytesUp: 0, bytesDown: 0 };
      this.entries.set(entry, counters);
    }
    return counters;
  }

  /** A connection was accepted on `entry`. */
  accepted(entry: string): void {
    this.entry(entry).accepted++;
  }

  /** Opening a tunnel on `entry` failed. */
  failed(entry: string, reason: FailureReason): void {
    const failed = this.entry(entry).failed;
    failed[reason] = (failed[reason] ?? 0) + 1;
  }

  /** A tunnel opened after `ms` milliseconds. */
  opened(ms: number): void {
    const seconds = ms / 1000;
    this.#handshakes++;
    this.#handshakeSeconds += seconds;
    HANDSHAKE_BUCKETS.forEach((bound, i) => {
      if (seconds <= bound) this.#buckets[i]++;
    });
  }

  /**
   * A local proxy on `entry` answered a plain HTTP request.
   *
   * @param entry The entry's source.
   * @param method The request method.
   * @param status The status the client got.
   */
  request(entry: string, method: string, status: number): void {
    // Clients choose methods: unknown ones share a label, so that a client
    // cannot grow the series without bound.
    const name = KNOWN_METHODS.has(method) ? method : "OTHER";
    const key = `${entry} ${name} ${Math.floor(status / 100)}xx`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
  }

  /**
   * A proxy of `entry`'s route failed in a way that is its own fault.
   *
   * @param entry The entry's source.
   * @param proxy The proxy as `describeProxy` shows it, password masked.
   * @param reason Why.
   */
  proxyFailed(entry: string, proxy: string, reason: FailureReason): void {
    bump(this.proxyFailures, JSON.stringify([entry, proxy, reason]));
  }

  /**
   * A tunnel of `entry` went on to another alternative of a hop.
   *
   * @param entry The entry's source.
   * @param from The proxy that failed, without password.
   * @param to The one tried next, without password.
   */
  failedOver(entry: string, from: string, to: string): void {
    bump(this.failovers, JSON.stringify([entry, from, to]));
  }

  /** A tunnel on `entry` ended after moving these bytes. */
  closed(entry: string, bytesUp: number, bytesDown: number): void {
    const counters = this.entry(entry);
    counters.bytesUp += bytesUp;
    counters.bytesDown += bytesDown;
  }

  /** The counters as plain data. */
  toData(): MetricsData {
    return {
      entries: [...this.entries].map(([key, counters]) => [key, {
        ...counters,
        failed: { ...counters.failed },
      }]),
      reloads: [...this.reloads],
      buckets: [...this.#buckets],
      handshakes: this.#handshakes,
      handshakeSeconds: this.#handshakeSeconds,
      requests: [...this.requests],
      upstreamIdle: this.upstreamIdle,
      proxyFailures: [...this.proxyFailures],
      failovers: [...this.failovers],
    };
  }

  /** Adds counters kept elsewhere (another worker's) to these. */
  add(data: MetricsData): void {
    for (const [key, counters] of data.entries) {
      this.closed(key, counters.bytesUp, counters.bytesDown);
      const mine = this.entry(key);
      mine.accepted += counters.accepted;
      for (const [reason, count] of Object.entries(counters.failed)) {
        const why = reason as FailureReason;
        mine.failed[why] = (mine.failed[why] ?? 0) + count;
      }
    }
    for (const [result, count] of data.reloads) {
      this.reloads.set(result, (this.reloads.get(result) ?? 0) + count);
    }
    data.buckets.forEach((count, i) => this.#buckets[i] += count);
    this.#handshakes += data.handshakes;
    this.#handshakeSeconds += data.handshakeSeconds;
    for (const [key, count] of data.requests) {
      this.requests.set(key, (this.requests.get(key) ?? 0) + count);
    }
    this.upstreamIdle += data.upstreamIdle;
    for (const [key, count] of data.proxyFailures) {
      bump(this.proxyFailures, key, count);
    }
    for (const [key, count] of data.failovers) bump(this.failovers, key, count);
  }

  /** A reload ended with `result`. */
  reloaded(result: string): void {
    this.reloads.set(result, (this.reloads.get(result) ?? 0) + 1);
  }

  /**
   * Renders every metric in the Prometheus text exposition format.
   *
   * @param live Per entry: open tunnels and the bytes they moved so far.
   * @returns The exposition text.
   */
  render(
    live: ReadonlyMap<
      string,
      { active: number; bytesUp: number; bytesDown: number }
    >,
  ): string {
    const lines: string[] = [];
    const family = (name: string, type: string, help: string) =>
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    const keys = [...new Set([...this.entries.keys(), ...live.keys()])].sort();
    family(
      "httptunneling_connections_accepted_total",
      "counter",
      "Connections accepted.",
    );
    for (const key of keys) {
      lines.push(
        `httptunneling_connections_accepted_total{entry="${label(key)}"} ${
          this.entry(key).accepted
        }`,
      );
    }
    family(
      "httptunneling_connections_active",
      "gauge",
      "Tunnels open or opening.",
    );
    for (const key of keys) {
      lines.push(
        `httptunneling_connections_active{entry="${label(key)}"} ${
          live.get(key)?.active ?? 0
        }`,
      );
    }
    family(
      "httptunneling_connections_failed_total",
      "counter",
      "Tunnels that could not be opened, by reason.",
    );
    for (const key of keys) {
      for (const [reason, count] of Object.entries(this.entry(key).failed)) {
        lines.push(
          `httptunneling_connections_failed_total{entry="${
            label(key)
          }",reason="${reason}"} ${count}`,
        );
      }
    }
    family(
      "httptunneling_bytes_total",
      "counter",
      "Bytes relayed, by direction (up: client to destination).",
    );
    for (const key of keys) {
      const counters = this.entry(key);
      const now = live.get(key);
      lines.push(
        `httptunneling_bytes_total{entry="${label(key)}",direction="up"} ${
          counters.bytesUp + (now?.bytesUp ?? 0)
        }`,
        `httptunneling_bytes_total{entry="${label(key)}",direction="down"} ${
          counters.bytesDown + (now?.bytesDown ?? 0)
        }`,
      );
    }
    family(
      "httptunneling_handshake_duration_seconds",
      "histogram",
      "Time from accept to an open tunnel.",
    );
    HANDSHAKE_BUCKETS.forEach((bound, i) => {
      lines.push(
        `httptunneling_handshake_duration_seconds_bucket{le="${bound}"} ${
          this.#buckets[i]
        }`,
      );
    });
    lines.push(
      `httptunneling_handshake_duration_seconds_bucket{le="+Inf"} ${this.#handshakes}`,
      `httptunneling_handshake_duration_seconds_sum ${this.#handshakeSeconds}`,
      `httptunneling_handshake_duration_seconds_count ${this.#handshakes}`,
    );
    family(
      "httptunneling_requests_total",
      "counter",
      "Plain HTTP requests answered by local proxies, by method and status class.",
    );
    for (const [key, count] of [...this.requests].sort()) {
      const [entry, method, status] = key.split(" ");
      lines.push(
        `httptunneling_requests_total{entry="${label(entry)}",method="${
          label(method)
        }",status="${status}"} ${count}`,
      );
    }
    family(
      "httptunneling_upstream_idle_connections",
      "gauge",
      "Kept-alive connections to upstream proxies and origins, waiting for a request.",
    );
    lines.push(`httptunneling_upstream_idle_connections ${this.upstreamIdle}`);
    family(
      "httptunneling_proxy_failures_total",
      "counter",
      "Failures that were a proxy's fault (it was skipped for a while), by entry, proxy and reason.",
    );
    for (const [key, count] of [...this.proxyFailures].sort()) {
      const [entry, proxy, reason] = JSON.parse(key);
      lines.push(
        `httptunneling_proxy_failures_total{entry="${label(entry)}",proxy="${
          label(proxy)
        }",reason="${label(reason)}"} ${count}`,
      );
    }
    family(
      "httptunneling_failovers_total",
      "counter",
      "Switches from a failed proxy to the next alternative of its hop.",
    );
    for (const [key, count] of [...this.failovers].sort()) {
      const [entry, from, to] = JSON.parse(key);
      lines.push(
        `httptunneling_failovers_total{entry="${label(entry)}",from="${
          label(from)
        }",to="${label(to)}"} ${count}`,
      );
    }
    family(
      "httptunneling_reloads_total",
      "counter",
      "Config reloads, by result.",
    );
    for (const [result, count] of [...this.reloads].sort()) {
      lines.push(
        `httptunneling_reloads_total{result="${label(result)}"} ${count}`,
      );
    }
    return lines.join("\n") + "\n";
  }
}

function bump(counts: Map<string, number>, key: string, by = 1): void {
  counts.set(key, (counts.get(key) ?? 0) + by);
}

function label(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(
    /\n/g,
    "\\n",
  );
}
