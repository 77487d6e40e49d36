import assert from "node:assert/strict";
import {
  bytes,
  connect,
  echoRoundTrip,
  eventually,
  freePort,
  pause,
  readAll,
  readExactly,
  startEchoServer,
  startServer,
  text,
  within,
  writeAll,
} from "./_util/net.ts";
import { captureLogs, startTool, TEST_OPTIONS } from "./_util/tool.ts";

Deno.test("idle-timeout closes an idle tunnel and not a busy one", async () => {
  await using logs = await captureLogs();
  await using echo = startEchoServer();
  const port = freePort();
  await using _tool = await startTool(
    `${port} 127.0.0.1 ${echo.port} idle-timeout=400ms\n`,
  );
  using idle = await connect(port);
  using busy = await connect(port);
  const idleEnds = readAll(idle);
  for (let i = 0; i < 12; i++) {
    await writeAll(busy, bytes("."));
    assert.equal(
      text(await within(readExactly(busy, 1), 2_000, "busy echo")),
      ".",
    );
    await pause(100);
  }
  assert.equal((await within(idleEnds, 2_000, "idle tunnel closed")).length, 0);
  await logs.waitFor(
    /^c\d+ closed: 0 B up, 0 B down, .*nothing moved for \d+ ms \(idle-timeout\)$/,
  );
  // The busy tunnel outlived the idle limit three times over and still works.
  await writeAll(busy, bytes("!"));
  assert.equal(
    text(await within(readExactly(busy, 1), 2_000, "busy echo")),
    "!",
  );
});

Deno.test("linger-timeout closes a half-closed tunnel where nothing moves", async () => {
  await using logs = await captureLogs();
  // A destination that reads to the end and then neither answers nor closes.
  const { promise: release, resolve } = Promise.withResolvers<void>();
  await using silent = startServer(async (conn) => {
    await readAll(conn);
    await release;
  });
  const port = freePort();
  await using _tool = await startTool(
    `${port} 127.0.0.1 ${silent.port} linger-timeout=300ms\n`,
  );
  using conn = await connect(port);
  await writeAll(conn, bytes("request"));
  await conn.closeWrite();
  assert.equal(
    (await within(readAll(conn), 3_000, "lingering tunnel closed")).length,
    0,
  );
  await logs.waitFor(
    /^c\d+ closed: 7 B up, 0 B down, .*client finished sending and nothing moved for \d+ ms \(linger-timeout\)$/,
  );
  resolve();
});

Deno.test("a destination that closes after idling is logged with the idle time", async () => {
  await using logs = await captureLogs();
  await using sleepy = startServer(async (conn) => {
    await pause(300);
    conn.close();
  });
  const port = freePort();
  await using _tool = await startTool(`${port} 127.0.0.1 ${sleepy.port}\n`);
  const conn = await connect(port);
  await within(readAll(conn), 3_000, "closed by the destination");
  conn.close();
  await logs.waitFor(
    /^c\d+ closed: .*destination closed first after \d{3} ms idle$/,
  );
});

/** The TCP sockets of this process on `port` with keepalive timers, as ss shows them. */
async function keepaliveSockets(port: number): Promise<string[]> {
  const { stdout } = await new Deno.Command("ss", {
    args: [
      "-tnoH",
      "state",
      "established",
      `( sport = :${port} or dport = :${port} )`,
    ],
    stdout: "piped",
    stderr: "null",
  }).output();
  return text(stdout).split("\n").filter((line) =>
    line.includes("timer:(keepalive")
  );
}

Deno.test("TCP keepalive is on for both legs, and off with keepalive=off", async () => {
  await using echo = startEchoServer();
  const [on, off] = [freePort(), freePort()];
  await using _tool = await startTool(
    `${on} 127.0.0.1 ${echo.port}\n${off} 127.0.0.1 ${echo.port} keepalive=off\n`,
  );
  {
    using conn = await connect(on);
    await writeAll(conn, bytes("x"));
    await within(readExactly(conn, 1), 2_000, "echo");
    // The tool's accepted socket (source port `on`) and its socket to the
    // destination (destination port echo.port); the test's own sockets have none.
    assert.equal((await keepaliveSockets(on)).length, 1, "client leg");
    assert.equal(
      (await keepaliveSockets(echo.port)).length,
      1,
      "destination leg",
    );
  }
  using conn = await connect(off);
  await writeAll(conn, bytes("x"));
  await within(readExactly(conn, 1), 2_000, "echo");
  assert.equal((await keepaliveSockets(off)).length, 0);
});

