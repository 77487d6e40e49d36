/**
 * Per-tunnel settings: time limits, keepalive and connection limits, with
 * their defaults and the `key=value` forms a config entry may use to
 * override them. Pure.
 *
 * @module
 */

import { parseDuration } from "../time/duration.ts";

/** The settings that govern one entry's tunnels. */
export interface TunnelOptions {
  /** Limit for each TCP connect. */
  readonly connectTimeoutMs: number;
  /** Limit for a proxy's whole `CONNECT` exchange. */
  readonly handshakeTimeoutMs: number;
  /** Close a tunnel with no bytes either way for this long; off when absent. */
  readonly idleTimeoutMs?: number;
  /** After one side finished sending, close when nothing moves for this long. */
  readonly lingerTimeoutMs: number;
  /** TCP keepalive on both legs. */
  readonly keepAlive: boolean;
  /** Most tunnels open at once for the entry; unlimited when absent. */
  readonly maxConnections?: number;
  /** How long a removed entry's tunnels may go on; unlimited when absent. */
  readonly drainTimeoutMs?: number;
  /** PEM certificates trusted for https:// proxies, besides the system's. */
  readonly caCerts?: readonly string[];
}

/** The defaults: 10 s connect, 10 s handshake, 2 min linger, keepalive on. */
export const DEFAULT_TUNNEL_OPTIONS: TunnelOptions = {
  connectTimeoutMs: 10_000,
  handshakeTimeoutMs: 10_000,
  lingerTimeoutMs: 120_000,
  keepAlive: true,
};

type Setter = (value: string) => Partial<TunnelOptions> | undefined;

const duration = (key: keyof TunnelOptions): Setter => (value) => {
  const ms = parseDuration(value);
  return ms === undefined || ms === 0 ? undefined : { [key]: ms };
};

/** Entry options by name, each turning its value into settings. */
const SETTERS: Record<string, { setter: Setter; expected: string }> = {
  "connect-timeout": {
    setter: duration("connectTimeoutMs"),
    expected: "a duration such as 10s",
  },
  "handshake-timeout": {
    setter: duration("handshakeTimeoutMs"),
    expected: "a duration such as 10s",
  },
  "idle-timeout": {
    setter: duration("idleTimeoutMs"),
    expected: "a duration such as 15m",
  },
  "linger-timeout": {
    setter: duration("lingerTimeoutMs"),
    expected: "a duration such as 2m",
  },
  "drain-timeout": {
    setter: duration("drainTimeoutMs"),
    expected: "a duration such as 1h",
  },
  "max-connections": {
    setter: (value) =>
      /^[1-9]\d{0,6}$/.test(value)
        ? { maxConnections: Number(value) }
        : undefined,
    expected: "a whole number from 1",
  },
  "keepalive": {
    setter: (value) =>
      value === "on"
        ? { keepAlive: true }
        : value === "off"
        ? { keepAlive: false }
        : undefined,
    expected: "on or off",
  },
};

/** The names of the tunnel options an entry may set. */
export const TUNNEL_OPTION_NAMES: readonly string[] = Object.keys(SETTERS);

/**
 * Turns an entry's `key=value` into settings.
 *
 * @param key A name from {@link TUNNEL_OPTION_NAMES}.
 * @param value The text after `=`.
 * @returns The settings.
 * @throws {Error} saying what value was expected.
 */
export function parseTunnelOption(
  key: string,
  value: string,
): Partial<TunnelOptions> {
  const { setter, expected } = SETTERS[key];
  const options = setter(value);
  if (options === undefined) {
    throw new Error(`${key}=${value} is not valid: use ${expected}`);
  }
  return options;
}
