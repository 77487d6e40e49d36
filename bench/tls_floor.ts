/**
 * The least a `wss://` route can cost in Deno: the two relays of a TLS hop
 * with nothing else, which bench/far_bench.ts runs beside the tool's routes
 * (route `floor`) so that the ratio any WebSocket design could reach here is
 * measured in the same run. No WebSocket, session, token, route or log:
 *
 * ```
 * client ─▶ out ─CONNECT through the proxy, then TLS─▶ in ─▶ target
 * ```
 *
 * `out` accepts plain TCP, opens a `CONNECT` tunnel to `in` through the
 * proxy (lib/proxy/http_connect.ts), starts TLS on it (lib/net/tls.ts) and
 * relays (lib/relay.ts), as the tool does for a `wss://` hop; `in` accepts
 * TLS with `Deno.listenTls` (`TCP_NODELAY` by FFI when allowed, as serve's
 * listener) and relays to the target, as serve does after its checks.
 *
 *   deno run --allow-net --allow-read --allow-ffi bench/tls_floor.ts \
 *     in CERT KEY LISTEN=TARGET...
 *   deno run --allow-net --allow-read bench/tls_floor.ts \
 *     out PROXY_PORT CA LISTEN=TARGET...
 *
 * Ports are on 127.0.0.1; each `LISTEN=TARGET` pair is one listener.
 */

import { closeQuietly } from "../lib/net/duplex.ts";
import { setListenerNoDelay } from "../lib/net/nodelay_listener.ts";
import { tlsHandshake } from "../lib/net/tls.ts";
import { httpConnect } from "../lib/proxy/http_connect.ts";
import { relay } from "../lib/relay.ts";

const HOST = "127.0.0.1";
const [side, first, second, ...pairs] = Deno.args;
const listeners = pairs.map((pair) => pair.split("=").map(Number));

/** Accepts on every listener and hands each connection to `carry`. */
async function serveAll(
  listen: (port: number) => Deno.Listener,
  carry: (conn: Deno.Conn, target: number) => Promise<void>,
): Promise<void> {
  await Promise.all(listeners.map(async ([port, target]) => {
    for await (const conn of listen(port)) {
      carry(conn, target).catch(() => closeQuietly(conn));
    }
  }));
}

if (side === "in") {
  const [cert, key] = [first, second].map((file) =>
    Deno.readTextFileSync(file)
  );
  await serveAll((port) => {
    const listener = Deno.listenTls({ hostname: HOST, port, cert, key });
    setListenerNoDelay(port);
    return listener;
  }, async (conn, target) => {
    const destination = await Deno.connect({ hostname: HOST, port: target });
    destination.setNoDelay(true);
    await relay(conn, destination);
  });
} else if (side === "out") {
  const proxyPort = Number(first);
  const caCerts = [Deno.readTextFileSync(second)];
  await serveAll((port) => Deno.listen({ hostname: HOST, port }), async (
    conn,
    target,
  ) => {
    (conn as Deno.TcpConn).setNoDelay(true);
    const proxy = await Deno.connect({ hostname: HOST, port: proxyPort });
    proxy.setNoDelay(true);
    const { tunnel } = await httpConnect(proxy, { host: HOST, port: target }, {
      proxyLabel: `${HOST}:${proxyPort}`,
      timeoutMs: 10_000,
    });
    await relay(
      conn,
      await tlsHandshake(tunnel, { host: HOST, port: target }, { caCerts }),
    );
  });
} else {
  console.error(
    "usage: tls_floor.ts in CERT KEY LISTEN=TARGET... | out PROXY_PORT CA LISTEN=TARGET...",
  );
  Deno.exit(2);
}
