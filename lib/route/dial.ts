/**
 * Opens the connection a tunnel needs: straight to the destination, or
 * through a chain of proxies, hop by hop (TCP to the first, then each
 * proxy asked for the next with CONNECT or SOCKS5, TLS where a hop is
 * https://), failing over to a hop's alternatives when a proxy fails.
 *
 * @module
 */

import { formatHostPort, type HostPort } from "../net/address.ts";
import type { TunnelOptions } from "../config/options.ts";
import {
  closeQuietly,
  type Duplex,
  isPlainTcp,
  PrefixedDuplex,
} from "../net/duplex.ts";
import {
  DialError,
  ProxyAuthError,
  ProxyProtocolError,
  ProxyRefusedError,
  ProxyTlsError,
  SocksError,
  TimeoutError,
} from "../errors.ts";
import { type ConnectObserver, httpConnect } from "../proxy/http_connect.ts";
import { socks5Connect } from "../proxy/socks5.ts";
import { coarseTimers } from "../time/timers.ts";
import { type ProxyEnvironment, routeFromEnvironment } from "./env.ts";
import type { ProxyHealth } from "./health.ts";
import { describeProxy, type Hop, type Proxy, type Route } from "./types.ts";

/** What opening a tunnel needs from the entry's settings. */
export type DialOptions = Pick<
  TunnelOptions,
  "connectTimeoutMs" | "handshakeTimeoutMs" | "keepAlive" | "caCerts"
>;

/** What dialing shares across tunnels. */
export interface DialContext {
  /** Failure memory of proxies, for failover. */
  readonly health: ProxyHealth;
  /** The proxy environment read at start, for `env` routes. */
  readonly environment: ProxyEnvironment;
  /** Reports a failover, for the tunnel's log. */
  readonly onFailover?: (message: string) => void;
}

/** An open path to the destination. */
export interface DialResult {
  /** The stream whose bytes are the destination's. */
  readonly stream: Duplex;
  /** The proxies used, e.g. `via http://a:3128 -> socks5://b:1080`, or `direct`. */
  readonly path: string;
}

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
 * connect needs no controller and listener of its own (about 2% of the
 * setups per second, measured on loopback). Give it one that nothing else needs
 * once the connect has failed; {@link connectTcpLinked} is for a caller whose
 * signal must outlive the connect.
 *
 * @param target Where to connect.
 * @param options The connect limit and whether to keep alive.
 * @param abort Gives up on the connect when aborted; aborted by the limit too.
 * @returns The connection.
 * @throws {TimeoutError} when the connect takes longer than the limit.
 * @throws {DialError} when the connection cannot be opened.
 */
export async function connectTcp(
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
 * {@link connectTcp} with a controller of its own that follows `signal`, for
 * a connect whose time limit must not end the caller's other steps (a
 * connect to one proxy of several, with failover to the next).
 *
 * @param target Where to connect.
 * @param options The connect limit and whether to keep alive.
 * @param signal Gives up on the connect when aborted.
 * @returns The connection.
 */
