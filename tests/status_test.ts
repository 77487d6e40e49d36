import assert from "node:assert/strict";
import { Metrics } from "../lib/observe/metrics.ts";
import {
  startStatusServer,
  statusDocument,
} from "../lib/observe/status_server.ts";
import {
  bytes,
  connect,
  eventually,
  freePort,
  readAll,
  readExactly,
  startEchoServer,
  text,
  within,
  writeAll,
} from "./_util/net.ts";
import { entriesOf, spawnRun, startTool, waitForLog } from "./_util/tool.ts";

const SECRET = "top-S3cret";

/** Every sample line of a Prometheus text exposition, or an assertion failure. */
function parseExposition(body: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of body.split("\n")) {
    if (line === "") continue;
    if (line.startsWith("#")) {
      assert.match(line, /^# (HELP|TYPE) [a-z_]+ .+$/);
      continue;
    }
    const match =
      /^([a-z_]+(?:\{[a-z_]+="(?:[^"\\]|\\.)*"(?:,[a-z_]+="(?:[^"\\]|\\.)*")*\})?) (-?[0-9.e+]+)$/
        .exec(line);
    assert.ok(match, `not exposition format: ${line}`);
    samples.set(match[1], Number(match[2]));
  }
  return samples;
}

Deno.test("/status and /metrics with live tunnels, a failure and a reload; no secret; 404", async () => {
  await using echo = startEchoServer();
  const [live, broken] = [freePort(), freePort()];
  const deadProxy = freePort();
  const config = `${live} 127.0.0.1 ${echo.port}\n` +
    `${broken} 127.0.0.1 ${echo.port} http://jane:${SECRET}@127.0.0.1:${deadProxy}\n`;
  await using tool = await startTool(config);
  const state = {
    configPath: "tunnels.conf",
    lastReload: { time: "t0", result: "applied" },
  };
  const server = startStatusServer(
    { host: "127.0.0.1", port: 0 },
    () => tool.supervisor,
    state,
  );
  const base = `http://127.0.0.1:${server.addr.port}`;
  try {
    using conn = await connect(live);
    await writeAll(conn, bytes("12345"));
    assert.equal(
      text(await within(readExactly(conn, 5), 5_000, "echo")),
      "12345",
    );
    using failing = await connect(broken);
    await within(readAll(failing), 5_000, "refused");
    await eventually(
      () =>
        tool.supervisor.metrics.entry(`127.0.0.1:${broken}`).failed.connect ===
          1,
      5_000,
      "failure counted",
    );
    // A reload that keeps both entries and adds nothing.
    await tool.supervisor.apply(entriesOf(config));
    tool.supervisor.metrics.reloaded("applied");

    const statusText = await (await fetch(`${base}/status`)).text();
    assert.ok(!statusText.includes(SECRET), "no password in /status");
    const status = JSON.parse(statusText);
    assert.equal(status.config.path, "tunnels.conf");
    const [first, second] = status.entries;
    assert.deepEqual(
      [first.source, first.state, first.active, first.accepted],
      [`127.0.0.1:${live}`, "listening", 1, 1],
    );
    assert.equal(second.route, `via http://jane:***@127.0.0.1:${deadProxy}`);
    assert.deepEqual(second.failed, { connect: 1 });
    assert.equal(status.tunnels.length, 1);
    assert.deepEqual(
      [
        status.tunnels[0].entry,
        status.tunnels[0].bytesUp,
        status.tunnels[0].bytesDown,
      ],
      [`127.0.0.1:${live}`, 5, 5],
    );
    assert.ok(status.tunnels[0].ageMs >= 0 && status.tunnels[0].idleMs >= 0);

    const metricsText = await (await fetch(`${base}/metrics`)).text();
    assert.ok(!metricsText.includes(SECRET), "no password in /metrics");
    const samples = parseExposition(metricsText);
    assert.equal(
      samples.get(
        `httptunneling_connections_active{entry="127.0.0.1:${live}"}`,
      ),
      1,
    );
    assert.equal(
      samples.get(
        `httptunneling_connections_accepted_total{entry="127.0.0.1:${broken}"}`,
      ),
      1,
    );
    assert.equal(
      samples.get(
        `httptunneling_connections_failed_total{entry="127.0.0.1:${broken}",reason="connect"}`,
      ),
      1,
    );
    assert.equal(
      samples.get(
        `httptunneling_bytes_total{entry="127.0.0.1:${live}",direction="up"}`,
      ),
      5,
    );
    assert.equal(
      samples.get(`httptunneling_handshake_duration_seconds_count`),
      1,
    );
    assert.equal(
      samples.get(`httptunneling_handshake_duration_seconds_bucket{le="+Inf"}`),
      1,
    );
    assert.equal(
      samples.get(`httptunneling_reloads_total{result="applied"}`),
      1,
    );

    const missing = await fetch(`${base}/admin`);
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
    const post = await fetch(`${base}/status`, { method: "POST" });
    assert.equal(post.status, 404);
    await post.body?.cancel();
  } finally {
    await server.close();
  }
});

