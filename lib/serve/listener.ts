/**
 * The far end's HTTP listener: `Deno.serve` (HTTP/1.1; HTTP/2 too), plain
 * or with TLS from a certificate and key file that are reloaded when they
 * change.
 *
 * Deno.serve cannot change its certificate, and shutting a server down
 * closes every WebSocket it upgraded, so replacing the server on a
 * renewal would cut every open tunnel. With TLS, then, the TLS listener is
 * ours and each decrypted connection is relayed to a `Deno.serve` on a
 * loopback port that nothing else may use: a renewal swaps the certificate
 * for the connections accepted next, while connections already accepted
 * go on. The client's address is carried over by the port of the loopback
 * connection. TLS is `node:tls` (ALPN h2 and http/1.1) over a TCP socket
 * accepted by `Deno.listen`, not `Deno.listenTls`, whose sockets keep
 * Nagle's algorithm on.
 *
 * ```
 * client ─TCP─▶ Deno.listen ─node:tls─▶ relay ─▶ 127.0.0.1:internal ─▶ Deno.serve ─▶ handler
 * ```
 *
 * @module
 */

import { errorMessage } from "../errors.ts";
import { formatHostPort, type HostPort } from "../net/address.ts";
import { createSecureContext, TLSSocket } from "node:tls";
import { closeQuietly, type Duplex, writeAll } from "../net/duplex.ts";
import { REFUSAL_HEADER } from "../ws/handshake.ts";
import { keyPairProblem } from "../net/key_pair.ts";
import { fromNodeStream, toNodeStream } from "../net/node_stream.ts";
import { logger } from "../observe/log.ts";
import { relay } from "../relay.ts";
import { formatDuration } from "../time/duration.ts";
import { watchConfig } from "../config/watch.ts";
import { notFound } from "./site.ts";

const log = logger("serve");

/** Quiet time after the certificate or key changed before both are read. */
const RELOAD_SETTLE_MS = 300;

/** How long a client has for its TLS handshake. */
const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;
// How long shutdown waits for the relays of closed connections to end.
const RELAY_END_WAIT_MS = 2_000;

/** The certificate and key files of a TLS listener. */
export interface TlsFiles {
  /** PEM certificate chain. */
  readonly certFile: string;
  /** PEM private key. */
  readonly keyFile: string;
  /**
   * PEM certificates of the CAs whose client certificates are accepted;
   * when set, a client without one is refused. @default no client certificates
   */
  readonly clientCaFile?: string;
}

/**
 * How long a TLS connection may carry nothing before it is closed: a
 * `Deno.serve` keeps a connection that sends no request, or half of one,
 * for ever. Two heartbeats and then some, so that a tunnel, pinged every
 * heartbeat, is never cut by it.
 *
 * @param heartbeatMs serve's `--heartbeat`.
 * @returns Milliseconds.
 */
export function tlsIdleLimitMs(heartbeatMs: number): number {
  return 2 * heartbeatMs + 5_000;
}

/** The listener of {@link startFarListener}. */
export interface FarListener {
  /** Where it listens. */
  readonly addr: Deno.NetAddr;
  /**
   * Stops taking new connections where that leaves open ones alone (TLS);
   * plain Deno.serve cannot, so the handler refuses new tunnels instead.
   */
  stopAccepting(): void;
  /** Closes everything, open tunnels included; call after draining. */
  shutdown(): Promise<void>;
}

/**
 * Starts the listener.
 *
 * @param address Where to listen.
 * @param tls The certificate and key files, or none for plain HTTP.
 * @param handler Answers each request; `info.remoteAddr` is the client's.
 * @param idleLimitMs With TLS: how long a connection may carry nothing
 *   (see {@link tlsIdleLimitMs}).
 * @returns The listener.
 * @throws when the address cannot be bound or the certificate cannot be used.
 */
export function startFarListener(
  address: HostPort,
  tls: TlsFiles | undefined,
  handler: Deno.ServeHandler<Deno.NetAddr>,
  idleLimitMs: number,
): FarListener {
  const onError = (error: unknown) => {
    log.error(`request failed: ${errorMessage(error)}`);
    return new Response("500 Internal Server Error\n", { status: 500 });
  };
  if (tls === undefined) {
    const server = Deno.serve({
      hostname: address.host,
      port: address.port,
      onListen: () => {},
      onError,
    }, handler);
    return {
      addr: server.addr,
      stopAccepting: () => {},
      shutdown: () => server.shutdown(),
    };
  }
  return startTlsFront(address, tls, handler, onError, idleLimitMs);
}

