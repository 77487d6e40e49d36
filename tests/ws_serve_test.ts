import assert from "node:assert/strict";
import { pseudoRandomChunks, sha256Of } from "./_util/data.ts";
import {
  bytes,
  connect,
  freePort,
  pause,
  readAll,
  readExactly,
  startEchoServer,
  text,
  within,
  writeAll,
} from "./_util/net.ts";
import { missing, startSquid } from "./_util/proxies.ts";
import {
  ALICE_TOKEN,
  fingerprintOf,
  logMatches,
  missingWebsockets,
  serveCertificates,
  startServe,
} from "./_util/serve.ts";
import { captureLogs, startTool, TEST_OPTIONS } from "./_util/tool.ts";

// serve itself needs no python, but its helpers share the skip.
const ignore = missingWebsockets() || missing("squid");

Deno.test({
  name:
    "client -> squid -> serve over wss:// (pinned): 2 MiB both ways with half-close, both ends log the tunnel",
  ignore,
  async fn() {
    await using certs = await serveCertificates();
    await using echo = startEchoServer();
    await using squid = await startSquid();
    await using serve = await startServe({
      files: certs.files,
      args: [
        "--cert",
        "server.pem",
        "--key",
        "server.key",
        "--path",
        "/t",
        "--allow",
        `127.0.0.1:${echo.port}`,
      ],
    });
    await using logs = await captureLogs();
    const port = freePort();
    const pin = await fingerprintOf(certs.cert);
    await using _tool = await startTool(
      `${port} 127.0.0.1 ${echo.port} http://127.0.0.1:${squid.port} wss://127.0.0.1:${serve.port}/t token=${ALICE_TOKEN} fingerprint=${pin}\n`,
    );
    using conn = await connect(port);
    // Send, shut down, read the reply: the eof crosses as a WebSocket text
    // message, reaches the echo server as FIN, and its FIN comes back.
    const sent = [...pseudoRandomChunks(3, 2 * 1024 * 1024, 40_000)];
    const [received] = await within(
      Promise.all([
        readAll(conn),
        (async () => {
          for (const chunk of sent) await writeAll(conn, chunk);
          await conn.closeWrite();
        })(),
      ]),
      60_000,
      "the round trip",
    );
    assert.equal(received.length, 2 * 1024 * 1024);
    assert.equal(sha256Of([received]), sha256Of(sent));
    await logMatches(
      serve,
      new RegExp(
        `tunnel \\d+ open: token alice client 127\\.0\\.0\\.1:\\d+ target 127\\.0\\.0\\.1:${echo.port}`,
      ),
    );
    await logMatches(serve, /tunnel \d+ closed: .*2\.0 MiB up, 2\.0 MiB down/);
    const open = await logs.waitFor(/ open .* via /);
    assert.match(
      open,
      new RegExp(`wss://127\\.0\\.0\\.1:${serve.port}/t`),
    );
    assert.ok(!logs.lines.some((line) => line.includes(ALICE_TOKEN)));
    assert.ok(!(await serve.logText()).includes(ALICE_TOKEN));
  },
});

Deno.test({
  name:
    "refusals by serve (bad token, disallowed target, unreachable target) are logged on both ends with the same reason",
  ignore,
  async fn() {
    await using squid = await startSquid();
    await using echo = startEchoServer();
    const closedPort = freePort();
    await using serve = await startServe({
      args: ["--allow", `127.0.0.1:${echo.port},127.0.0.1:${closedPort}`],
    });
    await using logs = await captureLogs();
    const [badToken, blocked, unreachable] = [
      freePort(),
      freePort(),
      freePort(),
    ];
    const hop = `http://127.0.0.1:${squid.port} ws://127.0.0.1:${serve.port}/`;
    await using _tool = await startTool(
      [
        `${badToken} 127.0.0.1 ${echo.port} ${hop} token=not-the-token`,
        `${blocked} 127.0.0.1 ${echo.port + 1} ${hop} token=${ALICE_TOKEN}`,
        `${unreachable} 127.0.0.1 ${closedPort} ${hop} token=${ALICE_TOKEN}`,
      ].join("\n"),
    );
    const cases = [
      { port: badToken, word: "auth", status: 401 },
      { port: blocked, word: "not-allowed", status: 403 },
      { port: unreachable, word: "refused", status: 502 },
    ];
    for (const { port, word, status } of cases) {
      using conn = await connect(port);
      // The client's connection is closed without a byte.
      assert.equal((await within(readAll(conn), 15_000, word)).length, 0);
      const served = await logMatches(
        serve,
        new RegExp(`refused ${status} ${word}: .*: (.+)$`, "m"),
      );
      const reason = new RegExp(`refused ${status} ${word}: .*: (.+)$`, "m")
        .exec(served)![1];
      const client = await logs.waitFor(
        new RegExp(`server says: ${escape(reason)}`),
        15_000,
      );
      assert.match(client, new RegExp(`status ${status}`));
      assert.ok(!client.includes("not-the-token"));
    }
    assert.ok(!(await serve.logText()).includes("not-the-token"));
  },
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

Deno.test({
  name:
    "heartbeat=1s keeps a wss:// tunnel alive through a squid that drops tunnels idle for 3 s; a plain CONNECT tunnel idle as long is dropped",
  ignore,
  async fn() {
    await using certs = await serveCertificates();
    await using echo = startEchoServer();
    await using squid = await startSquid(
      "read_timeout 3 seconds\nclient_idle_pconn_timeout 3 seconds\n",
    );
    await using serve = await startServe({
      files: certs.files,
      args: [
        "--cert",
        "server.pem",
        "--key",
        "server.key",
        // serve's own pings only after an hour: the client's keep it alive.
        "--heartbeat",
        "1h",
        "--allow",
        `127.0.0.1:${echo.port}`,
      ],
    });
    const [viaWs, plain] = [freePort(), freePort()];
    const ca = await Deno.readTextFile(certs.ca);
    await using _tool = await startTool(
      [
        `${viaWs} 127.0.0.1 ${echo.port} http://127.0.0.1:${squid.port} wss://127.0.0.1:${serve.port} token=${ALICE_TOKEN} heartbeat=1s ca-file=ca.pem`,
        `${plain} 127.0.0.1 ${echo.port} http://127.0.0.1:${squid.port}`,
      ].join("\n"),
      { defaults: TEST_OPTIONS },
      { env: () => undefined, readFile: () => ca },
    );
    using ws = await connect(viaWs);
    using connect1 = await connect(plain);
    for (const conn of [ws, connect1]) {
      await writeAll(conn, bytes("ping"));
      assert.equal(
        text(await within(readExactly(conn, 4), 10_000, "echo")),
        "ping",
      );
    }
    // Long enough for squid's 3 s limit to pass twice over.
    await pause(8_000);
    await writeAll(ws, bytes("still"));
    assert.equal(
      text(await within(readExactly(ws, 5), 10_000, "echo after idle")),
      "still",
    );
    // squid closed the plain tunnel: its end of stream (or a reset) came.
    const ended = await within(
      connect1.read(new Uint8Array(16)).then((n) => n, () => null),
      10_000,
      "the plain tunnel's end",
    );
    assert.equal(ended, null);
  },
});
