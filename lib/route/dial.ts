/**
 * Opens the connection a tunnel needs: straight to the destination, or to a
 * proxy followed by the `CONNECT` handshake.
 *
 * @module
 */

import { formatHostPort, type HostPort } from "../address.ts";
import type { Duplex } from "../duplex.ts";
import { DialError, TimeoutError } from "../errors.ts";
import { httpConnect } from "../proxy/http_connect.ts";
import type { Route } from "./types.ts";

/** Time limits for opening a tunnel. */
export interface DialOptions {
  /** Limit for each TCP connect. */
  readonly connectTimeoutMs: number;
  /** Limit for a proxy's whole `CONNECT` exchange. */
  readonly handshakeTimeoutMs: number;
}

/** Default limits: 10 s for the TCP connect and 10 s for the handshake. */
export const DEFAULT_DIAL_OPTIONS: DialOptions = {
  connectTimeoutMs: 10_000,
  handshakeTimeoutMs: 10_000,
};

/**
 * Opens a TCP connection with `TCP_NODELAY` and keepalive set.
 *
 * @param target Where to connect.
 * @param timeoutMs Limit for the connect.
 * @param signal Gives up on the connect when aborted.
 * @returns The connection.
 * @throws {TimeoutError} when the connect takes longer than `timeoutMs`.
 * @throws {DialError} when the connection cannot be opened.
 */
export async function connectTcp(
  target: HostPort,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<Deno.TcpConn> {
  const timeout = AbortSignal.timeout(timeoutMs);
  try {
    const conn = await Deno.connect({
      hostname: target.host,
      port: target.port,
      signal: signal ? AbortSignal.any([timeout, signal]) : timeout,
    });
    conn.setNoDelay(true);
    conn.setKeepAlive(true);
    return conn;
  } catch (error) {
    if (timeout.aborted) {
      throw new TimeoutError(
        `TCP connect to ${formatHostPort(target)}`,
        timeoutMs,
      );
    }
    throw new DialError(formatHostPort(target), { cause: error });
  }
}

/**
 * Opens a stream to `destination` along `route`.
 *
 * @param route Direct or through a proxy.
 * @param destination Where the tunnel leads.
 * @param options Time limits.
 * @param signal Gives up when aborted.
 * @returns A stream whose bytes are the destination's.
 * @throws {DialError}, {TimeoutError}, or the handshake's errors
 *   ({@link httpConnect}).
 */
export async function dialRoute(
  route: Route,
  destination: HostPort,
  options: DialOptions = DEFAULT_DIAL_OPTIONS,
  signal?: AbortSignal,
): Promise<Duplex> {
  if (route.kind === "direct") {
    return await connectTcp(destination, options.connectTimeoutMs, signal);
  }
  const { proxy } = route;
  const open = () => connectTcp(proxy, options.connectTimeoutMs, signal);
  const { tunnel } = await httpConnect(await open(), destination, {
    proxyLabel: formatHostPort(proxy),
    timeoutMs: options.handshakeTimeoutMs,
    signal,
    credentials: proxy.username === undefined ? undefined : {
      username: proxy.username,
      password: proxy.password ?? "",
    },
    preemptiveBasic: proxy.preemptiveBasic,
    reconnect: open,
  });
  return tunnel;
}
