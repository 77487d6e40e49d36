/**
 * `serve` as a child process, against python3-websockets as the client:
 * tunnels to a local echo server, half-close, every refusal (401 logged by
 * token-less reason, 429, 403 before any connect, 502, 400), the plain web
 * site and its path checks, /status and /metrics, reloads of the tokens,
 * the config and the TLS certificate, a server without allow rules, and
 * graceful shutdown.
 *
 * @module
 */

import assert from "node:assert/strict";
import { makeCertificates } from "./_util/certs.ts";
import {
  bytes,
  connect,
  freePort,
  readAll,
  readExactly,
  startEchoServer,
  startServer,
  text,
  within,
  writeAll,
} from "./_util/net.ts";
import { startBlackHole } from "./_util/proxies.ts";
import { liveTunnel, runTool, startTool } from "./_util/tool.ts";
import {
  ALICE_TOKEN,
  fingerprintOf,
  logMatches,
  missingWebsockets,
  pythonClient,
  SERVE_TLS_ARGS,
  serveCertificates,
  startServe,
  TLS_FRONTS,
} from "./_util/serve.ts";

const ignore = missingWebsockets();

/** A raw HTTP/1.1 request to 127.0.0.1:`port`; the whole answer. */
async function rawRequest(port: number, request: string): Promise<string> {
  using conn = await connect(port);
  await writeAll(conn, bytes(request));
  return text(await within(readAll(conn), 10_000, "the raw answer"));
}

// A v1 tunnel upgraded by hand, then silent: it answers neither pings nor
// a close.
async function silentTunnel(
  servePort: number,
  targetPort: number,
): Promise<Deno.TcpConn> {
  const conn = await connect(servePort);
  await writeAll(
    conn,
    bytes(
      upgradeRequest("/", {
        Authorization: `Bearer ${ALICE_TOKEN}`,
        "X-Httptunneling-Target": `127.0.0.1:${targetPort}`,
      }).replace("Connection: close\r\n", ""),
    ),
  );
  const head = new Uint8Array(1024);
  const n = await within(conn.read(head), 10_000, "the 101");
  assert.match(text(head.subarray(0, n ?? 0)), /^HTTP\/1\.1 101 /);
  return conn;
}

function upgradeRequest(path: string, headers: Record<string, string>) {
  return [
    `GET ${path} HTTP/1.1`,
    "Host: 127.0.0.1",
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
    "Sec-WebSocket-Protocol: httptunneling.v1",
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
    "Connection: close",
    "",
    "",
  ].join("\r\n");
}

