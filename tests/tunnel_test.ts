import assert from "node:assert/strict";
import { relay } from "../lib/relay.ts";
import {
  hashExactly,
  pseudoRandomChunks,
  sendChunks,
  sha256Of,
} from "./_util/data.ts";
import {
  bytes,
  connect,
  echoRoundTrip,
  eventually,
  freePort,
  readAll,
  readExactly,
  startBannerServer,
  startEchoServer,
  startServer,
  text,
  within,
  writeAll,
} from "./_util/net.ts";
import {
  missing,
  startBlackHole,
  startSquid,
  startTinyproxy,
} from "./_util/proxies.ts";
import { captureLogs, startTool, TEST_OPTIONS } from "./_util/tool.ts";

Deno.test("a direct tunnel carries data both ways and keeps half-close", async () => {
  await using logs = await captureLogs();
  await using echo = startEchoServer();
  const port = freePort();
  await using _tool = await startTool(`${port} 127.0.0.1 ${echo.port}\n`);
  assert.equal(await echoRoundTrip(port, "hello direct"), "hello direct");
  await logs.waitFor(/^c\d+ open 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+ direct/);
  await logs.waitFor(
    /^c\d+ closed: 12 B up, 12 B down, .*client closed first after \d+ ms idle$/,
  );
});

Deno.test("a bare source port listens on loopback 127.0.0.1 only", async () => {
  await using echo = startEchoServer();
  const port = freePort();
  await using tool = await startTool(`${port} 127.0.0.1 ${echo.port}\n`);
  const [listener] = tool.supervisor.listeners.values();
  assert.equal(listener.addr.hostname, "127.0.0.1");
  await assert.rejects(
    connect(port, "127.0.0.2"),
    Deno.errors.ConnectionRefused,
  );
  assert.equal(await echoRoundTrip(port, "x"), "x");
});

Deno.test("a refused destination closes the client and logs why", async () => {
  await using logs = await captureLogs();
  const closedPort = freePort();
  const port = freePort();
  await using _tool = await startTool(`${port} 127.0.0.1 ${closedPort}\n`);
  using conn = await connect(port);
  assert.equal((await within(readAll(conn), 5_000, "close")).length, 0);
  await logs.waitFor(
    new RegExp(
      `^c\\d+ failed .* direct: Cannot connect to 127\\.0\\.0\\.1:${closedPort}`,
    ),
  );
});

Deno.test("a proxy answering 403 closes the client and logs the status line", async () => {
  await using logs = await captureLogs();
  let received = "";
  await using proxy = startServer(async (conn) => {
    const buffer = new Uint8Array(4096);
    while (!received.endsWith("\r\n\r\n")) {
      received += text(buffer.subarray(0, await conn.read(buffer) ?? 0));
    }
    await writeAll(
      conn,
      bytes("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"),
    );
    received += text(await readAll(conn));
  });
  const port = freePort();
  await using _tool = await startTool(
    `${port} example.com 25 127.0.0.1 ${proxy.port}\n`,
  );
  using conn = await connect(port);
  await writeAll(conn, bytes("EHLO must not reach the proxy\r\n"));
  assert.equal((await within(readAll(conn), 5_000, "close")).length, 0);
  await logs.waitFor(
    /^c\d+ failed .* -> example\.com:25 via http:\/\/127\.0\.0\.1:\d+: Proxy 127\.0\.0\.1:\d+ refused CONNECT to example\.com:25: "HTTP\/1\.1 403 Forbidden"$/,
  );
  await proxy[Symbol.asyncDispose]();
  assert.match(
    received,
    /^CONNECT example\.com:25 HTTP\/1\.1\r\n[^]*\r\n\r\n$/,
  );
  assert.doesNotMatch(received, /EHLO/);
});

Deno.test("a proxy that never answers times out while the listener keeps serving", async () => {
  await using logs = await captureLogs();
  await using echo = startEchoServer();
  const { promise: released, resolve: release } = Promise.withResolvers<void>();
  // The first connection hangs; later ones get a working tunnel.
  await using proxy = startServer(async (conn, index) => {
    await conn.read(new Uint8Array(4096));
    if (index === 0) return await released;
    await writeAll(conn, bytes("HTTP/1.1 200 OK\r\n\r\n"));
    await relay(conn, await connect(echo.port));
  });
  const port = freePort();
  await using _tool = await startTool(
    `${port} 127.0.0.1 ${echo.port} 127.0.0.1 ${proxy.port}\n`,
    { defaults: { ...TEST_OPTIONS, handshakeTimeoutMs: 1_000 } },
  );
  using stuck = await connect(port);
  const stuckEnds = readAll(stuck);
  assert.equal(
    await echoRoundTrip(port, "served meanwhile"),
    "served meanwhile",
  );
  assert.equal(
    (await within(stuckEnds, 5_000, "stuck client closed")).length,
    0,
  );
  await logs.waitFor(
    /^c\d+ failed .*: CONNECT 127\.0\.0\.1:\d+ through proxy 127\.0\.0\.1:\d+ timed out after 1 s$/,
  );
  release();
});

