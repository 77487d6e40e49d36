import assert from "node:assert/strict";
import { WsRefusedError } from "../lib/errors.ts";
import { type Duplex, writeAll as writeStream } from "../lib/net/duplex.ts";
import { dialTcp } from "../lib/net/tcp.ts";
import { wsSessionUpgrade } from "../lib/proxy/ws_connect.ts";
import { ProxyHealth } from "../lib/route/health.ts";
import { SessionPool } from "../lib/route/session_pool.ts";
import {
  encodeFrame,
  FrameDecoder,
  type WelcomeFrame,
} from "../lib/session/frame.ts";
import { DEFAULT_SEND_BUFFER_BYTES } from "../lib/session/stream.ts";
import { pseudoRandomChunks, sha256Of } from "./_util/data.ts";
import {
  connect,
  freePort,
  pause,
  readAll,
  readExactly,
  startEchoServer,
  within,
  writeAll,
} from "./_util/net.ts";
import { escapeRegExp } from "./_util/local.ts";
import { missing, startSquid, type TestProcess } from "./_util/proxies.ts";
import {
  ALICE_TOKEN,
  logMatches,
  missingWebsockets,
  startServe,
} from "./_util/serve.ts";
import {
  captureLogs,
  entriesOf,
  liveTunnel,
  spawnRun,
  startTool,
  TEST_OPTIONS,
} from "./_util/tool.ts";
import { checksummedEcho, startCutter } from "./_util/cutter.ts";

const ignore = missingWebsockets() || missing("squid");

const MALLORY_TOKEN = "mallory-token-0123456789abcdef";

Deno.test({
  name:
    "resume: squid killed and restarted on its port mid-transfer; the session reconnects and the echo is byte-exact",
  ignore,
  async fn() {
    await using echo = startEchoServer();
    let squid: TestProcess | undefined = await startSquid();
    const squidPort = squid.port;
    await using serve = await startServe({
      args: ["--allow", `127.0.0.1:${echo.port}`],
    });
    await using logs = await captureLogs();
    const port = freePort();
    await using _tool = await startTool(
      `${port} 127.0.0.1 ${echo.port} http://127.0.0.1:${squidPort} ws://127.0.0.1:${serve.port} token=${ALICE_TOKEN} resume-window=1m\n`,
    );
    let restarted: TestProcess | undefined;
    try {
      await checksummedEcho(port, 4 * 1024 * 1024, async () => {
        await squid![Symbol.asyncDispose]();
        squid = undefined;
        await logs.waitFor(/reconnect attempt 1 /, 10_000);
        await pause(500);
        // A second http_port line brings squid back on the old port.
        restarted = await startSquid(`http_port 127.0.0.1:${squidPort}`);
      });
    } finally {
      await squid?.[Symbol.asyncDispose]();
      await restarted?.[Symbol.asyncDispose]();
    }
    await logs.waitFor(/session \S+ resumed on attempt \d+/);
    await logMatches(serve, /session \S+ resumed: token alice/);
    assert.ok(!logs.lines.some((line) => line.includes(ALICE_TOKEN)));
  },
});

Deno.test({
  name:
    "resume: the connection to serve is reset mid-transfer (a relay in between cut); the echo is byte-exact",
  ignore,
  async fn() {
    await using echo = startEchoServer();
    await using serve = await startServe({
      args: ["--allow", `127.0.0.1:${echo.port}`],
    });
    await using cutter = startCutter(serve.port);
    await using logs = await captureLogs();
    const port = freePort();
    await using _tool = await startTool(
      `${port} 127.0.0.1 ${echo.port} ws://127.0.0.1:${cutter.port} token=${ALICE_TOKEN}\n`,
    );
    await checksummedEcho(port, 4 * 1024 * 1024, () => {
      cutter.cut();
      return Promise.resolve();
    });
    await logs.waitFor(/session \S+ resumed on attempt \d+/);
    await logMatches(serve, /session \S+ lost its WebSocket/);
    await logMatches(serve, /session \S+ resumed: token alice/);
  },
});