function startTlsFront(
  address: HostPort,
  tls: TlsFiles,
  handler: Deno.ServeHandler<Deno.NetAddr>,
  onError: (error: unknown) => Response,
  idleLimitMs: number,
): FarListener {
  // Loopback connections from the relay, by their port: the real client.
  const clients = new Map<number, Deno.NetAddr>();
  const inner = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: () => {},
    onError,
  }, (request, info) => {
    const client = clients.get(info.remoteAddr.port);
    // Anyone else on this machine reaching the inner port directly gets
    // nothing: tunnels come through TLS only.
    if (client === undefined) return notFound();
    return handler(request, { ...info, remoteAddr: client });
  });
  const relays = new Set<Promise<unknown>>();
  // How to end each relayed connection at shutdown: its TLS stream, the
  // TCP connection under it and the loopback one to the inner server.
  // Closing the TLS stream alone leaves a pending read of the relay
  // waiting on the raw connection.
  const closers = new Set<() => void>();
  // node:tls reads the files only at a handshake: they are checked here,
  // so that a broken renewal keeps the previous certificate.
  const secureContext = () => {
    const cert = Deno.readTextFileSync(tls.certFile);
    const key = Deno.readTextFileSync(tls.keyFile);
    const problem = keyPairProblem(cert, key);
    if (problem !== undefined) throw new Error(problem);
    if (tls.clientCaFile === undefined) {
      return createSecureContext({ cert, key });
    }
    const ca = Deno.readTextFileSync(tls.clientCaFile);
    if (!ca.includes("-----BEGIN CERTIFICATE-----")) {
      throw new Error(`${tls.clientCaFile} holds no PEM certificate`);
    }
    return createSecureContext({ cert, key, ca });
  };
  let context = secureContext();
  const listener = Deno.listen({ hostname: address.host, port: address.port });
  const addr = listener.addr;
  const forward = async (conn: Deno.TcpConn) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let local: Deno.TcpConn | undefined;
    // Deno.listenTls leaves Nagle's algorithm on and offers no way to turn
    // it off: every small write that follows one not yet acknowledged
    // (a data frame, then its ack) would wait for the client's delayed
    // ACK. Here the TCP socket is ours, so TLS runs over it with
    // TCP_NODELAY.
    conn.setNoDelay(true);
    const socket = new TLSSocket(toNodeStream(conn), {
      isServer: true,
      secureContext: context,
      ALPNProtocols: ["h2", "http/1.1"],
      // The certificate is checked below, so that a client without a good
      // one is told why in an HTTP answer rather than by a TLS alert.
      requestCert: tls.clientCaFile !== undefined,
      rejectUnauthorized: false,
    });
    const stream = fromNodeStream(socket);
    const close = () => {
      closeQuietly(stream);
      closeQuietly(conn);
      if (local !== undefined) closeQuietly(local);
    };
    closers.add(close);
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once("secure", resolve);
        socket.once("error", reject);
        socket.once("close", () => reject(new Error("connection closed")));
        // A client that leaves during the handshake ends the socket's
        // reading side and nothing more: no close, no error.
        socket.once("end", () => reject(new Error("connection closed")));
        timer = setTimeout(
          () => reject(new Error("TLS handshake timed out")),
          TLS_HANDSHAKE_TIMEOUT_MS,
        );
      });
      clearTimeout(timer);
      socket.removeAllListeners("secure");
      if (tls.clientCaFile !== undefined) {
        const problem = clientCertificateProblem(socket);
        if (problem !== undefined) {
          log.warn(
            `TLS client ${formatAddr(conn.remoteAddr)} refused: ${problem}`,
          );
          await refuseClient(stream, socket.alpnProtocol, problem);
          return;
        }
      }
      local = await Deno.connect({
        hostname: "127.0.0.1",
        port: inner.addr.port,
      });
      local.setNoDelay(true);
      clients.set(local.localAddr.port, conn.remoteAddr);
      const ended = await relay(stream, local, {
        idleTimeoutMs: idleLimitMs,
        lingerTimeoutMs: idleLimitMs,
      });
      if (ended.timedOut !== undefined) {
        log.debug(
          `TLS connection from ${
            formatAddr(conn.remoteAddr)
          } closed: nothing moved for ${formatDuration(ended.idleMs)}`,
        );
      }
    } catch (error) {
      log.debug(
        `TLS connection from ${formatAddr(conn.remoteAddr)} ended: ${
          errorMessage(error)
        }`,
      );
    } finally {
      clearTimeout(timer);
      if (local !== undefined) {
        clients.delete(local.localAddr.port);
        closeQuietly(local);
      }
      closers.delete(close);
      closeQuietly(stream);
    }
  };
  let accepting = true;
  const loop = (async () => {
    for await (const conn of listener) {
      const task = forward(conn);
      relays.add(task);
      task.finally(() => relays.delete(task));
    }
  })().catch(() => {});
  const reload = () => {
    if (!accepting) return;
    try {
      context = secureContext();
    } catch (error) {
      log.error(
        `${tls.certFile} or ${tls.keyFile} changed but they cannot be used (${
          errorMessage(error)
        }); still serving the previous certificate`,
      );
      return;
    }
    log.info(
      `${tls.certFile} changed: TLS on ${
        formatHostPort({ host: addr.hostname, port: addr.port })
      } uses the new certificate for new connections`,
    );
  };
  // A renewal writes the certificate and the key one after the other: one
  // reload after both, not one with a new certificate and the old key.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const changed = () => {
    clearTimeout(timer);
    timer = setTimeout(reload, RELOAD_SETTLE_MS);
  };
  const watches = [tls.certFile, tls.keyFile, tls.clientCaFile]
    .filter((file) => file !== undefined)
    .map((file) => watchConfig(file, changed));
  const stopAccepting = () => {
    if (!accepting) return;
    accepting = false;
    clearTimeout(timer);
    closeQuietly(listener);
  };
  return {
    addr,
    stopAccepting,
    async shutdown() {
      stopAccepting();
      await Promise.all(watches.map((watch) => watch.close()));
      await loop;
      await inner.shutdown();
      for (const close of closers) close();
      // Closed connections end their relays at once; one that does not
      // (a Node TLS socket whose callbacks never come) must not keep the
      // process from exiting.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = await Promise.race([
        Promise.all([...relays]).then(() => false),
        new Promise<boolean>((resolve) =>
          timer = setTimeout(resolve, RELAY_END_WAIT_MS, true)
        ),
      ]);
      clearTimeout(timer);
      if (late) {
        log.warn(
          `${relays.size} TLS connection(s) had not ended ${
            formatDuration(RELAY_END_WAIT_MS)
          } after being closed; stopping without them`,
        );
      }
    },
  };
}

