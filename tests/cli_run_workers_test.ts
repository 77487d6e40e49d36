/**
 * The `run` command with --workers: several workers on one port.
 */
import assert from "node:assert/strict";
import {
  echoRoundTrip,
  eventually,
  freePort,
  startEchoServer,
} from "./_util/net.ts";
import {
  ROOT,
  runTool,
  startRun,
  tempConfig,
  waitForLog,
} from "./_util/tool.ts";

Deno.test("run --workers 2: both workers serve the port, a saved config reaches both, /status adds them up", async () => {
  await using echo = startEchoServer();
  const [first, added, statusPort] = [freePort(), freePort(), freePort()];
  const dir = await tempConfig(`${first} 127.0.0.1 ${echo.port}\n`);
  await using run = startRun(dir, [
    "--workers",
    "2",
    "--status",
    String(statusPort),
  ], [
    // Run from source, Deno reads a worker's code like a dynamic import; a
    // compiled binary loads it from itself without a permission check.
    `--allow-read=.,${ROOT}`,
  ]);
  await waitForLog(run.log, /w1\.listener: listening on 127\.0\.0\.1:\d+/);
  await waitForLog(run.log, /w2\.listener: listening on 127\.0\.0\.1:\d+/);
  await waitForLog(run.log, /status on http/);
  const CONNECTIONS = 24;
  for (let i = 0; i < CONNECTIONS; i++) {
    assert.equal(await echoRoundTrip(first, `hello ${i}`), `hello ${i}`);
  }
  // The kernel spread the connections over both workers' sockets, and the
  // tunnel ids stay unique.
  const log = await eventually(
    async () => {
      const log = await Deno.readTextFile(run.log);
      return log.match(/ closed: /g)?.length === CONNECTIONS && log;
    },
    10_000,
    "a close line for every tunnel",
  );
  const closed = [
    ...log.matchAll(/httptunneling\.(w[12])\.tunnel: (c\d+) closed/g),
  ];
  assert.equal(closed.length, CONNECTIONS);
  assert.deepEqual(
    new Set(closed.map(([, worker]) => worker)),
    new Set(["w1", "w2"]),
  );
  assert.equal(new Set(closed.map(([, , id]) => id)).size, CONNECTIONS);

  const status = await (await fetch(`http://127.0.0.1:${statusPort}/status`))
    .json();
  assert.equal(status.entries.length, 1);
  assert.equal(status.entries[0].state, "listening");
  assert.equal(status.entries[0].accepted, CONNECTIONS);
  const metrics = await (await fetch(`http://127.0.0.1:${statusPort}/metrics`))
    .text();
  assert.match(
    metrics,
    new RegExp(
      `httptunneling_connections_accepted_total\\{entry="127\\.0\\.0\\.1:${first}"\\} ${CONNECTIONS}\n`,
    ),
  );

  await Deno.writeTextFile(
    `${dir}/tunnels.conf`,
    `${first} 127.0.0.1 ${echo.port}\n${added} 127.0.0.1 ${echo.port}\n`,
  );
  for (const worker of ["w1", "w2"]) {
    await waitForLog(
      run.log,
      new RegExp(
        `${worker}\\.supervisor: config applied: 1 added, 0 removed, 0 changed, 1 unchanged`,
      ),
    );
  }
  assert.equal(await echoRoundTrip(added, "added live"), "added live");
});

Deno.test("run --workers from source without read access to the code says what to add", async () => {
  const dir = await tempConfig(`${freePort()} 127.0.0.1 9\n`);
  try {
    const { code, stderr } = await runTool(["run", "--workers", "2"], dir);
    assert.equal(code, 2);
    assert.match(
      stderr,
      /--workers run from source needs read access to the tool's code: add --allow-read=\/.+ \(a compiled binary does not\)/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