Deno.test({
  name:
    "resume: the first squid of a hop dies and stays down; the reconnect fails over to the second and the echo is byte-exact",
  ignore,
  async fn() {
    await using echo = startEchoServer();
    let first: TestProcess | undefined = await startSquid();
    await using second = await startSquid();
    await using serve = await startServe({
      args: ["--allow", `127.0.0.1:${echo.port}`],
    });
    await using logs = await captureLogs();
    const port = freePort();
    await using _tool = await startTool(
      `${port} 127.0.0.1 ${echo.port} http://127.0.0.1:${first.port},http://127.0.0.1:${second.port} ws://127.0.0.1:${serve.port} token=${ALICE_TOKEN}\n`,
    );
    try {
      await checksummedEcho(port, 4 * 1024 * 1024, async () => {
        await first![Symbol.asyncDispose]();
        first = undefined;
      });
    } finally {
      await first?.[Symbol.asyncDispose]();
    }
    const resumed = await logs.waitFor(/session \S+ resumed on attempt \d+/);
    assert.match(resumed, new RegExp(`http://127\\.0\\.0\\.1:${second.port}`));
  },
});

Deno.test({
  name:
    "resume window: a server that stays unreachable ends the session on both ends, with the reason logged",
  ignore,
  async fn() {
    await using echo = startEchoServer();
    await using serve = await startServe({
      args: ["--allow", `127.0.0.1:${echo.port}`, "--resume-window", "2s"],
    });
    await using cutter = startCutter(serve.port);
    await using logs = await captureLogs();
    const port = freePort();
    await using _tool = await startTool(
      `${port} 127.0.0.1 ${echo.port} ws://127.0.0.1:${cutter.port} token=${ALICE_TOKEN} resume-window=2s\n`,
    );
    using conn = await connect(port);
    await writeAll(conn, new TextEncoder().encode("ping"));
    await within(readExactly(conn, 4), 10_000, "the echo");
    cutter.refuse();
    cutter.cut();
    // The local connection ends (reset or EOF) once the window passed.
    const ended = await within(
      conn.read(new Uint8Array(16)).catch(() => null),
      20_000,
      "the tunnel's end",
    );
    assert.equal(ended, null);
    await logs.waitFor(/resume window of 2 s passed/, 5_000);
    await logMatches(
      serve,
      /session \S+ expired: token alice: resume window expired .*1 stream\(s\) reset/,
    );
  },
});

Deno.test({
  name:
    "hijack: a HELLO naming alice's session over mallory's token gets a new session; alice's session goes on",
  ignore,
  async fn() {
    await using echo = startEchoServer();
    await using serve = await startServe({
      files: {
        "two.txt": `alice ${ALICE_TOKEN}\nmallory ${MALLORY_TOKEN}\n`,
      },
      noTokensFlag: true,
      args: ["--tokens", "two.txt", "--allow", `127.0.0.1:${echo.port}`],
    });
    const hello = async (token: string, session?: Uint8Array) => {
      const tcp = await dialTcp({ host: "127.0.0.1", port: serve.port }, {
        connectTimeoutMs: 2_000,
        keepAlive: false,
      });
      const ws = await wsSessionUpgrade(tcp, {
        proxy: { scheme: "ws", host: "127.0.0.1", port: serve.port },
        timeoutMs: 5_000,
        settings: {
          connectTimeoutMs: 2_000,
          handshakeTimeoutMs: 5_000,
          keepAlive: false,
          token,
        },
      });
      await writeStream(
        ws,
        encodeFrame(
          session
            ? { type: "hello", session, streams: [] }
            : { type: "hello", streams: [] },
        ),
      );
      const decoder = new FrameDecoder();
      const buffer = new Uint8Array(4096);
      while (true) {
        const n = await within(ws.read(buffer), 10_000, "WELCOME");
        assert.notEqual(n, null);
        const [frame] = decoder.push(buffer.subarray(0, n!));
        if (frame !== undefined) {
          assert.equal(frame.type, "welcome");
          return { ws, welcome: frame as WelcomeFrame };
        }
      }
    };
    const alice = await hello(ALICE_TOKEN);
    try {
      assert.equal(alice.welcome.resume, "new");
      const mallory = await hello(MALLORY_TOKEN, alice.welcome.session);
      mallory.ws.close();
      assert.equal(mallory.welcome.resume, "refused");
      assert.notDeepEqual(mallory.welcome.session, alice.welcome.session);
      await logMatches(
        serve,
        /session \S+ refused \(resume refused: token\): token mallory/,
      );
      // alice's transport was not taken over: a stream on it still works.
      await writeStream(
        alice.ws,
        encodeFrame({
          type: "open",
          stream: 1,
          host: "127.0.0.1",
          port: echo.port,
          window: 65536,
        }),
      );
      const decoder = new FrameDecoder();
      const buffer = new Uint8Array(4096);
      const n = await within(alice.ws.read(buffer), 10_000, "OPENED");
      assert.equal(decoder.push(buffer.subarray(0, n!))[0]?.type, "opened");
    } finally {
      alice.ws.close();
    }
  },
});