function formatAddr(addr: Deno.NetAddr): string {
  return formatHostPort({ host: addr.hostname, port: addr.port });
}

/**
 * Why a TLS client's certificate is not accepted, or `undefined` when it
 * is: issued by a client CA, in its validity period. node:tls asks the
 * TLS layer (`ssl.verifyError()`, what Node's own `tls.Server` calls to
 * set `authorized`), which a TLSSocket made by hand leaves to its owner.
 */
function clientCertificateProblem(socket: TLSSocket): string | undefined {
  const certificate = socket.getPeerCertificate();
  if (!certificate || Object.keys(certificate).length === 0) {
    return "no client certificate";
  }
  const subject = certificate.subject?.CN;
  const ssl = (socket as unknown as { ssl?: { verifyError?(): unknown } }).ssl;
  if (typeof ssl?.verifyError !== "function") {
    return "this Deno cannot check client certificates";
  }
  const code = ssl.verifyError();
  if (!code) return undefined;
  const why = typeof code === "string" ? code : errorMessage(code);
  return `client certificate${
    subject ? ` "${subject}"` : ""
  } not accepted (${why}): it must be issued by a CA of --client-ca and valid now`;
}

// An HTTP/1.1 client (every httptunneling client) reads why in the
// refusal the tunnel protocol defines; an HTTP/2 one is only closed.
async function refuseClient(
  stream: Duplex,
  alpn: string | false | null,
  reason: string,
): Promise<void> {
  if (alpn !== "h2") {
    const body = `${reason}\n`;
    const answer = [
      "HTTP/1.1 403 Forbidden",
      `${REFUSAL_HEADER}: certificate`,
      "Content-Type: text/plain; charset=utf-8",
      `Content-Length: ${new TextEncoder().encode(body).length}`,
      "Connection: close",
      "",
      body,
    ].join("\r\n");
    await writeAll(stream, new TextEncoder().encode(answer)).catch(() => {});
  }
  closeQuietly(stream);
}
