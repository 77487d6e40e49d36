/**
 * The `run` command as a process: serving, its config and its fallback,
 * credentials from the environment, -L entries, running out of descriptors,
 * and its log file.
 */
import assert from "node:assert/strict";
import {
  bytes,
  echoExchange,
  echoRoundTrip,
  eventually,
  freePort,
  readAll,
  startEchoServer,
  text,
  within,
  writeAll,
} from "./_util/net.ts";
import { VERSION } from "../lib/version.ts";
import { IN_CI, missing, startSquidWithBasic } from "./_util/proxies.ts";
import {
  liveTunnel,
  runTool,
  spawnRun,
  tempConfig,
  tool,
  waitForLog,
} from "./_util/tool.ts";

Deno.test("run: serves a tunnel with the compiled-in permissions, logs it, exits 0 on SIGTERM", async () => {
  await using echo = startEchoServer();
  const port = freePort();
  const dir = await tempConfig(`${port} 127.0.0.1 ${echo.port}\n`);
  const logFile = `${dir}/HTTPTunneling.log`;
  try {
    const child = tool(["run"], dir).spawn();
    await waitForLog(logFile, /listening on 127\.0\.0\.1:\d+/);
    {
      using conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await writeAll(conn, bytes("through the tool"));
      await conn.closeWrite();
      assert.equal(
        text(await within(readAll(conn), 10_000, "echo")),
        "through the tool",
      );
    }
    await waitForLog(logFile, /c1 closed: 16 B up, 16 B down/);
    child.kill("SIGTERM");
    const { code, stderr } = await within(child.output(), 10_000, "exit");
    // Not a terminal: one startup line on stderr, the rest in the file.
    assert.match(
      text(stderr),
      /^httptunneling \S+: config tunnels\.conf; listening on 127\.0\.0\.1:\d+; log: HTTPTunneling\.log\n$/,
    );
    assert.equal(code, 0);
    const log = await Deno.readTextFile(logFile);
    assert.match(log, /\[INF\] httptunneling\.run: SIGTERM received/);
    assert.match(log, /\[INF\] httptunneling\.run: stopped\n$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("run: without a config argument falls back to tunnels.conf.example and says so", async () => {
  const port = freePort();
  const dir = await Deno.makeTempDir({ prefix: "httptunneling-cli-" });
  await Deno.writeTextFile(
    `${dir}/tunnels.conf.example`,
    `${port} 127.0.0.1 9\n`,
  );
  try {
    const child = tool(["run", "--log", "-"], dir).spawn();
    const stderr = child.stderr.pipeThrough(new TextDecoderStream())
      .getReader();
    let seen = "";
    while (!/listening on/.test(seen)) {
      const { value, done } = await within(stderr.read(), 10_000, "log line");
      if (done) break;
      seen += value;
    }
    assert.match(
      seen,
      /tunnels\.conf not found; using tunnels\.conf\.example \(copy it to tunnels\.conf and edit it\)/,
    );
    child.kill("SIGINT");
    while (!(await within(stderr.read(), 10_000, "exit")).done) { /* drain */ }
    assert.equal((await child.status).code, 0);
    await child.stdout.cancel();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("run: an invalid config exits 1 with its errors, the password kept out of the log", async () => {
  const dir = await tempConfig("2222 host 22 http://jane:s3cret@proxy:0\n");
  try {
    const { code, stderr } = await runTool(["run", "--log", "run.log"], dir);
    assert.equal(code, 1);
    assert.equal(
      stderr,
      'tunnels.conf:1:39: invalid proxy port "0": use a number from 1 to 65535\n',
    );
    const log = await Deno.readTextFile(`${dir}/run.log`);
    assert.match(
      log,
      /\[ERR\] httptunneling\.run: tunnels\.conf:1:39: invalid proxy port/,
    );
    assert.doesNotMatch(log, /s3cret/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "run: ${ENV} credentials through real squid with Basic; the log file never holds the password",
  ignore: missing("squid") || (!IN_CI && missing("htpasswd")),
  async fn() {
    const password = "env-S3cret!";
    await using squid = await startSquidWithBasic("jane", password);
    await using echo = startEchoServer();
    const [good, bad] = [freePort(), freePort()];
    const dir = await tempConfig(
      `${good} 127.0.0.1 ${echo.port} http://jane:\${PROXY_PASSWORD}@127.0.0.1:${squid.port}\n` +
        `${bad} 127.0.0.1 ${echo.port} http://jane:wrong-\${PROXY_PASSWORD}@127.0.0.1:${squid.port}\n`,
    );
    const child = tool(["run"], dir, { PROXY_PASSWORD: password }).spawn();
    const logFile = `${dir}/HTTPTunneling.log`;
    try {
      await waitForLog(logFile, /config applied/);
      assert.equal(
        await echoExchange(good, "with env credentials"),
        "with env credentials",
      );
      using conn = await Deno.connect({ hostname: "127.0.0.1", port: bad });
      assert.equal((await within(readAll(conn), 10_000, "rejected")).length, 0);
      await waitForLog(logFile, /rejected the credentials \(Basic\)/);
    } finally {
      child.kill("SIGTERM");
      assert.equal((await child.output()).code, 0);
    }
    const log = await Deno.readTextFile(logFile);
    assert.doesNotMatch(log, /S3cret/);
    assert.match(log, /via http:\/\/jane:\*\*\*@127\.0\.0\.1:\d+/);
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test("run: accept hitting EMFILE under a low ulimit -n; the listener recovers", async () => {
  await using echo = startEchoServer();
  // A tunnel holds two descriptors, so whether accept() or the connect to
  // the destination runs out first depends on the parity of what is left:
  // of neighbouring limits, some make accept() fail.
  const logs: string[] = [];
  for (const limit of [48, 49, 50, 51]) {
    const port = freePort();
    await using run = await spawnRun(
      `${port} 127.0.0.1 ${echo.port}\n`,
      [],
      `ulimit -n ${limit}`,
    );
    const clients: Deno.TcpConn[] = [];
    for (let i = 0; i < 40; i++) {
      clients.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    }
    await waitForLog(run.log, /Too many open files/);
    for (const client of clients) client.close();
    await waitForLog(run.log, /closed:/);
    // Once descriptors are free again the same listener serves.
    const conn = await eventually(
      () => liveTunnel(port).catch(() => undefined),
      10_000,
      "served again",
    );
    conn.close();
    logs.push(await Deno.readTextFile(run.log));
  }
  assert.ok(
    logs.some((log) =>
      /accept on 127\.0\.0\.1:\d+ failed, retrying in \d+ ms: Too many open files/
        .test(log)
    ),
  );
});

Deno.test("run -L twice in one process, without a config file", async () => {
  await using echo = startEchoServer();
  const [a, b] = [freePort(), freePort()];
  const dir = await Deno.makeTempDir({ prefix: "httptunneling-cli-" });
  const child = tool([
    "run",
    "-L",
    `${a}:127.0.0.1:${echo.port}`,
    "-L",
    `127.0.0.1:${b}:127.0.0.1:${echo.port}`,
  ], dir)
    .spawn();
  try {
    await waitForLog(`${dir}/HTTPTunneling.log`, /config applied: 2 added/);
    assert.equal(await echoRoundTrip(a, "first"), "first");
    assert.equal(await echoRoundTrip(b, "second"), "second");
    assert.doesNotMatch(
      await Deno.readTextFile(`${dir}/HTTPTunneling.log`),
      /watching/,
    );
  } finally {
    child.kill("SIGTERM");
    assert.equal((await child.output()).code, 0);
    await Deno.remove(dir, { recursive: true });
  }
  const bad = await runTool(["run", "-L", "2222:host"]);
  assert.equal(bad.code, 2);
  assert.match(
    bad.stderr,
    /cannot parse -L 2222:host: write \[BIND:\]PORT:HOST:HOSTPORT/,
  );
});

Deno.test("run --log-max-size rotates the log file", async () => {
  await using echo = startEchoServer();
  const port = freePort();
  await using run = await spawnRun(`${port} 127.0.0.1 ${echo.port}\n`, [
    "--log-max-size",
    "2K",
    "--log-files",
    "3",
  ]);
  for (let i = 0; i < 12; i++) {
    assert.equal(await echoRoundTrip(port, "x"), "x");
  }
  await eventually(
    async () =>
      (await Deno.stat(`${run.log}.1`).catch(() => undefined)) !== undefined,
    10_000,
    "rotated file",
  );
  assert.ok((await Deno.stat(run.log)).size <= 2048 + 512);
});

Deno.test("run under a pipe says on stderr its config, what listens, what waits for its port and why, and where the log is", async () => {
  const other = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [free, taken] = [freePort(), other.addr.port];
  const dir = await tempConfig(
    `${free} 127.0.0.1 9\n${taken} 127.0.0.1 9\n`,
  );
  const child = tool(["run"], dir).spawn();
  try {
    const reader = child.stderr.pipeThrough(new TextDecoderStream())
      .getReader();
    let seen = "";
    await within(
      (async () => {
        while (!seen.includes("\n")) {
          const { value, done } = await reader.read();
          if (done) break;
          seen += value;
        }
      })(),
      10_000,
      "the startup line",
    );
    assert.equal(
      seen.split("\n")[0],
      `httptunneling ${VERSION}: config tunnels.conf; listening on 127.0.0.1:${free}; waiting for 127.0.0.1:${taken} (Address already in use (os error 98); another program listens there; another httptunneling may be running: \`ss -ltnp\` names it); log: HTTPTunneling.log`,
    );
    await reader.cancel();
  } finally {
    other.close();
    child.kill("SIGTERM");
    await child.output().catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});
