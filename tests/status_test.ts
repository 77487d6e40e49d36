import assert from "node:assert/strict";
import { Metrics } from "../lib/observe/metrics.ts";
import { startStatusServer } from "../lib/observe/status_server.ts";
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
import { entriesOf, startTool } from "./_util/tool.ts";

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
  // Adding did not change what was added.
  assert.equal(first.entry("127.0.0.1:2222").failed.auth, 1);
});
