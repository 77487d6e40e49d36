/**
 * TLS to a wss:// tunnel server, with certificate pinning and client
 * certificates: with `fingerprint=`, the server's certificate is accepted
 * by its SHA-256 alone (for a self-signed server; no CA, name or expiry
 * checks, as ssh checks a host key), otherwise as for an https:// proxy.
 * Deno's own TLS neither shows the peer's certificate nor presents one of
 * ours over a stream it did not dial, so a pinned connection, or one with
 * `client-cert=`, runs through `node:tls` (whose `getPeerCertificate()`
 * shows it and which takes `cert`/`key`), over an adapter from
 * {@link Duplex} to a Node stream and back.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { connect as tlsConnect } from "node:tls";
import { ProxyTlsError } from "../errors.ts";
import {
  formatHostPort,
  type HostPort,
  isIPv4,
  isIPv6,
} from "../net/address.ts";
import { sameBytes } from "../net/bytes.ts";
import type { Dialer, DialOptions } from "../net/dialer.ts";
import { closeQuietly, type Duplex } from "../net/duplex.ts";
import { fromNodeStream, toNodeStream } from "../net/node_stream.ts";
import { dialTcpLinked } from "../net/tcp.ts";
import { tlsHandshake } from "../net/tls.ts";

/**
 * Starts TLS with a wss:// server over `stream`: pinned to
 * `options.fingerprint` when it is set, checked against the CAs otherwise;
 * with `options.clientCert` presented when the server asks for one.
 *
 * @param stream A stream that reaches the server.
 * @param server The server.
 * @param options The pin, or the extra CAs; the client certificate.
 * @returns The TLS stream.
 * @throws {ProxyTlsError} when TLS fails or the certificate is not the pinned one.
 */
export function wssHandshake(
  stream: Duplex,
  server: HostPort,
  options: DialOptions,
): Promise<Duplex> {
  return options.fingerprint === undefined && options.clientCert === undefined
    ? tlsHandshake(stream, server, options, "tunnel server")
    : nodeTlsHandshake(stream, server, options);
}

/** TLS for wss:// hops, pinned when `fingerprint=` is set. */
export const wssDialer: Dialer = {
  handshakeName: "TLS",
  async dial(target, options, signal) {
    return wssHandshake(
      await dialTcpLinked(target, options, signal),
      target,
      options,
    );
  },
  handshake: wssHandshake,
};

async function nodeTlsHandshake(
  stream: Duplex,
  server: HostPort,
  options: DialOptions,
): Promise<Duplex> {
  const label = formatHostPort(server);
  const named = !isIPv4(server.host) && !isIPv6(server.host);
  const pin = options.fingerprint;
  let mismatch = false;
  const socket = tlsConnect({
    socket: toNodeStream(stream),
    // The pin is the check; the chain and name are not looked at.
    rejectUnauthorized: pin === undefined,
    // Without a pin: the system's CAs, or the ones ca-file= names, and the
    // server's name (or address) checked against the certificate.
    ...(pin === undefined && options.caCerts
      ? { ca: [...options.caCerts] }
      : {}),
    host: server.host,
    ...(named ? { servername: server.host } : {}),
    ...(options.clientCert === undefined
      ? {}
      : { cert: options.clientCert, key: options.clientKey }),
  });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once("secureConnect", resolve);
      socket.once("error", reject);
      socket.once("close", () => reject(new Error("connection closed")));
    });
    const raw: Uint8Array | undefined = socket.getPeerCertificate(true)?.raw;
    const seen = raw && createHash("sha256").update(raw).digest();
    if (pin !== undefined && (!seen || !sameBytes(new Uint8Array(seen), pin))) {
      const hex = seen
        ? `sha256:${Buffer.from(seen).toString("hex")}`
        : "no certificate";
      mismatch = true;
      throw new Error(
        `the server's certificate (${hex}) is not the one fingerprint= pins`,
      );
    }
    socket.removeAllListeners("error");
    socket.removeAllListeners("close");
    return fromNodeStream(socket);
  } catch (error) {
    socket.destroy();
    closeQuietly(stream);
    throw new ProxyTlsError(label, {
      cause: error,
      peer: "tunnel server",
      pinMismatch: mismatch,
    });
  }
}