const noPython = missing("python3");

Deno.test({
  name: "a destination that never answers the connect ends at connect-timeout",
  ignore: noPython,
  async fn() {
    await using logs = await captureLogs();
    await using hole = await startBlackHole();
    await using echo = startEchoServer();
    const [port, other] = [freePort(), freePort()];
    await using _tool = await startTool(
      `${port} 127.0.0.1 ${hole.port} connect-timeout=300ms\n` +
        `${other} 127.0.0.1 ${echo.port}\n`,
    );
    using conn = await connect(port);
    const ends = readAll(conn);
    assert.equal(await echoRoundTrip(other, "meanwhile"), "meanwhile");
    assert.equal((await within(ends, 5_000, "client closed")).length, 0);
    await logs.waitFor(
      /^c\d+ failed .* direct: TCP connect to 127\.0\.0\.1:\d+ timed out after 300 ms$/,
    );
  },
});

Deno.test({
  name: "shutting down while a connect hangs gives it up at once",
  ignore: noPython,
  async fn() {
    await using logs = await captureLogs();
    await using hole = await startBlackHole();
    const port = freePort();
    const tool = await startTool(`${port} 127.0.0.1 ${hole.port}\n`, {
      defaults: { ...TEST_OPTIONS, connectTimeoutMs: 60_000 },
    });
    using conn = await connect(port);
    const ends = readAll(conn);
    await eventually(
      () => tool.supervisor.tunnels.length === 1,
      2_000,
      "the tunnel opening",
    );
    // Well before the minute the connect would otherwise wait.
    await within(tool.supervisor.shutdown(), 2_000, "shutdown");
    assert.equal((await within(ends, 2_000, "client closed")).length, 0);
    await logs.waitFor(/^c\d+ closed by httptunneling while opening /);
  },
});

const noSquid = missing("squid");
const noTinyproxy = missing("tinyproxy");
const BANNER = "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n";

Deno.test({
  name: "through real squid: a destination that speaks first, then echo",
  ignore: noSquid,
  async fn() {
    await using squid = await startSquid();
    await using banner = startBannerServer(BANNER);
    const port = freePort();
    await using _tool = await startTool(
      `${port} 127.0.0.1 ${banner.port} 127.0.0.1 ${squid.port}\n`,
    );
    await assertBannerThenEcho(port);
  },
});

Deno.test({
  name: "through real tinyproxy: a destination that speaks first, then echo",
  ignore: noTinyproxy,
  async fn() {
    await using tinyproxy = await startTinyproxy();
    await using banner = startBannerServer(BANNER);
    const port = freePort();
    await using _tool = await startTool(
      `${port} 127.0.0.1 ${banner.port} http://127.0.0.1:${tinyproxy.port}\n`,
    );
    await assertBannerThenEcho(port);
  },
});

async function assertBannerThenEcho(port: number): Promise<void> {
  using conn = await connect(port);
  const banner = await within(
    readExactly(conn, BANNER.length),
    10_000,
    "banner",
  );
  assert.equal(text(banner), BANNER);
  await writeAll(conn, bytes("after banner"));
  const echoed = await within(readExactly(conn, 12), 10_000, "echo");
  assert.equal(text(echoed), "after banner");
}

// squid and tinyproxy close the whole tunnel when one side shuts down, so
// this transfer ends by byte count, not by half-close.
Deno.test({
  name:
    "through real squid: 64 MiB each way at the same time, checked by sha256",
  ignore: noSquid,
  async fn() {
    const SIZE = 64 * 1024 * 1024;
    await using squid = await startSquid();
    let serverSaw: Promise<string> | undefined;
    await using destination = startServer(async (conn) => {
      serverSaw = hashExactly(conn, SIZE);
      await sendChunks(conn, pseudoRandomChunks(2, SIZE));
      await serverSaw;
    });
    const port = freePort();
    await using _tool = await startTool(
      `${port} 127.0.0.1 ${destination.port} http://127.0.0.1:${squid.port}\n`,
    );
    using conn = await connect(port);
    const [, clientSaw] = await within(
      Promise.all([
        sendChunks(conn, pseudoRandomChunks(1, SIZE)),
        hashExactly(conn, SIZE),
      ]),
      120_000,
      "64 MiB each way",
    );
    assert.equal(clientSaw, sha256Of(pseudoRandomChunks(2, SIZE)));
    assert.equal(await serverSaw, sha256Of(pseudoRandomChunks(1, SIZE)));
  },
});
