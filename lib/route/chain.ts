/**
 * The chain walk: TCP to the first hop, then each hop readied by its dialer
 * (TLS for https://) and asked by its connector for the next address, the
 * last one for the destination. Every step goes through a hook, so that
 * `probe` can time and explain the same walk the tunnels take.
 *
 * @module
 */

import { errorMessage, routeFailure } from "../errors.ts";
import type { HostPort } from "../net/address.ts";
import type { DialOptions } from "../net/dialer.ts";
import { closeQuietly, type Duplex } from "../net/duplex.ts";
import { dialTcpLinked } from "../net/tcp.ts";
import type { ConnectObserver } from "../proxy/connector.ts";
import { transportFor } from "./transport.ts";
import type { Proxy } from "./types.ts";

/** One step of opening a chain. */
export interface ChainStep {
  /**
   * `connect`: TCP to the first hop (the destination, when there is no
   * proxy); `handshake`: a hop's dialer readies the stream (TLS);
   * `ask`: a proxy is asked for the next address.
   */
  readonly kind: "connect" | "handshake" | "ask";
  /** The step's name, e.g. `TLS`, `CONNECT`, `SOCKS5 CONNECT`. */
  readonly name: string;
  /** The proxy reached or asked; absent for a connect to the destination. */
  readonly proxy?: Proxy;
  /** The address the step reaches: the hop itself, or the next address asked for. */
  readonly target: HostPort;
}

/** Watches or wraps every step of a chain walk, e.g. to time it. */
export interface ChainHook {
  /**
   * Runs one step.
   *
   * @param step What the step does.
   * @param run Does it; an `ask` tells `observer` of the proxy's answers.
   * @returns What `run` returns.
   */
  step<T>(
    step: ChainStep,
    run: (observer?: ConnectObserver) => Promise<T>,
  ): Promise<T>;
}

/** Options of {@link openChain}. */
export interface ChainOptions {
  /** Gives up when aborted. @default never */
  readonly signal?: AbortSignal;
  /** Told of every step. @default none */
  readonly hook?: ChainHook;
}

/** A failure that the proxy at `hop` (of the chain walked) is to blame for. */
export class HopFailure extends Error {
  /**
   * @param hop Index of the hop to blame.
   * @param proxy The proxy used at that hop.
   * @param failure What was thrown.
   */
  constructor(
    readonly hop: number,
    readonly proxy: Proxy,
    readonly failure: unknown,
  ) {
    super(errorMessage(failure), { cause: failure });
    this.name = "HopFailure";
  }
}

const PLAIN: ChainHook = { step: (_step, run) => run() };

/**
 * Opens a stream to `destination` through `proxies`, in order; with no
 * proxies, a TCP connection to it.
 *
 * @param proxies One proxy per hop (failover has chosen among alternatives).
 * @param destination Where the stream leads.
 * @param options Time limits, keepalive and trusted CAs.
 * @param chain The abort signal and the step hook.
 * @returns The stream whose bytes are the destination's.
 * @throws {HopFailure} naming the hop to blame, when there are proxies;
 *   the step's own error otherwise.
 */
export async function openChain(
  proxies: readonly Proxy[],
  destination: HostPort,
  options: DialOptions,
  chain: ChainOptions = {},
): Promise<Duplex> {
  const { signal, hook = PLAIN } = chain;
  const blame = (hop: number, error: unknown) =>
    proxies.length === 0 ? error : new HopFailure(hop, proxies[hop], error);
  const ask = (from: number, stream: Duplex, target: HostPort) => {
    const proxy = proxies[from];
    const transport = transportFor(proxy.scheme);
    const reconnect = from === 0 && proxies.length === 1
      ? () => transport.dialer.dial(proxy, options, signal)
      : undefined;
    return hook.step(
      { kind: "ask", name: transport.verb, proxy, target },
      (observer) =>
        transport.connector.connect(stream, target, {
          proxy,
          timeoutMs: options.handshakeTimeoutMs,
          signal,
          reconnect,
          observer,
          settings: options,
        }),
    );
  };
  const first = proxies[0] ?? destination;
  let stream: Duplex | undefined;
  try {
    try {
      stream = await hook.step(
        { kind: "connect", name: "connect", proxy: proxies[0], target: first },
        () => dialTcpLinked(first, options, signal),
      );
    } catch (error) {
      throw blame(0, error);
    }
    for (const [index, proxy] of proxies.entries()) {
      if (index > 0) {
        const under: Duplex = stream!;
        stream = undefined;
        try {
          stream = await ask(index - 1, under, proxy);
        } catch (error) {
          // The previous proxy could not reach this one: blame this one for
          // a 5xx or a refused SOCKS connect, the previous one otherwise.
          throw blame(
            routeFailure(error)?.unreachable ? index : index - 1,
            error,
          );
        }
      }
      const { dialer } = transportFor(proxy.scheme);
      if (dialer.handshakeName !== undefined) {
        const plain: Duplex = stream!;
        stream = undefined;
        try {
          stream = await hook.step(
            {
              kind: "handshake",
              name: dialer.handshakeName,
              proxy,
              target: proxy,
            },
            () => dialer.handshake(plain, proxy, options),
          );
        } catch (error) {
          throw blame(index, error);
        }
      }
    }
    if (proxies.length === 0) return stream!;
    const last = proxies.length - 1;
    const under: Duplex = stream!;
    stream = undefined;
    try {
      return await ask(last, under, destination);
    } catch (error) {
      throw blame(last, error);
    }
  } catch (error) {
    if (stream) closeQuietly(stream);
    throw error;
  }
}