Deno.test({
  name:
    "mux: 200 tunnels share one session; one whose reader stalls does not hold up the others",
  ignore,
  async fn() {
    await using echo = startEchoServer();
    const statusPort = freePort();
    await using serve = await startServe({
      args: [
        "--allow",
        `127.0.0.1:${echo.port}`,
        "--status",
        `127.0.0.1:${statusPort}`,
      ],
    });
    const port = freePort();
    await using _tool = await startTool(
      `${port} 127.0.0.1 ${echo.port} ws://127.0.0.1:${serve.port} token=${ALICE_TOKEN} max-streams=250\n`,
    );
    // The stalled one: sends 64 MiB and reads nothing, so its echo fills
    // every window and socket buffer on the way and its sending stops.
    using stalled = await connect(port);
    let stalledSent = false;
    const stalledSend = (async () => {
      for (const chunk of pseudoRandomChunks(1, 64 * 1024 * 1024)) {
        await writeAll(stalled, chunk);
      }
      stalledSent = true;
    })().catch(() => {});
    await pause(500);
    const payload = [...pseudoRandomChunks(2, 32 * 1024)][0];
    const conns = await Promise.all(
      Array.from({ length: 199 }, () => connect(port)),
    );
    try {
      await within(
        Promise.all(conns.map(async (conn) => {
          await writeAll(conn, payload);
          const back = await readExactly(conn, payload.length);
          assert.equal(sha256Of([back]), sha256Of([payload]));
        })),
        60_000,
        "199 echoes past the stalled tunnel",
      );
      const status = await (await fetch(
        `http://127.0.0.1:${statusPort}/status`,
      )).json();
      assert.equal(status.sessions.length, 1);
      assert.equal(status.sessions[0].token, "alice");
      assert.equal(status.sessions[0].connected, true);
      assert.equal(status.sessions[0].streams, 200);
      assert.equal(status.tunnels.length, 200);
      assert.match(status.tunnels[0].via, /^session \S+ stream \d+$/);
    } finally {
      for (const conn of conns) conn.close();
    }
    assert.equal(stalledSent, false, "the stalled tunnel should be stalled");
    stalled.close();
    await stalledSend;
    const log = await serve.logText();
    assert.equal(log.match(/session \S+ new/g)?.length, 1, log);
    assert.equal(log.match(/tunnel \d+ open:/g)?.length, 200);
  },
});

