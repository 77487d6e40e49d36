import assert from "node:assert/strict";
import {
  bytes,
  connect,
  echoRoundTrip,
  eventually,
  freePort,
  readAll,
  readExactly,
  startServer,
  text,
  within,
  writeAll,
} from "./_util/net.ts";
import {
  captureLogs,
  entriesOf,
  startTool,
  TEST_OPTIONS,
} from "./_util/tool.ts";

/** A server that answers every line with `<name>: <line>`. */
function startNamedEcho(name: string) {
  return startServer(async (conn) => {
    const buffer = new Uint8Array(4096);
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      await writeAll(conn, bytes(`${name}: ${text(buffer.subarray(0, n))}`));
    }
    await conn.closeWrite();
  });
}

async function ask(conn: Deno.Conn, message: string, answerLength: number) {
  await writeAll(conn, bytes(message));
  return text(await within(readExactly(conn, answerLength), 5_000, "answer"));
}

Deno.test("unchanged entries keep their listener and live tunnels", async () => {
  await using a = startNamedEcho("a");
  const port = freePort();
  const config = `${port} 127.0.0.1 ${a.port}\n`;
  await using tool = await startTool(config);
  const before = tool.supervisor.listeners.get(`127.0.0.1:${port}`);
  using live = await connect(port);
  assert.equal(await ask(live, "1", 4), "a: 1");
  const diff = await tool.supervisor.apply(
    entriesOf(`# a comment now\n${config}`),
  );
  assert.equal(diff.unchanged.length, 1);
  assert.equal(tool.supervisor.listeners.get(`127.0.0.1:${port}`), before);
  assert.equal(await ask(live, "2", 4), "a: 2");
});

Deno.test("a changed entry keeps listening; new connections take the new route, live ones carry on", async () => {
  await using a = startNamedEcho("a");
  await using b = startNamedEcho("b");
  const port = freePort();
  await using tool = await startTool(`${port} 127.0.0.1 ${a.port}\n`);
  using live = await connect(port);
  assert.equal(await ask(live, "1", 4), "a: 1");
  await tool.supervisor.apply(entriesOf(`${port} 127.0.0.1 ${b.port}\n`));
  using fresh = await connect(port);
  assert.equal(await ask(fresh, "2", 4), "b: 2");
  assert.equal(await ask(live, "3", 4), "a: 3");
});

Deno.test("a removed entry stops listening at once; its live tunnel still passes data", async () => {
  await using logs = await captureLogs();
  await using a = startNamedEcho("a");
  const port = freePort();
  await using tool = await startTool(`${port} 127.0.0.1 ${a.port}\n`);
  using live = await connect(port);
  assert.equal(await ask(live, "1", 4), "a: 1");
  const diff = await tool.supervisor.apply([]);
  assert.equal(diff.removed.length, 1);
  await assert.rejects(connect(port), Deno.errors.ConnectionRefused);
  assert.equal(await ask(live, "still here", 13), "a: still here");
  assert.equal(tool.supervisor.tunnels.length, 1);
  await logs.waitFor(
    /127\.0\.0\.1:\d+ removed; 1 live tunnel\(s\) carry on until they end$/,
  );
  await logs.waitFor(
    /^config applied: 0 added, 1 removed, 0 changed, 0 unchanged in \d+ ms$/,
  );
});

Deno.test("--drain-timeout closes a removed entry's tunnels with a log line", async () => {
  await using logs = await captureLogs();
  await using a = startNamedEcho("a");
  const port = freePort();
  await using tool = await startTool(`${port} 127.0.0.1 ${a.port}\n`, {
    defaults: { ...TEST_OPTIONS, drainTimeoutMs: 300 },
  });
  using live = await connect(port);
  assert.equal(await ask(live, "1", 4), "a: 1");
  await tool.supervisor.apply([]);
  assert.equal((await within(readAll(live), 5_000, "drained")).length, 0);
  await logs.waitFor(
    /^c\d+ closed: drain timeout of removed 127\.0\.0\.1:\d+$/,
  );
});

Deno.test("two entries swapping ports, and a port handed from one entry to another", async () => {
  await using a = startNamedEcho("a");
  await using b = startNamedEcho("b");
  const [p1, p2, p3] = [freePort(), freePort(), freePort()];
  await using tool = await startTool(
    `${p1} 127.0.0.1 ${a.port}\n${p2} 127.0.0.1 ${b.port}\n`,
  );
  await tool.supervisor.apply(
    entriesOf(`${p1} 127.0.0.1 ${b.port}\n${p2} 127.0.0.1 ${a.port}\n`),
  );
  assert.equal(await echoRoundTrip(p1, "x"), "b: x");
  assert.equal(await echoRoundTrip(p2, "y"), "a: y");
  // p1's entry moves to p3 and p2's entry takes p1, in one reload.
  await tool.supervisor.apply(
    entriesOf(`${p3} 127.0.0.1 ${b.port}\n${p1} 127.0.0.1 ${a.port}\n`),
  );
  assert.deepEqual(
    [...tool.supervisor.listeners.keys()].toSorted(),
    [
      `127.0.0.1:${p1}`,
      `127.0.0.1:${p3}`,
    ].toSorted(),
  );
  assert.equal(await echoRoundTrip(p1, "z"), "a: z");
  assert.equal(await echoRoundTrip(p3, "w"), "b: w");
});

Deno.test("a port taken by another program is retried until it is free", async () => {
  await using logs = await captureLogs();
  await using a = startNamedEcho("a");
  const other = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const taken = other.addr.port;
  const free = freePort();
  await using tool = await startTool(
    `${taken} 127.0.0.1 ${a.port}\n${free} 127.0.0.1 ${a.port}\n`,
  );
  await logs.waitFor(
    new RegExp(
      `^cannot listen on 127\\.0\\.0\\.1:${taken} \\(line 1\\), retrying in 1 s: .*another httptunneling may be running`,
    ),
  );
  // The summary counts what listens, not what was meant to.
  await logs.waitFor(
    /^config applied: 2 added, .*; 1 listening, 1 waiting for a port$/,
  );
  // The entry's state (for /status and run's startup line) says who holds
  // the port once apply returns, and keeps saying it while retrying.
  const waiting = () =>
    tool.supervisor.entries().find((each) => each.state === "retrying")
      ?.error ?? "";
  assert.match(
    waiting(),
    /^Address already in use .*; another program listens there; another httptunneling may be running/,
  );
  await logs.waitFor(/retrying in 2 s: /);
  assert.match(waiting(), /; another program listens there/);
  // The rest of the config is served meanwhile.
  assert.equal(await echoRoundTrip(free, "1"), "a: 1");
  other.close();
  await eventually(
    () => tool.supervisor.listeners.has(`127.0.0.1:${taken}`),
    10_000,
    "listening after the port was freed",
  );
  assert.equal(await echoRoundTrip(taken, "2"), "a: 2");
});