Deno.test({
  name:
    "serve: tunnels, half-close, refusals before any connect, the plain site, /status and /metrics",
  ignore,
  async fn() {
    await using echo = startEchoServer();
    // A target no rule allows: it must never see a connection.
    await using forbidden = startServer(async () => {});
    const closedPort = freePort();
    const statusPort = freePort();
    const dir = await Deno.makeTempDir({ prefix: "httptunneling-serve-" });
    await Deno.mkdir(`${dir}/site/docs`, { recursive: true });
    await Deno.writeTextFile(`${dir}/site/index.html`, "<h1>hello</h1>\n");
    await Deno.writeTextFile(`${dir}/site/docs/a b.txt`, "spaced\n");
    await Deno.writeTextFile(`${dir}/secret.txt`, "outside the site\n");
    await Deno.symlink(`${dir}/secret.txt`, `${dir}/site/link.txt`);
    await using serve = await startServe({
      dir,
      args: [
        "--allow",
        `127.0.0.1:${echo.port},127.0.0.1:${closedPort},nonexistent.invalid:1`,
        "--allow",
        `127.0.0.0/8:${echo.port},10.0.0.0/8:${forbidden.port}`,
        "--site",
        "site",
        "--status",
        `127.0.0.1:${statusPort}`,
        "--path",
        "/t",
      ],
    });
    const url = `ws://127.0.0.1:${serve.port}/t`;

    // A tunnel, with half-close: the client's eof reaches the echo server
    // as FIN, its FIN comes back as eof, then the server closes 1000.
    const hello = await pythonClient({
      url,
      token: ALICE_TOKEN,
      target: `127.0.0.1:${echo.port}`,
      send: "hello through the tunnel",
    });
    assert.equal(hello.status, 101);
    assert.equal(hello.protocol, "httptunneling.v1");
    assert.equal(hello.received, "hello through the tunnel");
    assert.equal(hello.eof, true);
    assert.equal(hello.acked, 24);
    assert.equal(hello.close_code, 1000);

    // 3 MiB: more than the window, so acks must flow.
    const big = await pythonClient({
      url,
      token: ALICE_TOKEN,
      target: `127.0.0.1:${echo.port}`,
      send: "0123456789abcdef".repeat(4096),
      repeat: 48,
    });
    assert.equal(big.status, 101);
    assert.equal(big.received_len, 3 * 1024 * 1024);
    assert.equal(big.acked, 3 * 1024 * 1024);
    assert.equal(big.eof, true);

    // A name allowed through a CIDR rule: localhost resolves into 127/8.
    const byName = await pythonClient({
      url,
      token: ALICE_TOKEN,
      target: `localhost:${echo.port}`,
      send: "by name",
    });
    assert.equal(byName.status, 101);
    assert.equal(byName.received, "by name");

    const refusals: [Record<string, unknown>, number, string][] = [
      [{ token: "wrong-token-0123456789" }, 401, "auth"],
      [{}, 401, "auth"],
      [
        { token: ALICE_TOKEN, target: `127.0.0.1:${forbidden.port}` },
        403,
        "not-allowed",
      ],
      [
        { token: ALICE_TOKEN, target: `localhost:${forbidden.port}` },
        403,
        "not-allowed",
      ],
      [
        { token: ALICE_TOKEN, target: `127.0.0.1:${closedPort}` },
        502,
        "refused",
      ],
      [
        { token: ALICE_TOKEN, target: "nonexistent.invalid:1" },
        502,
        "unreachable",
      ],
      [{ token: ALICE_TOKEN, target: "no port" }, 400, "bad-request"],
      [{ token: ALICE_TOKEN, target: undefined }, 400, "bad-request"],
    ];
    for (const [extra, status, refusal] of refusals) {
      const report = await pythonClient({
        url,
        target: `127.0.0.1:${echo.port}`,
        ...extra,
      });
      assert.deepEqual(
        [report.status, report.refusal],
        [status, refusal],
        JSON.stringify(extra),
      );
    }
    assert.equal(forbidden.accepted, 0, "a refused target saw a connection");

    // The refusal's body is one line; the token is never logged.
    const answer = await rawRequest(
      serve.port,
      upgradeRequest("/t", {
        Authorization: `Bearer ${ALICE_TOKEN}`,
        "X-Httptunneling-Target": `127.0.0.1:${forbidden.port}`,
      }),
    );
    assert.match(answer, /^HTTP\/1\.1 403 Forbidden\r\n/);
    assert.match(answer, /\r\nx-httptunneling-refusal: not-allowed\r\n/i);
    assert.match(
      answer,
      new RegExp(
        `\r\n\r\n127\\.0\\.0\\.1:${forbidden.port} is not covered by any allow rule\n$`,
      ),
    );
    const log = await logMatches(serve, /tunnel 3 closed/);
    assert.doesNotMatch(log, new RegExp(ALICE_TOKEN));
    assert.doesNotMatch(log, /wrong-token/);
    assert.match(
      log,
      /refused 401 auth: client 127\.0\.0\.1:\d+: unknown token/,
    );
    assert.match(
      log,
      /refused 401 auth: client 127\.0\.0\.1:\d+: no bearer token/,
    );
    assert.match(
      log,
      new RegExp(
        `tunnel 1 open: token alice client 127\\.0\\.0\\.1:\\d+ target 127\\.0\\.0\\.1:${echo.port}`,
      ),
    );
    assert.match(
      log,
      new RegExp(
        `tunnel 1 closed: token alice client 127\\.0\\.0\\.1:\\d+ target 127\\.0\\.0\\.1:${echo.port}, 24 B up, 24 B down, [0-9.]+ m?s: done`,
      ),
    );
    assert.match(log, /tunnel 2 closed: .* 3\.0 MiB up, 3\.0 MiB down/);
    assert.match(
      log,
      /refused 403 not-allowed: client .* token alice target localhost:\d+: localhost:\d+ resolves to 127\.0\.0\.1.*, which no allow rule covers/,
    );

    // Not a tunnel request: the plain site.
    const site = `http://127.0.0.1:${serve.port}`;
    const index = await fetch(`${site}/`);
    assert.equal(index.status, 200);
    assert.equal(await index.text(), "<h1>hello</h1>\n");
    const spaced = await fetch(`${site}/docs/a%20b.txt`);
    assert.equal(await spaced.text(), "spaced\n");
    const missing = await fetch(`${site}/nothing`);
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
    // The tunnel path without an upgrade is a page like any other.
    const tunnelPath = await fetch(`${site}/t`);
    assert.equal(tunnelPath.status, 404);
    assert.equal(tunnelPath.headers.get("x-httptunneling-refusal"), null);
    await tunnelPath.body?.cancel();
    // An upgrade without our subprotocol is not a tunnel either.
    const otherProtocol = await rawRequest(
      serve.port,
      upgradeRequest("/t", {}).replace(
        "Sec-WebSocket-Protocol: httptunneling.v1",
        "Sec-WebSocket-Protocol: chat",
      ),
    );
    assert.match(otherProtocol, /^HTTP\/1\.1 404 /);
    for (
      const path of [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/docs/..%2f..%2fsecret.txt",
        "/docs%2f..%2f..%2fsecret.txt",
        "/..%5csecret.txt",
        "/link.txt",
      ]
    ) {
      const raw = await rawRequest(
        serve.port,
        `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
      );
      assert.match(raw, /^HTTP\/1\.1 (404|400) /, path);
      assert.doesNotMatch(raw, /outside the site/, path);
    }

    // /status and /metrics on the loopback address.
    const status = await (await fetch(`http://127.0.0.1:${statusPort}/status`))
      .json();
    assert.deepEqual(status.tokens, ["alice"]);
    assert.equal(status.tunnels.length, 0);
    assert.equal(status.refusals["not-allowed"], 3);
    assert.equal(status.refusals.auth, 2);
    assert.ok(status.allow.includes(`127.0.0.1:${echo.port}`));
    const metrics =
      await (await fetch(`http://127.0.0.1:${statusPort}/metrics`))
        .text();
    assert.match(
      metrics,
      /httptunneling_serve_refusals_total\{reason="auth"\} 2/,
    );
    assert.match(
      metrics,
      new RegExp(
        `httptunneling_connections_failed_total\\{entry="127\\.0\\.0\\.1:${serve.port}",reason="refused"\\} 1`,
      ),
    );
    assert.match(
      metrics,
      new RegExp(
        `httptunneling_bytes_total\\{entry="127\\.0\\.0\\.1:${serve.port}",direction="up"\\} ${
          24 + 3 * 1024 * 1024 + 7
        }`,
      ),
    );
    assert.doesNotMatch(
      metrics + JSON.stringify(status),
      new RegExp(ALICE_TOKEN),
    );

    const { code } = await serve.stop();
    assert.equal(code, 0);
  },
});

Deno.test({
  name: "serve: 10 failed authentications from an address get 429 for a while",
  ignore,
  async fn() {
    await using echo = startEchoServer();
    await using serve = await startServe({
      args: ["--allow", `127.0.0.1:${echo.port}`],
    });
    const url = `ws://127.0.0.1:${serve.port}/`;
    for (let i = 0; i < 10; i++) {
      const report = await pythonClient({
        url,
        token: `bad-token-${i}-0123456789`,
      });
      assert.equal(report.status, 401);
    }
    // Blocked now, even with the right token.
    const blocked = await pythonClient({
      url,
      token: ALICE_TOKEN,
      target: `127.0.0.1:${echo.port}`,
    });
    assert.deepEqual([blocked.status, blocked.refusal], [429, "rate-limited"]);
    await logMatches(serve, /127\.0\.0\.1: too many failed authentications/);
    await logMatches(serve, /refused 429 rate-limited/);
  },
});

Deno.test("serve: no allow rule, no token or a short token: refuses to start, saying why", async () => {
  const dir = await Deno.makeTempDir({ prefix: "httptunneling-serve-" });
  try {
    await Deno.writeTextFile(`${dir}/tokens.txt`, `alice ${ALICE_TOKEN}\n`);
    const noRule = await runTool([
      "serve",
      "--tokens",
      "tokens.txt",
      "--log",
      "-",
    ], dir);
    assert.equal(noRule.code, 1);
    assert.match(
      noRule.stderr,
      /no allow rule: serve refuses to start as an open relay/,
    );
    await Deno.writeTextFile(`${dir}/short.txt`, "# tokens\nbob too-short\n");
    const short = await runTool([
      "serve",
      "--tokens",
      "short.txt",
      "--allow",
      "git.internal:22",
      "--log",
      "-",
    ], dir);
    assert.equal(short.code, 1);
    assert.match(
      short.stderr,
      /short\.txt:2:5: the token of "bob" has 9 characters; use at least 16/,
    );
    const badRule = await runTool([
      "serve",
      "--tokens",
      "tokens.txt",
      "--allow",
      "git.internal",
    ], dir);
    assert.equal(badRule.code, 2);
    assert.match(
      badRule.stderr,
      /--allow: "git\.internal" is not an allow rule/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "serve: the tokens file and the config file reload; a bad version keeps the last good one",
  ignore,
  async fn() {
    await using echo = startEchoServer();
    const other = startEchoServer();
    await using _other = other;
    const BOB = "bob-token-abcdefghijklmnop";
    await using serve = await startServe({
      noTokensFlag: true,
      files: {
        "serve.conf": `tokens tokens.txt\nallow 127.0.0.1:${echo.port}\n`,
      },
      args: ["--config", "serve.conf"],
    });
    const url = `ws://127.0.0.1:${serve.port}/`;
    const through = (token: string, port: number) =>
      pythonClient({ url, token, target: `127.0.0.1:${port}`, send: "x" });
    assert.equal((await through(BOB, echo.port)).status, 401);

    await Deno.writeTextFile(
      `${serve.dir}/tokens.txt`,
      `alice ${ALICE_TOKEN}\nbob ${BOB}\n`,
    );
    await logMatches(
      serve,
      /tokens\.txt \(file changed\) applied: 2 token\(s\)/,
    );
    assert.equal((await through(BOB, echo.port)).status, 101);

    // A short token: logged at its place, the two good tokens stay.
    await Deno.writeTextFile(`${serve.dir}/tokens.txt`, `bob short\n`);
    await logMatches(
      serve,
      /tokens\.txt:1:5: the token of "bob" has 5 characters/,
    );
    await logMatches(serve, /the last good tokens stay in force/);
    assert.equal((await through(BOB, echo.port)).status, 101);

    assert.equal((await through(ALICE_TOKEN, other.port)).status, 403);
    await Deno.writeTextFile(
      `${serve.dir}/serve.conf`,
      `tokens tokens.txt\nallow 127.0.0.1:${other.port}\nmax-tunnels 5\n`,
    );
    await logMatches(
      serve,
      /serve\.conf \(file changed\) applied: 1 allow rule\(s\), max-tunnels 5/,
    );
    assert.equal((await through(ALICE_TOKEN, other.port)).status, 101);
    assert.equal((await through(ALICE_TOKEN, echo.port)).status, 403);

    await Deno.writeTextFile(
      `${serve.dir}/serve.conf`,
      `tokens tokens.txt\nallow 127.0.0.1:${echo.port}\nmax-tunels 5\n`,
    );
    await logMatches(
      serve,
      /serve\.conf:3:1: unknown key "max-tunels": did you mean max-tunnels\?/,
    );
    await logMatches(serve, /the last good config stays in force/);
    assert.equal((await through(ALICE_TOKEN, other.port)).status, 101);
  },
});

for (const { denoFlags, front } of TLS_FRONTS) {
  Deno.test({
    name: `serve: wss with a certificate that is reloaded when it changes (${
      denoFlags.length ? "Deno.listenTls" : "node:tls"
    })`,
    ignore,
    fn: () => certificateReload(denoFlags, front),
  });
}

async function certificateReload(denoFlags: string[], front: RegExp) {
  {
    await using echo = startEchoServer();
    const dir = await Deno.makeTempDir({ prefix: "httptunneling-serve-" });
    const first = await makeCertificates(dir);
    await Deno.copyFile(`${dir}/ca.pem`, `${dir}/ca1.pem`);
    await using serve = await startServe({
      dir,
      args: [
        "--allow",
        `127.0.0.1:${echo.port}`,
        "--cert",
        "server.pem",
        "--key",
        "server.key",
      ],
      denoFlags,
    });
    await logMatches(serve, front);
    assert.ok(first.caPem.length > 0);
    const url = `wss://127.0.0.1:${serve.port}/`;
    const hello = await pythonClient({
      url,
      token: ALICE_TOKEN,
      target: `127.0.0.1:${echo.port}`,
      send: "over tls",
      ca: `${dir}/ca1.pem`,
    });
    assert.equal(hello.received, "over tls");
    // Other requests over TLS: the plain site, over HTTP/2 by ALPN.
    const h2 = await new Deno.Command("curl", {
      args: [
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code}",
        "--http2",
        "--cacert",
        `${dir}/ca1.pem`,
        `https://127.0.0.1:${serve.port}/`,
      ],
      stdout: "piped",
      stderr: "null",
    }).output();
    assert.equal(text(h2.stdout), "2 404");

    // A tunnel open across the reload keeps working on the old listener.
    const across = pythonClient({
      url,
      token: ALICE_TOKEN,
      target: `127.0.0.1:${echo.port}`,
      send: "across the reload",
      ca: `${dir}/ca1.pem`,
      hold: 6,
    });
    await logMatches(serve, /tunnel 2 open/);
    // A new CA and certificate: clients trusting only the new CA get in.
    const newDir = await Deno.makeTempDir({ prefix: "httptunneling-cert-" });
    try {
      await makeCertificates(newDir);
      await Deno.copyFile(`${newDir}/server.key`, `${dir}/server.key`);
      await Deno.copyFile(`${newDir}/server.pem`, `${dir}/server.pem`);
      await logMatches(
        serve,
        /server\.pem changed: TLS on .* uses the new certificate/,
      );
      const renewed = await pythonClient({
        url,
        token: ALICE_TOKEN,
        target: `127.0.0.1:${echo.port}`,
        send: "new certificate",
        ca: `${newDir}/ca.pem`,
      });
      assert.equal(renewed.received, "new certificate");
      const survived = await across;
      assert.equal(survived.received, "across the reload");
      assert.equal(survived.eof, true);
      assert.equal(survived.close_code, 1000);
      // A broken key: logged, the renewed certificate stays.
      await Deno.writeTextFile(`${dir}/server.key`, "not a key\n");
      await logMatches(
        serve,
        /cannot be used .*still serving the previous certificate/,
      );
      const still = await pythonClient({
        url,
        token: ALICE_TOKEN,
        target: `127.0.0.1:${echo.port}`,
        send: "still",
        ca: `${newDir}/ca.pem`,
      });
      assert.equal(still.received, "still");
      assert.equal((await serve.stop()).code, 0);
    } finally {
      await Deno.remove(newDir, { recursive: true });
    }
  }
}

Deno.test({
  name:
    "serve: SIGTERM refuses new tunnels, lets open ones finish, closes the rest 1001 after --shutdown-timeout",
  ignore,
  async fn() {
    await using echo = startEchoServer();
    await using serve = await startServe({
      args: ["--allow", `127.0.0.1:${echo.port}`, "--shutdown-timeout", "3s"],
    });
    const spec = {
      url: `ws://127.0.0.1:${serve.port}/`,
      token: ALICE_TOKEN,
      target: `127.0.0.1:${echo.port}`,
    };
    const stuck = pythonClient({
      ...spec,
      send: "long-lived",
      hold: 60,
      eof: false,
    });
    await logMatches(serve, /tunnel 1 open/);
    const finishing = pythonClient({ ...spec, send: "finishing", hold: 1.5 });
    await logMatches(serve, /tunnel 2 open/);
    const stopped = serve.stop();
    await logMatches(serve, /SIGTERM received: no new tunnels/);
    const late = await pythonClient({ ...spec, send: "late" });
    assert.deepEqual([late.status, late.refusal], [503, "busy"]);
    const finished = await finishing;
    assert.equal(finished.received, "finishing");
    assert.equal(finished.close_code, 1000);
    assert.equal(finished.eof, true);
    const cut = await stuck;
    assert.equal(cut.received, "long-lived");
    assert.equal(cut.close_code, 1001);
    assert.equal((await stopped).code, 0);
    const log = await serve.logText();
    assert.match(log, /refused 503 busy: .*the server is shutting down/);
    assert.match(log, /tunnel 2 closed: .*: done/);
    assert.match(log, /1 tunnel\(s\) still open after 3 s: closing them/);
    assert.match(log, /tunnel 1 closed: .*: server shutting down/);
    assert.match(log, /stopped\n$/);
  },
});

Deno.test({
  name:
    "serve: a client ignoring the window is cut off 1008 with bounded memory; --max-tunnels answers 503",
  ignore,
  async fn() {
    // A target that never reads: what the client sends piles up.
    let release = () => {};
    const held = new Promise<void>((resolve) => release = resolve);
    await using deaf = startServer(() => held);
    await using echo = startEchoServer();
    await using serve = await startServe({
      args: [
        "--allow",
        `127.0.0.1:${deaf.port},127.0.0.1:${echo.port}`,
        "--max-tunnels",
        "1",
      ],
    });
    const url = `ws://127.0.0.1:${serve.port}/`;
    try {
      const flood = await pythonClient({
        url,
        token: ALICE_TOKEN,
        target: `127.0.0.1:${deaf.port}`,
        send: "x".repeat(64 * 1024),
        repeat: 512,
        ignore_window: true,
        eof: false,
      });
      assert.equal(flood.status, 101);
      // 1008, or 1006 when the close frame is lost to the reset that
      // closing a socket with unread data sends.
      assert.ok(
        [1008, 1006].includes(flood.close_code!),
        `${flood.close_code}`,
      );
      assert.ok(flood.sent! < 32 * 1024 * 1024);
    } finally {
      release();
    }
    await logMatches(
      serve,
      /tunnel 1 closed: .*client ignored the flow-control window/,
    );

    const first = pythonClient({
      url,
      token: ALICE_TOKEN,
      target: `127.0.0.1:${echo.port}`,
      send: "first",
      hold: 3,
    });
    await logMatches(serve, /tunnel 2 open/);
    const second = await pythonClient({
      url,
      token: ALICE_TOKEN,
      target: `127.0.0.1:${echo.port}`,
    });
    assert.deepEqual([second.status, second.refusal], [503, "busy"]);
    assert.equal((await first).received, "first");
    await logMatches(
      serve,
      /refused 503 busy: .*the server has 1 tunnels open, its limit/,
    );
  },
});

Deno.test({
  name:
    "serve over TLS: SIGTERM ends within --shutdown-timeout although a client keeps an idle TLS connection open",
  ignore,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "httptunneling-serve-" });
    const certs = await makeCertificates(dir);
    await using serve = await startServe({
      dir,
      args: [
        "--allow",
        "127.0.0.1:1",
        "--cert",
        "server.pem",
        "--key",
        "server.key",
        "--shutdown-timeout",
        "1s",
      ],
    });
    // A browser-like client: one request, then the kept-alive connection
    // stays open and silent.
    using conn = await Deno.connectTls({
      hostname: "127.0.0.1",
      port: serve.port,
      caCerts: [certs.caPem],
    });
    await writeAll(conn, bytes("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
    const head = new Uint8Array(64);
    const n = await within(conn.read(head), 10_000, "the answer");
    assert.match(text(head.subarray(0, n ?? 0)), /^HTTP\/1\.1 404/);
    const started = performance.now();
    assert.equal((await serve.stop()).code, 0);
    const seconds = (performance.now() - started) / 1000;
    assert.ok(seconds < 10, `serve took ${seconds.toFixed(1)} s to exit`);
    assert.match(await serve.logText(), /stopped\n$/);
  },
});

Deno.test({
  name:
    "serve over TLS closes a connection that sends no request for two heartbeats and 5 s; a wss:// tunnel idle longer goes on",
  ignore,
  async fn() {
    await using certs = await serveCertificates();
    await using echo = startEchoServer();
    await using serve = await startServe({
      files: certs.files,
      args: [
        ...SERVE_TLS_ARGS,
        "--allow",
        `127.0.0.1:${echo.port}`,
        "--heartbeat",
        "1s",
      ],
    });
    const port = freePort();
    await using _tool = await startTool(
      `${port} 127.0.0.1 ${echo.port} wss://127.0.0.1:${serve.port}/ token=${ALICE_TOKEN} fingerprint=${await fingerprintOf(
        certs.cert,
      )}\n`,
    );
    using tunnel = await liveTunnel(port);
    // TLS done, then not a byte: a slow or idle client's connection.
    using silent = await Deno.connectTls({
      hostname: "127.0.0.1",
      port: serve.port,
      caCerts: [await Deno.readTextFile(certs.ca)],
    });
    await silent.handshake();
    const started = performance.now();
    const end = await within(
      silent.read(new Uint8Array(16)).catch(() => null),
      20_000,
      "serve closing the silent connection",
    );
    assert.equal(end, null);
    const seconds = (performance.now() - started) / 1000;
    assert.ok(seconds >= 6, `closed after ${seconds.toFixed(1)} s`);
    await logMatches(
      serve,
      /TLS connection from .* closed: nothing moved for 7/,
    );
    // The tunnel, silent all along but pinged by serve, still carries bytes.
    await writeAll(tunnel, bytes("after"));
    assert.equal(
      text(await within(readExactly(tunnel, 5), 5_000, "echo")),
      "after",
    );
  },
});

Deno.test({
  name:
    "serve (plain HTTP): SIGTERM ends it although a WebSocket client never answers the close",
  ignore,
  async fn() {
    await using echo = startEchoServer();
    await using serve = await startServe({
      args: [
        "--allow",
        `127.0.0.1:${echo.port}`,
        "--shutdown-timeout",
        "1s",
      ],
    });
    using _conn = await silentTunnel(serve.port, echo.port);
    const started = performance.now();
    assert.equal((await serve.stop()).code, 0);
    const seconds = (performance.now() - started) / 1000;
    assert.ok(seconds < 10, `serve took ${seconds.toFixed(1)} s to exit`);
  },
});

Deno.test({
  name: "serve: a client that answers no ping is closed after --heartbeat",
  ignore,
  async fn() {
    await using echo = startEchoServer();
    await using serve = await startServe({
      args: ["--allow", `127.0.0.1:${echo.port}`, "--heartbeat", "1s"],
    });
    using _conn = await silentTunnel(serve.port, echo.port);
    const log = await logMatches(serve, /tunnel 1 closed: .*/, 20_000);
    assert.match(log, /tunnel 1 closed: .*: no pong within the heartbeat/);
  },
});

Deno.test({
  name:
    "serve: a target whose connect hangs gets 504 timeout after --connect-timeout",
  ignore,
  async fn() {
    await using hole = await startBlackHole();
    await using serve = await startServe({
      args: ["--allow", `127.0.0.1:${hole.port}`, "--connect-timeout", "1s"],
    });
    const report = await pythonClient({
      url: `ws://127.0.0.1:${serve.port}/`,
      token: ALICE_TOKEN,
      target: `127.0.0.1:${hole.port}`,
    });
    assert.deepEqual([report.status, report.refusal], [504, "timeout"]);
    await logMatches(
      serve,
      /refused 504 timeout: .*connect to 127\.0\.0\.1:\d+ timed out after 1 s/,
    );
  },
});

Deno.test({
  name:
    "serve: a client that reads nothing stalls the target through TCP instead of filling the server's memory",
  ignore,
  async fn() {
    let written = 0;
    // A target that sends as fast as it is let.
    await using source = startServer(async (conn) => {
      const chunk = new Uint8Array(64 * 1024);
      while (true) written += await conn.write(chunk);
    });
    await using serve = await startServe({
      args: ["--allow", `127.0.0.1:${source.port}`],
    });
    const report = await pythonClient({
      url: `ws://127.0.0.1:${serve.port}/`,
      token: ALICE_TOKEN,
      target: `127.0.0.1:${source.port}`,
      stall: 3,
    });
    assert.equal(report.status, 101);
    // The WebSocket's 1 MiB and the socket buffers of two loopback hops;
    // without backpressure the target would have sent hundreds of MiB.
    assert.ok(written < 32 * 1024 * 1024, `${written} bytes written`);
    await logMatches(serve, /tunnel 1 closed/);
  },
});
