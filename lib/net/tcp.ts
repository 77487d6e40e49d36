/**
 * The TCP dialer: a cancellable connect under a time limit, with the socket
 * options every leg of a tunnel gets.
 *
 * @module
 */

import { DialError, TimeoutError } from "../errors.ts";
import { coarseTimers } from "../time/timers.ts";
import { formatHostPort, type HostPort } from "./address.ts";
import type { Dialer, DialOptions } from "./dialer.ts";
import type { Duplex } from "./duplex.ts";

/**
 * Sets `TCP_NODELAY`, and keepalive as asked, on either leg of a tunnel.
 *
 * @param conn A connected socket.
 * @param keepAlive Whether to send keepalive probes.
 */
export function setTcpOptions(conn: Deno.TcpConn, keepAlive: boolean): void {
  conn.setNoDelay(true);
  conn.setKeepAlive(keepAlive);
}

/**
 * Opens a TCP connection with `TCP_NODELAY` set, and keepalive as asked.
 * See {@link setTcpOptions}.
 *
 * Takes a controller rather than a signal: the time limit aborts it, so the
 * connect needs no controller and listener of its own, a cost paid on every
 * connection. Give it one that nothing else needs once the connect has
 * failed; {@link dialTcpLinked} is for a caller whose signal must outlive
 * the connect.
 *
 * @param target Where to connect.
 * @param options The connect limit and whether to keep alive.
 * @param abort Gives up on the connect when aborted; aborted by the limit too.
 * @returns The connection.
 * @throws {TimeoutError} when the connect takes longer than the limit.
 * @throws {DialError} when the connection cannot be opened.
 */
export async function dialTcp(
  target: HostPort,
  options: Pick<DialOptions, "connectTimeoutMs" | "keepAlive">,
  abort: AbortController = new AbortController(),
): Promise<Deno.TcpConn> {
  const timeoutMs = options.connectTimeoutMs;
  // A coarse timer, cancelled as soon as the connect settles
  // (AbortSignal.timeout would keep a runtime timer alive for the whole
  // limit on every connection).
  let timedOut = false;
  const timer = coarseTimers.after(timeoutMs, () => {
    timedOut = true;
    abort.abort();
  });
  try {
    const conn = await Deno.connect({
      hostname: target.host,
      port: target.port,
      signal: abort.signal,
    });
    setTcpOptions(conn, options.keepAlive);
    return conn;
  } catch (error) {
    if (timedOut) {
      throw new TimeoutError(
        `TCP connect to ${formatHostPort(target)}`,
        timeoutMs,
      );
    }
    throw new DialError(formatHostPort(target), { cause: error });
  } finally {
    timer.cancel();
  }
}

/**
 * {@link dialTcp} with a controller of its own that follows `signal`, for
 * a connect whose time limit must not end the caller's other steps (a
 * connect to one proxy of several, with failover to the next).
 *
 * @param target Where to connect.
 * @param options The connect limit and whether to keep alive.
 * @param signal Gives up on the connect when aborted.
 * @returns The connection.
 */
export async function dialTcpLinked(
  target: HostPort,
  options: Pick<DialOptions, "connectTimeoutMs" | "keepAlive">,
  signal?: AbortSignal,
): Promise<Deno.TcpConn> {
  const abort = new AbortController();
  const onAbort = () => abort.abort();
  signal?.addEventListener("abort", onAbort, { once: true });
  if (signal?.aborted) abort.abort();
  try {
    return await dialTcp(target, options, abort);
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}

/** Plain TCP: the dial is the connect, and there is no handshake. */
export const tcpDialer: Dialer = {
  dial: dialTcpLinked,
  handshake: (stream: Duplex) => Promise.resolve(stream),
};