Deno.test({
  name:
    "mux=off: each tunnel has a session of its own, which ends (close 1000) with the tunnel; resume=off: a cut ends the tunnel at once",
  ignore,
  async fn() {
    await using echo = startEchoServer();
    await using serve = await startServe({
      args: ["--allow", `127.0.0.1:${echo.port}`],
    });
    await using cutter = startCutter(serve.port);
    await using logs = await captureLogs();
    const [own, fragile] = [freePort(), freePort()];
    await using _tool = await startTool(
      `${own} 127.0.0.1 ${echo.port} ws://127.0.0.1:${serve.port} token=${ALICE_TOKEN} mux=off\n` +
        `${fragile} 127.0.0.1 ${echo.port} ws://127.0.0.1:${cutter.port} token=${ALICE_TOKEN} resume=off\n`,
    );
    const ping = async (port: number) => {
      const conn = await connect(port);
      await writeAll(conn, new TextEncoder().encode("ping"));
      await within(readExactly(conn, 4), 10_000, "the echo");
      return conn;
    };
    for (let i = 0; i < 2; i++) {
      const conn = await ping(own);
      await conn.closeWrite();
      assert.equal(
        await within(conn.read(new Uint8Array(8)), 10_000, "EOF"),
        null,
      );
      conn.close();
    }
    const ended = await logMatches(
      serve,
      /(session \S+ ended: token alice[^]*){2}/,
    );
    assert.equal(ended.match(/session \S+ new/g)?.length, 2);
    using conn = await ping(fragile);
    cutter.cut();
    const end = await within(
      conn.read(new Uint8Array(8)).catch(() => null),
      10_000,
      "the tunnel's end",
    );
    assert.equal(end, null);
    await logs.waitFor(/ended: .*\(resume=off\)/);
    assert.ok(!logs.lines.some((line) => /reconnect attempt/.test(line)));
  },
});

Deno.test({
  name:
    "early data: on a connected session a stream's first bytes travel in its OPEN's message, before OPENED, and are answered; a refusal after them reaches the opener with serve's reason",
  ignore,
  async fn() {
    await using squid = await startSquid();
    await using echo = startEchoServer();
    await using serve = await startServe({
      args: ["--allow", `127.0.0.1:${echo.port}`],
    });
    const [entry] = entriesOf(
      `${freePort()} 127.0.0.1 ${echo.port} http://127.0.0.1:${squid.port} ws://127.0.0.1:${serve.port} token=${ALICE_TOKEN}\n`,
    );
    assert.equal(entry.route.kind, "chain");
    const hops = entry.route.kind === "chain" ? entry.route.hops : [];
    const options = { ...TEST_OPTIONS, ...entry.options };
    const context = { health: new ProxyHealth() };
    const pool = new SessionPool();
    const streams: Duplex[] = [];
    const open = async (port: number) => {
      const pooled = await within(
        pool.open(hops, { host: "127.0.0.1", port }, options, context),
        10_000,
        "a stream",
      );
      assert.ok(pooled !== undefined);
      streams.push(pooled.stream);
      return pooled;
    };
    try {
      // The first stream opens the session and comes after OPENED.
      const first = await open(echo.port);
      await writeStream(first.stream, new TextEncoder().encode("one"));
      assert.equal(
        new TextDecoder().decode(
          await within(readExactly(first.stream, 3), 10_000, "echo"),
        ),
        "one",
      );
      // The next comes at once; what is written before the event loop
      // turns goes in the OPEN's WebSocket message.
      const second = await open(echo.port);
      const request = new TextEncoder().encode("early request");
      await writeStream(second.stream, request);
      assert.deepEqual(
        await within(
          readExactly(second.stream, request.length),
          10_000,
          "echo",
        ),
        request,
      );
      await second.accepted;
      await logMatches(
        serve,
        new RegExp(
          `session \\S+ stream 3: ${request.length} byte\\(s\\) came with the OPEN of 127\\.0\\.0\\.1:${echo.port}`,
        ),
      );
      assert.doesNotMatch(await serve.logText(), /stream 1: .*came with/);
      // A target serve does not allow, refused after bytes went with it:
      // the opener's `accepted`, reads and writes throw serve's refusal.
      const blocked = await open(echo.port + 1);
      await writeStream(blocked.stream, new TextEncoder().encode("hello"));
      // A reader waiting, and a writer waiting past the send buffer, when
      // the refusal comes: both are woken to throw it.
      const waitingRead = blocked.stream.read(new Uint8Array(8));
      const waitingWrite = writeStream(
        blocked.stream,
        new Uint8Array(DEFAULT_SEND_BUFFER_BYTES + 44 * 1024),
      );
      const refusal = await within(
        blocked.accepted.then(() => undefined, (error) => error),
        10_000,
        "the refusal",
      );
      assert.ok(refusal instanceof WsRefusedError, String(refusal));
      assert.equal(refusal.status, 403);
      for (const waiting of [waitingRead, waitingWrite] as Promise<unknown>[]) {
        await assert.rejects(
          within(waiting, 10_000, "a woken reader or writer"),
          (error) => error === refusal,
        );
      }
      await assert.rejects(
        () => blocked.stream.read(new Uint8Array(8)),
        (error) => error === refusal,
      );
      await assert.rejects(
        () => blocked.stream.write(Uint8Array.of(1)),
        (error) => error === refusal,
      );
      const served = await logMatches(
        serve,
        /stream 5: 5 byte\(s\) came with the OPEN[^]*refused 403 not-allowed: .*: (.+)$/m,
      );
      const reason = /refused 403 not-allowed: .*: (.+)$/m.exec(served)![1];
      assert.equal(refusal.serverReason, reason);
    } finally {
      for (const stream of streams) stream.close();
      // Their resets reach serve before the session's connection closes,
      // so that serve's shutdown finds no tunnel to wait for.
      await logMatches(serve, /tunnel 1 closed/).catch(() => {});
      await logMatches(serve, /tunnel 2 closed/).catch(() => {});
      pool.close();
    }
  },
});