Deno.test("counters kept in two workers add up in one /metrics", () => {
  const [first, second] = [new Metrics(), new Metrics()];
  first.accepted("127.0.0.1:2222");
  first.failed("127.0.0.1:2222", "auth");
  first.opened(3);
  first.closed("127.0.0.1:2222", 10, 20);
  second.accepted("127.0.0.1:2222");
  second.accepted("127.0.0.1:3333");
  second.failed("127.0.0.1:2222", "auth");
  second.failed("127.0.0.1:2222", "timeout");
  second.opened(30);
  second.closed("127.0.0.1:2222", 1, 2);
  second.reloaded("applied");
  first.proxyFailed("127.0.0.1:2222", "http://p:3128", "timeout");
  second.proxyFailed("127.0.0.1:2222", "http://p:3128", "timeout");
  second.failedOver("127.0.0.1:2222", "http://p:3128", "http://q:3128");
  const total = new Metrics();
  total.add(first.toData());
  total.add(second.toData());
  const samples = parseExposition(total.render(new Map()));
  const entry = 'entry="127.0.0.1:2222"';
  assert.equal(
    samples.get(`httptunneling_connections_accepted_total{${entry}}`),
    2,
  );
  assert.equal(
    samples.get(
      `httptunneling_connections_accepted_total{entry="127.0.0.1:3333"}`,
    ),
    1,
  );
  assert.equal(
    samples.get(
      `httptunneling_connections_failed_total{${entry},reason="auth"}`,
    ),
    2,
  );
  assert.equal(
    samples.get(
      `httptunneling_connections_failed_total{${entry},reason="timeout"}`,
    ),
    1,
  );
  assert.equal(
    samples.get(`httptunneling_bytes_total{${entry},direction="up"}`),
    11,
  );
  assert.equal(
    samples.get(`httptunneling_bytes_total{${entry},direction="down"}`),
    22,
  );
  assert.equal(
    samples.get(`httptunneling_handshake_duration_seconds_bucket{le="0.005"}`),
    1,
  );
  assert.equal(
    samples.get("httptunneling_handshake_duration_seconds_count"),
    2,
  );
  assert.equal(samples.get(`httptunneling_reloads_total{result="applied"}`), 1);
  assert.equal(
    samples.get(
      `httptunneling_proxy_failures_total{${entry},proxy="http://p:3128",reason="timeout"}`,
    ),
    2,
  );
  assert.equal(
    samples.get(
      `httptunneling_failovers_total{${entry},from="http://p:3128",to="http://q:3128"}`,
    ),
    1,
  );
  // Adding did not change what was added.
  assert.equal(first.entry("127.0.0.1:2222").failed.auth, 1);
});

Deno.test("/status lists each proxy with its health; /metrics counts proxy failures and failovers without passwords; a new config starts backoffs afresh", async () => {
  const [port, other, deadA, deadB] = [
    freePort(),
    freePort(),
    freePort(),
    freePort(),
  ];
  const first =
    `${port} 127.0.0.1 9 http://jane:${SECRET}@127.0.0.1:${deadA},http://127.0.0.1:${deadB}\n`;
  await using tool = await startTool(first);
  const attempt = async () => {
    using conn = await connect(port);
    await within(readAll(conn), 5_000, "refused");
  };
  const entry = `127.0.0.1:${port}`;
  const [a, b] = [
    `http://jane:***@127.0.0.1:${deadA}`,
    `http://127.0.0.1:${deadB}`,
  ];
  const proxies = () => {
    const text = JSON.stringify(statusDocument(tool.supervisor, {}));
    assert.ok(!text.includes(SECRET), "no password in /status");
    return JSON.parse(text).entries[0].proxies;
  };
  await attempt();
  await attempt();
  await eventually(
    () => tool.supervisor.metrics.entry(entry).failed.connect === 2,
    5_000,
    "both tunnels failed",
  );
  const [shownA, shownB] = proxies();
  assert.deepEqual(
    [shownA.hop, shownA.proxy, shownA.state, shownA.failures, shownA.reason],
    [1, a, "skipped", 2, "connect"],
  );
  assert.match(
    shownA.error,
    new RegExp(`Cannot connect to 127\\.0\\.0\\.1:${deadA}`),
  );
  assert.ok(Date.parse(shownA.skippedUntil) > Date.now());
  assert.deepEqual([shownB.proxy, shownB.state, shownB.failures], [
    b,
    "skipped",
    2,
  ]);

  const metricsText = tool.supervisor.metrics.render(new Map());
  assert.ok(!metricsText.includes(SECRET), "no password in /metrics");
  const samples = parseExposition(metricsText);
  assert.equal(
    samples.get(
      `httptunneling_proxy_failures_total{entry="${entry}",proxy="${a}",reason="connect"}`,
    ),
    2,
  );
  assert.equal(
    samples.get(
      `httptunneling_proxy_failures_total{entry="${entry}",proxy="${b}",reason="connect"}`,
    ),
    2,
  );
  assert.equal(
    samples.get(
      `httptunneling_failovers_total{entry="${entry}",from="${a}",to="${b}"}`,
    ),
    2,
  );

  // A changed config: the next failure counts as the first.
  await tool.supervisor.apply(entriesOf(first + `${other} 127.0.0.1 9\n`));
  await attempt();
  await eventually(
    () => tool.supervisor.metrics.entry(entry).failed.connect === 3,
    5_000,
    "the third failure",
  );
  assert.deepEqual(proxies().map((p: { failures: number }) => p.failures), [
    1,
    1,
  ]);
  assert.deepEqual(statusDocument(tool.supervisor, {}).entries[1].proxies, []);
});

