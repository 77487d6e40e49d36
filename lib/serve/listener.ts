/**
 * The far end's HTTP listener: `Deno.serve` (HTTP/1.1; HTTP/2 too), plain
 * or with TLS from a certificate and key file that are reloaded when they
 * change.
 *
 * Deno.serve cannot change its certificate, and shutting a server down
 * closes every WebSocket it upgraded, so replacing the server on a
 * renewal would cut every open tunnel. With TLS, then, the TLS listener is
 * ours: a renewal swaps the certificate for the connections accepted
 * next, while connections already accepted go on. This is where each
 * decrypted connection's way is decided. On HTTP/1.1 its first request
 * head is read here (./direct.ts): a v2 upgrade on the tunnel path is
 * admitted by the far end like any request and answered here, the
 * session running over serve's own WebSocket on the connection
 * (./ws_transport.ts), without the loopback hop or `Deno.serve`'s
 * WebSocket layer; anything else, and HTTP/2, is relayed to a `Deno.serve`
 * on a loopback port that nothing else may use, the bytes read replayed
 * first. The client's address is carried over by the port of the loopback
 * connection. TLS (ALPN h2 and http/1.1) is `Deno.listenTls` where
 * `TCP_NODELAY` can be set on its listening socket (Linux, with FFI; Deno
 * offers no way to set it on the sockets it accepts, and
 * with Nagle's algorithm small writes would wait for the client's ACKs);
 * elsewhere it is `node:tls` over a TCP socket accepted by `Deno.listen`,
 * which costs more CPU per byte: every encrypted byte passes through
 * JavaScript. With `--client-ca` it is always `node:tls`: Deno's own TLS
 * server cannot ask for a client certificate.
 *
 * ```
 * client ─TCP─▶ Deno.listenTls ──────┐                ┌─ v2 upgrade ─▶ FarEnd.answer ─▶ 101 ─▶ WsConnection ─▶ session
 *        └─or─▶ Deno.listen ─node:tls┴─▶ first head ─┤
 *                                                     └─ else, h2 ─▶ relay ─▶ 127.0.0.1:internal ─▶ Deno.serve ─▶ FarEnd.handle
 * ```
 *
 * @module
 */

import { errorMessage } from "../errors.ts";
import { formatHostPort, type HostPort } from "../net/address.ts";
import { createSecureContext, TLSSocket } from "node:tls";
import { closeQuietly, type Duplex, writeAll } from "../net/duplex.ts";
import { keyPairProblem } from "../net/key_pair.ts";
import { setListenerNoDelay } from "../net/nodelay_listener.ts";
import { fromNodeStream, toNodeStream } from "../net/node_stream.ts";
import { logger } from "../observe/log.ts";
import { relay } from "../relay.ts";
import { formatDuration } from "../time/duration.ts";
import { settledWithin } from "../time/settle.ts";
import { watchConfig } from "../config/watch.ts";
import { BufferedDuplex } from "../net/buffered.ts";
import { REFUSAL_HEADER } from "../ws/handshake.ts";
import {
  answerUpgrade,
  type DirectSessions,
  readFirstRequest,
} from "./direct.ts";
import { notFound } from "./site.ts";

const log = logger("serve");

/** Quiet time after the certificate or key changed before both are read. */
const RELOAD_SETTLE_MS = 300;

// How often, and how far apart, a renewal tries to listen again on the
// port of the listener it closed.
const RELISTEN_ATTEMPTS = 50;
const RELISTEN_WAIT_MS = 10;

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

/** What answers the requests of {@link startFarListener}: the far end. */
export interface FarRequests extends DirectSessions {
  /** Answers each request of `Deno.serve`; `info.remoteAddr` is the client's. */
  handle(
    request: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  ): Promise<Response>;
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
 * @param far Answers the requests.
 * @param idleLimitMs With TLS: how long a connection may carry nothing,
 *   and its first request head may take (see {@link tlsIdleLimitMs}).
 * @returns The listener.
 * @throws when the address cannot be bound or the certificate cannot be used.
 */
export function startFarListener(
  address: HostPort,
  tls: TlsFiles | undefined,
  far: FarRequests,
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
    }, (request, info) => far.handle(request, info));
    return {
      addr: server.addr,
      stopAccepting: () => {},
      // Deno.serve's shutdown waits for each WebSocket's close handshake:
      // a client that never answers it must not keep serve from exiting.
      shutdown: () =>
        settleWithin(
          server.shutdown(),
          "connection(s) had not answered the close",
        ),
    };
  }
  return startTlsFront(address, tls, far, onError, idleLimitMs);
}

