/**
 * The TLS dialer, for https:// proxies: TLS over a TCP connection, or over
 * the tunnel the hops before it opened, with the certificate checked
 * against the proxy's name.
 *
 * @module
 */

import { ProxyTlsError, type TlsPeer } from "../errors.ts";
import { formatHostPort, type HostPort } from "./address.ts";
import { BufferedDuplex } from "./buffered.ts";
import type { Dialer, DialOptions } from "./dialer.ts";
import { closeQuietly, type Duplex, isPlainTcp } from "./duplex.ts";
import { dialTcpLinked } from "./tcp.ts";

/**
 * Starts TLS with a proxy over `stream`, checking its certificate.
 *
 * @param stream A plain connection to the proxy (not itself TLS).
 * @param proxy The proxy, whose host name the certificate must match.
 * @param options Extra trusted CAs.
 * @param peer Whose TLS it is, for the error's words.
 * @returns The TLS stream.
 * @throws {ProxyTlsError} when TLS cannot start or the certificate is refused.
 */
export async function tlsHandshake(
  stream: Duplex,
  proxy: HostPort,
  options: Pick<DialOptions, "caCerts">,
  peer: TlsPeer = "proxy",
): Promise<Duplex> {
  const tcp = stream instanceof BufferedDuplex ? stream.unwrap() : stream;
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
    throw new ProxyTlsError(formatHostPort(proxy), { cause: error, peer });
  }
}

/** TLS over TCP. */
export const tlsDialer: Dialer = {
  handshakeName: "TLS",
  async dial(target, options, signal) {
    return tlsHandshake(
      await dialTcpLinked(target, options, signal),
      target,
      options,
    );
  },
  handshake: tlsHandshake,
};
