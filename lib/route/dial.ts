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
import {
  DEFAULT_TUNNEL_OPTIONS,
  type TunnelOptions,
} from "../config/options.ts";

/** What opening a tunnel needs from the entry's settings. */
export type DialOptions = Pick<
  TunnelOptions,
  "connectTimeoutMs" | "handshakeTimeoutMs" | "keepAlive"
>;

/**
 * Opens a TCP connection with `TCP_NODELAY` set, and keepalive as asked.
 *
 * @param target Where to connect.
 * @param options The connect limit and whether to keep alive.
 * @param signal Gives up on the connect when aborted.
 * @returns The connection.
 * @throws {TimeoutError} when the connect takes longer than `timeoutMs`.
 * @throws {DialError} when the connection cannot be opened.
 */
export async function connectTcp(
  target: HostPort,
  options: Pick<DialOptions, "connectTimeoutMs" | "keepAlive">,
  signal?: AbortSignal,
): Promise<Deno.TcpConn> {
  const timeoutMs = options.connectTimeoutMs;
  const timeout = AbortSignal.timeout(timeoutMs);
  try {
    const conn = await Deno.connect({
      hostname: target.host,
      port: target.port,
      signal: signal ? AbortSignal.any([timeout, signal]) : timeout,
    });
    conn.setNoDelay(true);
    conn.setKeepAlive(options.keepAlive);
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
  options: DialOptions = DEFAULT_TUNNEL_OPTIONS,
  signal?: AbortSignal,
): Promise<Duplex> {
  if (route.kind === "direct") {
    return await connectTcp(destination, options, signal);
  }
  const { proxy } = route;
  const open = () => connectTcp(proxy, options, signal);
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