Deno.test("max-connections: at the limit the listener stops accepting, and resumes below it", async () => {
  await using logs = await captureLogs();
  await using echo = startEchoServer();
  const port = freePort();
  await using tool = await startTool(
    `${port} 127.0.0.1 ${echo.port} max-connections=2\n`,
  );
  const first = await connect(port);
  using second = await connect(port);
  await eventually(
    () => tool.supervisor.tunnels.length === 2,
    2_000,
    "two tunnels",
  );
  // The third connection waits in the kernel's backlog, not accepted.
  using third = await connect(port);
  await writeAll(third, bytes("third"));
  await logs.waitFor(
    /^max-connections=2 of 127\.0\.0\.1:\d+ reached: .* stops accepting until a tunnel ends$/,
  );
  assert.equal(tool.supervisor.tunnels.length, 2);
  first.close();
  assert.equal(
    text(await within(readExactly(third, 5), 5_000, "third served")),
    "third",
  );
  await logs.waitFor(/^127\.0\.0\.1:\d+ accepts again$/);
  assert.equal(tool.supervisor.tunnels.length, 2);
  second.close();
  assert.equal(await echoRoundTrip(port, "y"), "y");
});

Deno.test("--max-connections limits all entries together", async () => {
  await using echo = startEchoServer();
  const [a, b] = [freePort(), freePort()];
  await using tool = await startTool(
    `${a} 127.0.0.1 ${echo.port}\n${b} 127.0.0.1 ${echo.port}\n`,
    {
      defaults: TEST_OPTIONS,
      maxConnections: 1,
    },
  );
  const holder = await connect(a);
  await eventually(
    () => tool.supervisor.tunnels.length === 1,
    2_000,
    "one tunnel",
  );
  using waiting = await connect(b);
  await writeAll(waiting, bytes("wait"));
  await pause(200);
  assert.equal(tool.supervisor.tunnels.length, 1);
  holder.close();
  assert.equal(
    text(await within(readExactly(waiting, 4), 5_000, "served")),
    "wait",
  );
});

Deno.test("a client flooding a destination that never reads is held back, not buffered", async () => {
  // The destination accepts and never reads: only kernel buffers fill.
  const { promise: release, resolve } = Promise.withResolvers<void>();
  await using stuck = startServer(() => release);
  const port = freePort();
  await using _tool = await startTool(`${port} 127.0.0.1 ${stuck.port}\n`);
  using conn = await connect(port);
  const chunk = new Uint8Array(64 * 1024);
  let accepted = 0;
  const flood = (async () => {
    while (true) accepted += await conn.write(chunk);
  })().catch(() => {});
  // Writes stall once the socket buffers on the way are full.
  let last = -1;
  await eventually(
    async () => {
      await pause(200);
      const stalled = accepted === last;
      last = accepted;
      return stalled;
    },
    20_000,
    "client writes stall",
  );
  assert.ok(
    accepted < 64 * 1024 * 1024,
    `accepted ${accepted} bytes without a reader`,
  );
  resolve();
  conn.close();
  await flood;
});

Deno.test("a burst of clients that reset before they are accepted does not stall the listener", async () => {
  await using echo = startEchoServer();
  const port = freePort();
  await using _tool = await startTool(`${port} 127.0.0.1 ${echo.port}\n`);
  // What a port scan does: connect, then close with SO_LINGER {1, 0} (a RST).
  const resets = await new Deno.Command("python3", {
    args: [
      "-c",
      `import socket, struct
for _ in range(200):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.connect(("127.0.0.1", ${port}))
    s.close()`,
    ],
  }).output();
  assert.ok(resets.success, new TextDecoder().decode(resets.stderr));
  assert.equal(
    await within(
      echoRoundTrip(port, "still served"),
      3_000,
      "echo after resets",
    ),
    "still served",
  );
});