async function connectTcpLinked(
  target: HostPort,
  options: Pick<DialOptions, "connectTimeoutMs" | "keepAlive">,
  signal?: AbortSignal,
): Promise<Deno.TcpConn> {
  const abort = new AbortController();
  const onAbort = () => abort.abort();
  signal?.addEventListener("abort", onAbort, { once: true });
  if (signal?.aborted) abort.abort();
  try {
    return await connectTcp(target, options, abort);
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}

/** A failure that the proxy at `hop` (alternative `proxy`) is to blame for. */
class HopFailure extends Error {
  constructor(
    readonly hop: number,
    readonly proxy: Proxy,
    readonly failure: Error,
  ) {
    super(failure.message, { cause: failure });
  }
}

/**
 * Opens a stream to `destination` along `route`.
 *
 * @param route Direct, `env`, or a chain of proxies.
 * @param destination Where the tunnel leads.
 * @param options Time limits, keepalive and trusted CAs.
 * @param context Proxy failure memory and the proxy environment.
 * @param abort Gives up when aborted. A direct connect's time limit aborts
 *   it too, so it is the caller's to drop once dialing has ended.
 * @returns The stream and the path it took.
 * @throws {DialError}, {TimeoutError}, or the proxies' refusals.
 */
export function dialRoute(
  route: Route,
  destination: HostPort,
  options: DialOptions,
  context: DialContext,
  abort: AbortController = new AbortController(),
): Promise<DialResult> {
  const resolved = route.kind === "env"
    ? routeFromEnvironment(context.environment, destination)
    : route;
  if (resolved.kind === "chain") {
    return dialChain(
      resolved.hops,
      destination,
      options,
      context,
      abort.signal,
    );
  }
  const path = route.kind === "env"
    ? "direct (NO_PROXY or no proxy set)"
    : "direct";
  return connectTcp(destination, options, abort).then((stream) => ({
    stream,
    path,
  }));
}

// Opens the chain, failing over hop by hop to the next-best alternative.
async function dialChain(
  hops: readonly Hop[],
  destination: HostPort,
  options: DialOptions,
  context: DialContext,
  signal?: AbortSignal,
): Promise<DialResult> {
  // Alternatives left to try, per hop, best first.
  const candidates = hops.map((hop) => context.health.order(hop));
  while (true) {
    const chosen = candidates.map((hop) => hop[0]);
    try {
      const stream = await openChain(chosen, destination, options, signal);
      for (const proxy of chosen) context.health.succeeded(proxy);
      return { stream, path: `via ${chosen.map(describeProxy).join(" -> ")}` };
    } catch (error) {
      if (!(error instanceof HopFailure)) throw error;
      const { hop, proxy, failure } = error;
      if (signal?.aborted || !isProxyFault(failure)) throw failure;
      const backoff = context.health.failed(proxy);
      candidates[hop].shift();
      const next = candidates[hop][0];
      if (next === undefined) throw failure;
      context.onFailover?.(
        `${describeProxy(proxy)} failed (${failure.message}); trying ${
          describeProxy(next)
        }, and skipping the failed one for ${Math.round(backoff / 1000)} s`,
      );
    }
  }
}

// Failures that another proxy may not have: it could not be reached, did
// not answer in time or sensibly, or answered 5xx. A refusal of the request
// itself (403, 407, a SOCKS rule) would be the same elsewhere.
function isProxyFault(error: Error): boolean {
  if (error instanceof ProxyAuthError) return false;
  if (error instanceof ProxyRefusedError) return error.status >= 500;
  if (error instanceof SocksError) return error.proxyFault;
  return error instanceof DialError || error instanceof TimeoutError ||
    error instanceof ProxyProtocolError || error instanceof ProxyTlsError;
}

async function openChain(
  proxies: Proxy[],
  destination: HostPort,
  options: DialOptions,
  signal?: AbortSignal,
): Promise<Duplex> {
  let stream: Duplex | undefined;
  try {
    for (const [index, proxy] of proxies.entries()) {
      try {
        stream = index === 0
          ? await connectTcpLinked(proxy, options, signal)
          : await askProxy(proxies[index - 1], stream!, proxy, options, signal);
      } catch (error) {
        // The previous proxy could not reach this one: blame this one for a
        // 5xx or a refused SOCKS connect, the previous one for anything else.
        stream = undefined;
        const blameNext = index === 0 || isTargetUnreachable(error);
        const hop = blameNext ? index : index - 1;
        throw new HopFailure(hop, proxies[hop], error as Error);
      }
      if (proxy.scheme === "https") {
        const plain = stream;
        stream = undefined;
        try {
          stream = await startProxyTls(plain, proxy, options);
        } catch (error) {
          throw new HopFailure(index, proxy, error as Error);
        }
      }
    }
    const last = proxies.length - 1;
    // After a 407 with "Connection: close" the first proxy can be dialed again.
    const reconnect = last === 0
      ? async () => {
        const tcp = await connectTcpLinked(proxies[0], options, signal);
        return proxies[0].scheme === "https"
          ? await startProxyTls(tcp, proxies[0], options)
          : tcp;
      }
      : undefined;
    try {
      return await askProxy(
        proxies[last],
        stream!,
        destination,
        options,
        signal,
        reconnect,
      );
    } catch (error) {
      stream = undefined;
      throw new HopFailure(last, proxies[last], error as Error);
    }
  } catch (error) {
    if (stream) closeQuietly(stream);
    throw error;
  }
}

function isTargetUnreachable(error: unknown): boolean {
  return (error instanceof ProxyRefusedError && error.status >= 500) ||
    (error instanceof SocksError && error.proxyFault);
}

/**
 * Asks `proxy`, at the end of `stream`, for a connection to `target`, with
 * CONNECT or SOCKS5 by the proxy's scheme. Takes ownership of `stream`.
 *
 * @param proxy The proxy at the end of `stream`.
 * @param stream A connection to the proxy.
 * @param target Where the proxy should connect.
 * @param options Time limits.
 * @param signal Gives up when aborted.
 * @param reconnect Dials the proxy again, when it closes after a 407.
 * @param observer Told of the HTTP exchange, e.g. by `probe`.
 * @returns The tunnel to `target`.
 */
export function askProxy(
  proxy: Proxy,
  stream: Duplex,
  target: HostPort,
  options: DialOptions,
  signal?: AbortSignal,
  reconnect?: () => Promise<Duplex>,
  observer?: ConnectObserver,
): Promise<Duplex> {
  const credentials = proxy.username === undefined
    ? undefined
    : { username: proxy.username, password: proxy.password ?? "" };
  const proxyLabel = formatHostPort(proxy);
  if (proxy.scheme === "socks5" || proxy.scheme === "socks5h") {
    return socks5Connect(stream, target, {
      proxyLabel,
      resolveLocally: proxy.scheme === "socks5",
      credentials,
      timeoutMs: options.handshakeTimeoutMs,
      signal,
    });
  }
  return httpConnect(stream, target, {
    proxyLabel,
    timeoutMs: options.handshakeTimeoutMs,
    signal,
    credentials,
    preemptiveBasic: proxy.preemptiveBasic,
    reconnect,
    observer,
  }).then(({ tunnel }) => tunnel);
}

/**
 * Starts TLS with an https:// proxy over `stream`, checking its certificate.
 *
 * @param stream A plain connection to the proxy (not itself TLS).
 * @param proxy The proxy, whose host name the certificate must match.
 * @param options Extra trusted CAs.
 * @returns The TLS stream.
 * @throws {ProxyTlsError} when TLS cannot start or the certificate is refused.
 */
export async function startProxyTls(
  stream: Duplex,
  proxy: Proxy,
  options: DialOptions,
): Promise<Duplex> {
  const tcp = stream instanceof PrefixedDuplex ? stream.unwrap() : stream;
  if (!tcp || !isPlainTcp(tcp)) {
    closeQuietly(stream);
    throw new ProxyTlsError(formatHostPort(proxy), {
      cause: new Error(
        "an https:// proxy can only follow http://, socks5:// or socks5h:// hops, not another https:// one",
      ),
    });
  }
  let tls: Deno.TlsConn | undefined;
  try {
    tls = await Deno.startTls(tcp, {
      hostname: proxy.host,
      caCerts: options.caCerts ? [...options.caCerts] : undefined,
    });
    await tls.handshake();
    return tls;
  } catch (error) {
    closeQuietly(tls ?? tcp);
    throw new ProxyTlsError(formatHostPort(proxy), { cause: error });
  }
}