Deno.test({
  name:
    "early data: a tunnel refused by serve after its first bytes went with the OPEN is logged as failed, with serve's reason, as a refusal before relaying is",
  ignore,
  async fn() {
    await using echo = startEchoServer();
    await using serve = await startServe({
      args: ["--allow", `127.0.0.1:${echo.port}`],
    });
    await using logs = await captureLogs();
    const [allowed, blocked] = [freePort(), freePort()];
    const hop = `ws://127.0.0.1:${serve.port} token=${ALICE_TOKEN}`;
    await using _tool = await startTool(
      `${allowed} 127.0.0.1 ${echo.port} ${hop}\n` +
        `${blocked} 127.0.0.1 ${echo.port + 1} ${hop}\n`,
    );
    // The session is connected by the first tunnel; the second one's
    // stream comes at once, and its bytes go before the refusal.
    using first = await connect(allowed);
    await writeAll(first, new TextEncoder().encode("ping"));
    await within(readExactly(first, 4), 10_000, "the echo");
    using conn = await connect(blocked);
    await writeAll(conn, new TextEncoder().encode("hello"));
    const back = await within(
      readAll(conn).catch(() => new Uint8Array(0)),
      10_000,
      "the tunnel's end",
    );
    assert.equal(back.length, 0);
    const served = await logMatches(
      serve,
      /refused 403 not-allowed: .*: (.+)$/m,
    );
    const reason = /refused 403 not-allowed: .*: (.+)$/m.exec(served)![1];
    const failed = await logs.waitFor(/ failed .*status 403/, 10_000);
    assert.match(
      failed,
      new RegExp(
        `^c\\d+ failed 127\\.0\\.0\\.1:\\d+ -> 127\\.0\\.0\\.1:${
          echo.port + 1
        } via ws://.*server says: ${escapeRegExp(reason)}`,
      ),
    );
    assert.equal((await serve.logText()).match(/session \S+ new/g)?.length, 1);
  },
});

Deno.test({
  name:
    "a tool stopped with SIGTERM ends its sessions on serve (close 1000 sent before it exits), so serve keeps nothing for a resume",
  ignore,
  async fn() {
    await using echo = startEchoServer();
    await using serve = await startServe({
      args: ["--allow", `127.0.0.1:${echo.port}`],
    });
    const port = freePort();
    await using tool = await spawnRun(
      `${port} 127.0.0.1 ${echo.port} ws://127.0.0.1:${serve.port}/ token=${ALICE_TOKEN}\n`,
      ["--shutdown-timeout", "1s"],
    );
    using _tunnel = await liveTunnel(port);
    await logMatches(serve, /session \S+ new: token alice/);
    tool.child.kill("SIGTERM");
    await within(tool.child.status, 20_000, "the tool's exit");
    await logMatches(serve, /session \S+ ended: token alice/);
    assert.doesNotMatch(await serve.logText(), /lost its WebSocket/);
  },
});