/** Sends a raw request to the status server and returns the whole answer. */
async function rawStatus(port: number, request: string): Promise<string> {
  using conn = await connect(port);
  await writeAll(conn, bytes(request));
  return text(await within(readAll(conn), 5_000, "status answer"));
}

Deno.test("status server: HEAD like GET, a foreign Host refused (DNS rebinding), a silent client cut off", async () => {
  await using tool = await startTool("");
  const server = startStatusServer(
    { host: "127.0.0.1", port: 0 },
    () => tool.supervisor,
    {},
    { headTimeoutMs: 300 },
  );
  const port = server.addr.port;
  try {
    const head = await rawStatus(
      port,
      `HEAD /status HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`,
    );
    assert.match(head, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(head, /content-type: application\/json/);
    assert.ok(head.endsWith("\r\n\r\n"), "no body for HEAD");
    const rebound = await rawStatus(
      port,
      "GET /status HTTP/1.1\r\nHost: attacker.example:8080\r\n\r\n",
    );
    assert.match(rebound, /^HTTP\/1\.1 421 /);
    assert.doesNotMatch(rebound, /entries/);
    const local = await rawStatus(
      port,
      "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    assert.match(local, /^HTTP\/1\.1 200 OK\r\n[\s\S]*httptunneling_/);
    // A malformed or oversize head is answered, not just dropped.
    assert.match(
      await rawStatus(port, "GET /status HTTP/1.1\r\nX : y\r\n\r\n"),
      /^HTTP\/1\.1 400 /,
    );
    assert.match(
      await rawStatus(
        port,
        `GET /status HTTP/1.1\r\nX: ${"y".repeat(9000)}\r\n\r\n`,
      ),
      /^HTTP\/1\.1 431 /,
    );
    // A client that never finishes its request is closed after the limit.
    using slow = await connect(port);
    await writeAll(slow, bytes("GET /status HTTP/1.1\r\nHost: 127.0."));
    assert.equal(
      (await within(readAll(slow), 3_000, "slow client closed")).length,
      0,
    );
  } finally {
    await server.close();
  }
});

Deno.test("status server: running out of file descriptors ends neither the process nor the tunnels", async () => {
  await using echo = startEchoServer();
  const [port, statusPort] = [freePort(), freePort()];
  await using run = await spawnRun(
    `${port} 127.0.0.1 ${echo.port}\n`,
    ["--status", `127.0.0.1:${statusPort}`],
    "ulimit -n 96",
  );
  // The status server starts just after the config is applied.
  await waitForLog(run.log, /status on http:\/\/127\.0\.0\.1:\d+\/status/);
  using tunnel = await connect(port);
  // Far more half-sent requests than descriptors: accept fails with EMFILE.
  const flood: Deno.TcpConn[] = [];
  try {
    for (let i = 0; i < 150; i++) {
      const conn = await connect(statusPort);
      flood.push(conn);
      await writeAll(conn, bytes("GET /status HTTP/1.1\r\n")).catch(() => {});
    }
    await writeAll(tunnel, bytes("alive"));
    assert.equal(
      text(await within(readExactly(tunnel, 5), 5_000, "echo during flood")),
      "alive",
    );
  } finally {
    for (const conn of flood) {
      try {
        conn.close();
      } catch { /* closed by the server */ }
    }
  }
  await eventually(
    async () =>
      (await rawStatus(
        statusPort,
        `GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`,
      ).catch(() => "")).startsWith("HTTP/1.1 200"),
    10_000,
    "status answers again",
  );
  assert.equal(
    await Promise.race([
      run.child.status.then(() => "exited"),
      new Promise((resolve) => setTimeout(() => resolve("running"), 200)),
    ]),
    "running",
  );
});