function startTlsFront(
  address: HostPort,
  tls: TlsFiles,
  far: FarRequests,
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
    return far.handle(request, { ...info, remoteAddr: client });
  });
  const relays = new Set<Promise<unknown>>();
  // The v2 sessions on serve's own WebSockets, each until its connection
  // is closed.
  const webSockets = new Set<Promise<void>>();
  // How to end each relayed connection at shutdown: its TLS stream, the
  // TCP connection under it and the loopback one to the inner server.
  // Closing the TLS stream alone leaves a pending read of the relay
  // waiting on the raw connection.
  const closers = new Set<() => void>();
  // Read and checked here, so that a broken renewal keeps the previous
  // certificate.
  const readPem = (): Pem => {
    const cert = Deno.readTextFileSync(tls.certFile);
    const key = Deno.readTextFileSync(tls.keyFile);
    const problem = keyPairProblem(cert, key);
    if (problem !== undefined) throw new Error(problem);
    if (tls.clientCaFile === undefined) return { cert, key };
    const ca = Deno.readTextFileSync(tls.clientCaFile);
    if (!ca.includes("-----BEGIN CERTIFICATE-----")) {
      throw new Error(`${tls.clientCaFile} holds no PEM certificate`);
    }
    return { cert, key, ca };
  };
  // One TLS connection: its handshake (`secure`, which `close` cuts
  // short), then its first request: a v2 upgrade is answered here, on the
  // connection; anything else is relayed to the inner server, the bytes
  // read replayed first. HTTP/2 goes to the inner server at once.
  const forward = async (
    remote: Deno.NetAddr,
    secure: () => Promise<Secured>,
    closeRaw: () => void,
  ) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let local: Deno.TcpConn | undefined;
    const close = () => {
      closeRaw();
      if (local !== undefined) closeQuietly(local);
    };
    closers.add(close);
    try {
      const { stream, alpn } = await Promise.race([
        secure(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            reject(new Error("TLS handshake timed out"));
            closeRaw();
          }, TLS_HANDSHAKE_TIMEOUT_MS);
        }),
      ]);
      clearTimeout(timer);
      let source: Duplex = stream;
      if (alpn !== "h2") {
        const first = await readFirstRequest(stream, {
          path: far.path,
          timeoutMs: idleLimitMs,
        });
        if (first === undefined) return;
        if (first.kind === "cut") {
          log.debug(
            `TLS connection from ${formatAddr(remote)} closed: ${first.why}`,
          );
          return;
        }
        if (first.kind === "upgrade") {
          log.debug(
            `TLS connection from ${
              formatAddr(remote)
            }: a v2 upgrade, answered by serve itself`,
          );
          const served = answerUpgrade(stream, first, remote, far, onError);
          webSockets.add(served);
          try {
            await served;
          } finally {
            webSockets.delete(served);
          }
          return;
        }
        source = new BufferedDuplex(stream, { initial: first.replay });
      }
      local = await Deno.connect({
        hostname: "127.0.0.1",
        port: inner.addr.port,
      });
      local.setNoDelay(true);
      clients.set(local.localAddr.port, remote);
      const ended = await relay(source, local, {
        idleTimeoutMs: idleLimitMs,
        lingerTimeoutMs: idleLimitMs,
      });
      if (ended.timedOut !== undefined) {
        log.debug(
          `TLS connection from ${
            formatAddr(remote)
          } closed: nothing moved for ${formatDuration(ended.idleMs)}`,
        );
      }
    } catch (error) {
      log.debug(
        `TLS connection from ${formatAddr(remote)} ended: ${
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
      closeRaw();
    }
  };
  const accept = (
    listener: Deno.Listener,
    each: (conn: Deno.Conn) => Promise<void>,
  ) =>
    (async () => {
      for await (const conn of listener) {
        const task = each(conn);
        relays.add(task);
        task.finally(() => relays.delete(task));
      }
    })().catch(() => {});
  const pem = readPem();
  const front =
    (pem.ca === undefined
      ? nativeFront(address, pem, accept, forward)
      : undefined) ?? nodeFront(address, pem, accept, forward);
  const addr = front.addr;
  let accepting = true;
  const reload = async () => {
    if (!accepting) return;
    let pem: Pem;
    try {
      pem = readPem();
    } catch (error) {
      log.error(
        `${tls.certFile} or ${tls.keyFile} changed but they cannot be used (${
          errorMessage(error)
        }); still serving the previous certificate`,
      );
      return;
    }
    try {
      await front.renew(pem);
    } catch (error) {
      log.error(
        `TLS on ${formatAddr(addr)} could not take the new certificate (${
          errorMessage(error)
        }); restart serve to take new connections again`,
      );
      return;
    }
    log.info(
      `${tls.certFile} changed: TLS on ${
        formatAddr(addr)
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
    front.close();
  };
  return {
    addr,
    stopAccepting,
    async shutdown() {
      stopAccepting();
      await Promise.all(watches.map((watch) => watch.close()));
      await front.loops();
      await inner.shutdown();
      // The far end's drain sent each of serve's own WebSockets its close:
      // their clients' answers end them (or their own time limit does).
      await settleWithin(
        Promise.all([...webSockets]),
        "WebSocket(s) had not answered the close",
      );
      for (const close of closers) close();
      // Closed connections end their relays at once; one that does not
      // (a Node TLS socket whose callbacks never come) must not keep the
      // process from exiting.
      const left = relays.size;
      await settleWithin(
        Promise.all([...relays]),
        `of ${left} TLS connection(s) had not ended`,
      );
    },
  };
}

/** A certificate, its key, and the client CAs when client certificates are asked for. */
interface Pem {
  readonly cert: string;
  readonly key: string;
  readonly ca?: string;
}

/** Where TLS connections are accepted, and how a renewal reaches it. */
interface TlsFront {
  readonly addr: Deno.NetAddr;
  /** Takes a new certificate for the connections accepted next. */
  renew(pem: Pem): Promise<void>;
  /** Stops accepting. */
  close(): void;
  /** Settles when every accept loop has ended. */
  loops(): Promise<void>;
}

type Accept = (
  listener: Deno.Listener,
  each: (conn: Deno.Conn) => Promise<void>,
) => Promise<void>;

/** A connection whose TLS handshake is done, and the protocol ALPN chose. */
interface Secured {
  readonly stream: Duplex;
  readonly alpn: string | null;
}

type Forward = (
  remote: Deno.NetAddr,
  secure: () => Promise<Secured>,
  closeRaw: () => void,
) => Promise<void>;

// Deno's own TLS (rustls, no bytes through JavaScript until decrypted),
// when TCP_NODELAY can be set on its listening socket: without it every
// small write that follows one not yet acknowledged (a data frame, then
// its ack) would wait for the client's delayed ACK. A renewal listens
// anew on the same port with the new certificate.
function nativeFront(
  address: HostPort,
  pem: Pem,
  accept: Accept,
  forward: Forward,
): TlsFront | undefined {
  const listen = (port: number, pem: Pem) =>
    Deno.listenTls({
      hostname: address.host,
      port,
      cert: pem.cert,
      key: pem.key,
      alpnProtocols: ["h2", "http/1.1"],
    });
  let listener = listen(address.port, pem);
  const addr = listener.addr;
  if (!setListenerNoDelay(addr.port)) {
    closeQuietly(listener);
    log.debug(
      "TLS by node:tls: TCP_NODELAY cannot be set on a Deno.listenTls socket here (it needs Linux and --allow-ffi)",
    );
    return undefined;
  }
  log.debug("TLS by Deno.listenTls, TCP_NODELAY set on its listening socket");
  const each = (conn: Deno.Conn) => {
    const tls = conn as Deno.TlsConn;
    return forward(
      tls.remoteAddr,
      () =>
        tls.handshake().then(({ alpnProtocol }) => ({
          stream: tls,
          alpn: alpnProtocol,
        })),
      () => closeQuietly(tls),
    );
  };
  const loops = [accept(listener, each)];
  let closed = false;
  return {
    addr,
    async renew(pem) {
      closeQuietly(listener);
      // The port is free once the pending accept has let go of the
      // closed listener, an event loop turn or so later.
      for (let attempt = 1;; attempt++) {
        await new Promise((resolve) => setTimeout(resolve, RELISTEN_WAIT_MS));
        if (closed) return;
        try {
          listener = listen(addr.port, pem);
          break;
        } catch (error) {
          if (
            !(error instanceof Deno.errors.AddrInUse) ||
            attempt === RELISTEN_ATTEMPTS
          ) throw error;
        }
      }
      if (!setListenerNoDelay(addr.port)) {
        log.warn(
          `TCP_NODELAY could not be set on ${
            formatAddr(addr)
          } after the renewal: small writes may wait for the client's ACKs`,
        );
      }
      loops.push(accept(listener, each));
    },
    close() {
      closed = true;
      closeQuietly(listener);
    },
    loops: () => Promise.all(loops).then(() => {}),
  };
}

// node:tls over a TCP socket accepted by Deno.listen, whose TCP_NODELAY is
// ours to set: for where FFI is not allowed (the compiled binary), and for
// client certificates, at a higher cost per byte.
function nodeFront(
  address: HostPort,
  pem: Pem,
  accept: Accept,
  forward: Forward,
): TlsFront {
  let context = createSecureContext(pem);
  const askCertificate = pem.ca !== undefined;
  const listener = Deno.listen({ hostname: address.host, port: address.port });
  const loop = accept(listener, (conn) => {
    const tcp = conn as Deno.TcpConn;
    tcp.setNoDelay(true);
    const socket = new TLSSocket(toNodeStream(tcp), {
      isServer: true,
      secureContext: context,
      ALPNProtocols: ["h2", "http/1.1"],
      // The certificate is checked below, so that a client without a good
      // one is told why in an HTTP answer rather than by a TLS alert.
      requestCert: askCertificate,
      rejectUnauthorized: false,
    });
    const stream = fromNodeStream(socket);
    return forward(
      tcp.remoteAddr,
      () =>
        new Promise<Secured>((resolve, reject) => {
          socket.once("secure", async () => {
            socket.removeAllListeners("secure");
            const problem = askCertificate
              ? clientCertificateProblem(socket)
              : undefined;
            if (problem === undefined) {
              return resolve({ stream, alpn: socket.alpnProtocol || null });
            }
            log.warn(
              `TLS client ${formatAddr(tcp.remoteAddr)} refused: ${problem}`,
            );
            await refuseClient(stream, socket.alpnProtocol, problem);
            reject(new Error(problem));
          });
          socket.once("error", reject);
          socket.once("close", () => reject(new Error("connection closed")));
          // A client that leaves during the handshake ends the socket's
          // reading side and nothing more: no close, no error.
          socket.once("end", () => reject(new Error("connection closed")));
        }),
      () => {
        closeQuietly(stream);
        closeQuietly(tcp);
      },
    );
  });
  return {
    addr: listener.addr,
    renew(pem) {
      context = createSecureContext(pem);
      return Promise.resolve();
    },
    close: () => closeQuietly(listener),
    loops: () => loop,
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

// Waits for `done` at most RELAY_END_WAIT_MS, then logs that some
// connections were left behind (`what` says which) and goes on.
async function settleWithin(done: Promise<unknown>, what: string) {
  if (!await settledWithin(done, RELAY_END_WAIT_MS)) {
    log.warn(
      `some ${what} ${
        formatDuration(RELAY_END_WAIT_MS)
      } after being closed; stopping without them`,
    );
  }
}
