import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import manifest from "../deno.json" with { type: "json" };
import {
  bytes,
  echoExchange,
  echoRoundTrip,
  eventually,
  freePort,
  hashExactly,
  IN_CI,
  missing,
  pseudoRandomChunks,
  readAll,
  readExactly,
  sendChunks,
  sha256Of,
  startBannerServer,
  startDante,
  startEchoServer,
  startServer,
  startSquid,
  startSquidWithBasic,
  text,
  within,
  writeAll,
} from "./test_util.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const MAIN = `${ROOT}main.ts`;

/** The permission and unstable flags the compile task bakes into the binary. */
const COMPILE_FLAGS = manifest.tasks.compile.split(/\s+/).filter((word) =>
  word.startsWith("--allow-") || word.startsWith("--deny-") ||
  word.startsWith("--unstable-")
);

/** Deno's arguments to run the tool with `args` (and `denoFlags` added). */
function runArgs(args: string[], denoFlags: string[] = []): string[] {
  return [
    "run",
    "--quiet",
    `--config=${ROOT}deno.json`,
    ...COMPILE_FLAGS,
    ...denoFlags,
    MAIN,
    ...args,
  ];
}

function tool(
  args: string[],
  cwd = ROOT,
  env: Record<string, string> = {},
  denoFlags: string[] = [],
): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: runArgs(args, denoFlags),
    cwd,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

async function runTool(args: string[], cwd = ROOT) {
  const { code, stdout, stderr } = await tool(args, cwd).output();
  return { code, stdout: text(stdout), stderr: text(stderr) };
}

Deno.test("the compile task bakes network, env, and reads and writes below the working directory only", () => {
  assert.deepEqual(COMPILE_FLAGS.toSorted(), [
    "--allow-env",
    "--allow-net",
    "--allow-read=.",
    "--allow-write=.",
    "--unstable-net",
  ]);
  // The workers' code is loaded at run time, so it is named to be included.
  assert.match(manifest.tasks.compile, / --include lib\/workers\/worker\.ts /);
});

Deno.test("with the compiled-in permissions, a write outside the working directory and a read outside it are refused", async () => {
  const outside = await Deno.makeTempDir({ prefix: "httptunneling-outside-" });
  await Deno.writeTextFile(`${outside}/secret.cred`, "jane:s3cret\n");
  const dir = await tempConfig(`${freePort()} 127.0.0.1 9\n`);
  try {
    const write = await runTool([
      "run",
      "--log",
      `${outside}/HTTPTunneling.log`,
    ], dir);
    assert.equal(write.code, 1);
    assert.match(
      write.stderr,
      /^error: .*Requires write access to ".*HTTPTunneling\.log"/,
    );
    await assert.rejects(
      Deno.stat(`${outside}/HTTPTunneling.log`),
      Deno.errors.NotFound,
    );
    await Deno.writeTextFile(
      `${dir}/tunnels.conf`,
      `${freePort()} 127.0.0.1 9 http://proxy:3128 credentials=${outside}/secret.cred\n`,
    );
    const read = await runTool(["check", "tunnels.conf"], dir);
    assert.equal(read.code, 1);
    assert.match(
      read.stderr,
      /tunnels\.conf:1:\d+: cannot read credentials file .*secret\.cred: Requires read access/,
    );
    assert.doesNotMatch(read.stderr, /s3cret/);
  } finally {
    await Deno.remove(outside, { recursive: true });
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--help and --version", async () => {
  const help = await runTool(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /httptunneling run \[CONFIG\]/);
  assert.match(help.stdout, /httptunneling check CONFIG/);
  const version = await runTool(["--version"]);
  assert.equal(version.code, 0);
  assert.equal(
    version.stdout,
    `httptunneling ${manifest.version} (deno ${Deno.version.deno})\n`,
  );
});

Deno.test("a wrong command line exits 2 with an error line", async () => {
  for (
    const args of [[], ["frobnicate"], ["run", "--no-such-option"], ["check"]]
  ) {
    const { code, stderr } = await runTool(args);
    assert.equal(code, 2, args.join(" "));
    assert.match(
      stderr,
      /^error: .+\nRun "httptunneling --help" for usage\.\n$/,
    );
  }
  const { stderr } = await runTool(["run", "--connect-timeout", "soon"]);
  assert.match(stderr, /--connect-timeout must be a positive duration/);
});

async function tempConfig(content: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "httptunneling-cli-" });
  await Deno.writeTextFile(`${dir}/tunnels.conf`, content);
  return dir;
}

Deno.test("check prints the entries with credentials masked", async () => {
  const dir = await tempConfig(
    "2222 ssh.example.com 22 proxy.corp 3128\n0.0.0.0:8080 web 80 http://jane:s3cret@proxy:3128\n",
  );
  try {
    const { code, stdout } = await runTool(["check", "tunnels.conf"], dir);
    assert.equal(code, 0);
    assert.equal(
      stdout,
      [
        "LINE  SOURCE          DESTINATION         ROUTE",
        "1     127.0.0.1:2222  ssh.example.com:22  via http://proxy.corp:3128",
        "2     0.0.0.0:8080    web:80              via http://jane:***@proxy:3128",
        "tunnels.conf: 2 entries, no errors",
        "",
      ].join("\n"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("check reports every error as file:line:col and exits 1", async () => {
  const dir = await tempConfig("2222 host 22x\n# ok\n3333 host 22 proxy\n");
  try {
    const { code, stdout, stderr } = await runTool(
      ["check", "tunnels.conf"],
      dir,
    );
    assert.equal(code, 1);
    assert.equal(stdout, "");
    assert.equal(
      stderr,
      'tunnels.conf:1:11: invalid destination port "22x": use a number from 1 to 65535\n' +
        "tunnels.conf:3:14: expected a proxy URL (http://host:port) or the proxy host followed by its port\n",
    );
    const missing = await runTool(["check", "nope.conf"], dir);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^Cannot read config file nope\.conf: /);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the shipped tunnels.conf.example is valid", async () => {
  const { code, stderr } = await runTool(["check", "tunnels.conf.example"]);
  assert.equal(stderr, "");
  assert.equal(code, 0);
});

/** Waits until `path` contains a line matching `pattern`. */
async function waitForLog(path: string, pattern: RegExp): Promise<string> {
  const deadline = Date.now() + 10_000;
  while (true) {
    const log = await Deno.readTextFile(path).catch(() => "");
    if (pattern.test(log)) return log;
    if (Date.now() > deadline) {
      throw new Error(`${path} has no line matching ${pattern}:\n${log}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

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
    assert.equal(text(stderr), "");
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

/** Starts `run` in `dir` with its log in `dir/HTTPTunneling.log`. */
function startRun(
  dir: string,
  options: string[] = [],
  denoFlags: string[] = [],
) {
  const child = tool(["run", ...options], dir, {}, denoFlags).spawn();
  return {
    log: `${dir}/HTTPTunneling.log`,
    async [Symbol.asyncDispose]() {
      child.kill("SIGTERM");
      const { code } = await within(child.output(), 10_000, "exit");
      assert.equal(code, 0);
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("run: a saved config is applied without a restart", async () => {
  await using echo = startEchoServer();
  const [first, added] = [freePort(), freePort()];
  const dir = await tempConfig(`${first} 127.0.0.1 ${echo.port}\n`);
  await using run = startRun(dir);
  await waitForLog(
    run.log,
    /watching tunnels\.conf for changes; SIGHUP reloads too/,
  );
  await Deno.writeTextFile(
    `${dir}/tunnels.conf`,
    `${first} 127.0.0.1 ${echo.port}\n${added} 127.0.0.1 ${echo.port}\n`,
  );
  await waitForLog(
    run.log,
    /config applied: 1 added, 0 removed, 0 changed, 1 unchanged/,
  );
  assert.equal(await echoRoundTrip(added, "added live"), "added live");
});

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

Deno.test("run: SIGHUP reloads a config the directory watch cannot see", async () => {
  await using echo = startEchoServer();
  const [first, added] = [freePort(), freePort()];
  const dir = await Deno.makeTempDir({ prefix: "httptunneling-cli-" });
  // tunnels.conf links to a file elsewhere: edits there touch no entry of dir.
  await Deno.mkdir(`${dir}/elsewhere`);
  const target = `${dir}/elsewhere/real.conf`;
  await Deno.writeTextFile(target, `${first} 127.0.0.1 ${echo.port}\n`);
  await Deno.symlink("elsewhere/real.conf", `${dir}/tunnels.conf`);
  await using run = startRun(dir);
  await waitForLog(run.log, /SIGHUP reloads too/);
  await Deno.writeTextFile(target, `${added} 127.0.0.1 ${echo.port}\n`);
  const pid = await waitForLog(run.log, /starting \(pid \d+\)/).then((log) =>
    Number(/starting \(pid (\d+)\)/.exec(log)![1])
  );
  Deno.kill(pid, "SIGHUP");
  await waitForLog(run.log, /reload \(SIGHUP\): applying tunnels\.conf/);
  await waitForLog(
    run.log,
    /config applied: 1 added, 1 removed, 0 changed, 0 unchanged/,
  );
  assert.equal(await echoRoundTrip(added, "after SIGHUP"), "after SIGHUP");
});

Deno.test("check warns when a credentials file is readable by others and masks it", async () => {
  const dir = await tempConfig(
    "2222 ssh 22 http://proxy:3128 credentials=proxy.cred\n",
  );
  try {
    await Deno.writeTextFile(`${dir}/proxy.cred`, "CORP\\jane:s3cret\n");
    await Deno.chmod(`${dir}/proxy.cred`, 0o644);
    const open = await runTool(["check", "tunnels.conf"], dir);
    assert.equal(open.code, 0);
    assert.match(
      open.stderr,
      /^warning: credentials file .*proxy\.cred can be read by other users: chmod 600 /,
    );
    assert.match(open.stdout, /via http:\/\/CORP%5Cjane:\*\*\*@proxy:3128/);
    assert.doesNotMatch(open.stdout + open.stderr, /s3cret/);
    await Deno.chmod(`${dir}/proxy.cred`, 0o600);
    assert.equal((await runTool(["check", "tunnels.conf"], dir)).stderr, "");
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

/** Starts `run` on `config` in a new directory; `child` and `log` for the test. */
async function spawnRun(config: string, options: string[] = [], wrap?: string) {
  const dir = await tempConfig(config);
  const command = tool(["run", ...options], dir);
  const child = wrap
    ? new Deno.Command("sh", {
      args: [
        "-c",
        `${wrap}; exec "$0" "$@"`,
        Deno.execPath(),
        ...runArgs(["run", ...options]),
      ],
      cwd: dir,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn()
    : command.spawn();
  const log = `${dir}/HTTPTunneling.log`;
  await waitForLog(log, /config applied/);
  return {
    child,
    log,
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
      await child.output().catch(() => child.status);
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function liveTunnel(port: number): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await writeAll(conn, bytes("ping"));
  assert.equal(text(await within(readExactly(conn, 4), 5_000, "echo")), "ping");
  return conn;
}

Deno.test("run: SIGTERM stops accepting and lets a live tunnel finish, then exits 0", async () => {
  await using echo = startEchoServer();
  const port = freePort();
  await using run = await spawnRun(`${port} 127.0.0.1 ${echo.port}\n`);
  const conn = await liveTunnel(port);
  run.child.kill("SIGTERM");
  await waitForLog(run.log, /SIGTERM received: no new connections/);
  await waitForLog(
    run.log,
    /waiting up to 10 s for 1 live tunnel\(s\) to finish/,
  );
  await assert.rejects(
    Deno.connect({ hostname: "127.0.0.1", port }),
    Deno.errors.ConnectionRefused,
  );
  await writeAll(conn, bytes("still"));
  assert.equal(
    text(await within(readExactly(conn, 5), 5_000, "echo")),
    "still",
  );
  conn.close();
  const { code } = await within(run.child.output(), 10_000, "exit");
  assert.equal(code, 0);
  assert.match(
    await Deno.readTextFile(run.log),
    /closed: 9 B up, 9 B down.*\n.*stopped\n$/,
  );
});

Deno.test("run: --shutdown-timeout closes what is still open; a second SIGTERM stops at once", async () => {
  await using echo = startEchoServer();
  const [port, other] = [freePort(), freePort()];
  {
    await using run = await spawnRun(`${port} 127.0.0.1 ${echo.port}\n`, [
      "--shutdown-timeout",
      "300ms",
    ]);
    using conn = await liveTunnel(port);
    run.child.kill("SIGTERM");
    assert.equal(
      (await within(readAll(conn), 5_000, "closed at the timeout")).length,
      0,
    );
    assert.equal((await within(run.child.output(), 5_000, "exit")).code, 0);
    assert.match(
      await Deno.readTextFile(run.log),
      /closing 1 tunnel\(s\) still open/,
    );
  }
  await using run = await spawnRun(`${other} 127.0.0.1 ${echo.port}\n`, [
    "--shutdown-timeout",
    "1h",
  ]);
  using conn = await liveTunnel(other);
  run.child.kill("SIGTERM");
  await waitForLog(run.log, /waiting up to 3600 s/);
  run.child.kill("SIGTERM");
  const { code } = await within(run.child.output(), 5_000, "immediate exit");
  assert.equal(code, 1);
  assert.equal((await within(readAll(conn), 5_000, "closed")).length, 0);
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

/** Starts `stdio` with piped stdin/stdout/stderr. */
function spawnStdio(args: string[]) {
  return new Deno.Command(Deno.execPath(), {
    args: runArgs(["stdio", ...args]),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

Deno.test({
  name:
    "stdio: binary data both ways through real squid, checked by sha256; nothing else on stdout",
  ignore: missing("squid"),
  async fn() {
    const SIZE = 1024 * 1024;
    await using squid = await startSquid();
    let serverSaw: Promise<string> | undefined;
    await using destination = startServer(async (conn) => {
      serverSaw = hashExactly(conn, SIZE);
      await sendChunks(conn, pseudoRandomChunks(4, SIZE));
      await serverSaw;
    });
    const child = spawnStdio([
      "127.0.0.1",
      String(destination.port),
      "--proxy",
      `http://127.0.0.1:${squid.port}`,
    ]);
    const stdin = child.stdin.getWriter();
    const writing = (async () => {
      for (const chunk of pseudoRandomChunks(3, SIZE)) await stdin.write(chunk);
    })();
    // stdout carries the destination's bytes and nothing else.
    const hash = createHash("sha256");
    let length = 0;
    const reader = child.stdout.getReader();
    while (length < SIZE) {
      const { value, done } = await within(reader.read(), 20_000, "stdout");
      if (done) break;
      hash.update(value);
      length += value.length;
    }
    await writing;
    await stdin.close();
    while (
      !(await within(reader.read(), 10_000, "stdout end")).done
    ) { /* drain */ }
    const { code } = await within(child.status, 10_000, "exit");
    await child.stderr.cancel();
    assert.equal(length, SIZE);
    assert.equal(hash.digest("hex"), sha256Of(pseudoRandomChunks(4, SIZE)));
    assert.equal(await serverSaw, sha256Of(pseudoRandomChunks(3, SIZE)));
    assert.equal(code, 0);
  },
});

Deno.test({
  name:
    "stdio: stdin EOF shuts down the sending side; the answer after it still arrives (through dante)",
  ignore: !IN_CI && missing("danted"),
  async fn() {
    await using dante = await startDante();
    await using destination = startServer(async (conn) => {
      const request = text(await readAll(conn));
      await writeAll(conn, bytes(`reply to ${request}`));
    });
    const child = new Deno.Command(Deno.execPath(), {
      args: runArgs([
        "stdio",
        "127.0.0.1",
        String(destination.port),
        "--proxy",
        `socks5://127.0.0.1:${dante.port}`,
      ]),
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stdin = child.stdin.getWriter();
    await stdin.write(bytes("request"));
    await stdin.close();
    const { code, stdout, stderr } = await within(
      child.output(),
      10_000,
      "exit",
    );
    assert.equal(text(stdout), "reply to request");
    assert.equal(text(stderr), "");
    assert.equal(code, 0);
  },
});

Deno.test("stdio: failures exit 1 with the reason on stderr and nothing on stdout", async () => {
  const closed = freePort();
  for (
    const [args, reason] of [
      [
        ["127.0.0.1", String(closed)],
        /cannot open the tunnel: Cannot connect to 127\.0\.0\.1:\d+: Connection refused/,
      ],
      [
        ["example.com", "22", "--proxy", `http://127.0.0.1:${closed}`],
        /cannot open the tunnel: Cannot connect to 127\.0\.0\.1:\d+/,
      ],
    ] as const
  ) {
    const child = spawnStdio([...args]);
    await child.stdin.close();
    const { code, stdout, stderr } = await within(
      child.output(),
      10_000,
      "exit",
    );
    assert.equal(code, 1);
    assert.equal(stdout.length, 0);
    assert.match(text(stderr), reason);
  }
  const usage = spawnStdio(["only-a-host"]);
  await usage.stdin.close();
  const { code } = await usage.output();
  assert.equal(code, 2);
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

Deno.test({
  name:
    "probe --json: one report per entry, parsed, and exit 1 when a route fails",
  ignore: missing("squid"),
  async fn() {
    await using squid = await startSquid();
    await using ssh = startBannerServer("SSH-2.0-json\r\n");
    const dir = await tempConfig(
      `2222 127.0.0.1 ${ssh.port} 127.0.0.1 ${squid.port}\n2223 127.0.0.1 ${ssh.port} http://127.0.0.1:${freePort()}\n`,
    );
    try {
      const { code, stdout } = await runTool([
        "probe",
        "tunnels.conf",
        "--json",
      ], dir);
      assert.equal(code, 1);
      const reports = JSON.parse(stdout);
      assert.equal(reports.length, 2);
      assert.equal(reports[0].entry, "line 1: 127.0.0.1:2222");
      assert.equal(reports[0].ok, true);
      assert.equal(
        reports[0].steps.at(-1).detail,
        'spoke first: "SSH-2.0-json"',
      );
      assert.equal(reports[1].ok, false);
      assert.match(
        reports[1].diagnosis,
        /^nothing accepts connections at proxy 127\.0\.0\.1:\d+/,
      );
      const text = await runTool([
        "probe",
        "127.0.0.1",
        String(ssh.port),
        "--proxy",
        `http://127.0.0.1:${squid.port}`,
      ]);
      assert.equal(text.code, 0);
      assert.match(
        text.stdout,
        /ok {4}CONNECT 127\.0\.0\.1:\d+ via 127\.0\.0\.1:\d+ .*HTTP\/1\.1 200/,
      );
      assert.match(text.stdout, /=> works/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("run --status and the status command; JSON log lines", async () => {
  await using echo = startEchoServer();
  const [port, statusPort] = [freePort(), freePort()];
  await using run = await spawnRun(`${port} 127.0.0.1 ${echo.port}\n`, [
    "--status",
    `127.0.0.1:${statusPort}`,
    "--log-format",
    "json",
  ]);
  using conn = await liveTunnel(port);
  const { code, stdout } = await runTool(["status", `127.0.0.1:${statusPort}`]);
  assert.equal(code, 0);
  assert.match(
    stdout,
    /^httptunneling \d+\.\d+\.\d+ \(pid \d+\), config tunnels\.conf, last reload .*: applied\n/,
  );
  assert.match(
    stdout,
    new RegExp(
      `127\\.0\\.0\\.1:${port} +127\\.0\\.0\\.1:${echo.port} +direct +listening +1 +1 +0 +4 B +4 B`,
    ),
  );
  assert.match(
    stdout,
    /1 live tunnel\(s\)\nID +CLIENT .*\nc1 +127\.0\.0\.1:\d+ +127\.0\.0\.1:\d+/,
  );
  // --watch redraws in place: cursor home and clear, once a second.
  const watcher = tool(["status", `127.0.0.1:${statusPort}`, "--watch"])
    .spawn();
  const frames = watcher.stdout.pipeThrough(new TextDecoderStream())
    .getReader();
  let screen = "";
  while (screen.split("\x1b[H\x1b[2J").length < 3) {
    screen += (await within(frames.read(), 5_000, "frames")).value ?? "";
  }
  watcher.kill("SIGTERM");
  await frames.cancel();
  await watcher.status;
  await watcher.stderr.cancel();
  assert.match(screen, /1 live tunnel\(s\)/);
  const down = await runTool(["status", `127.0.0.1:${freePort()}`]);
  assert.equal(down.code, 1);
  assert.match(down.stderr, /is the tool running with --status/);
  conn.close();
  await waitForLog(run.log, /closed/);
  for (const line of (await Deno.readTextFile(run.log)).trim().split("\n")) {
    const record = JSON.parse(line);
    assert.equal(typeof record["@timestamp"], "string");
    assert.match(record.level, /^(DEBUG|INFO|WARNING|ERROR)$/);
    assert.match(record.logger, /^httptunneling\./);
    assert.equal(typeof record.message, "string");
  }
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

Deno.test("deno task compile builds the binary, or fails with a message naming DENORT_BIN and DENO_DIR", async () => {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "compile"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  try {
    if (code === 0) {
      const version = await new Deno.Command(`${ROOT}httptunneling`, {
        args: ["--version"],
      }).output();
      assert.match(
        text(version.stdout),
        /^httptunneling \d+\.\d+\.\d+ \(deno /,
      );
    } else {
      const said = text(stdout) + text(stderr);
      assert.match(said, /DENORT_BIN/);
      assert.match(said, /DENO_DIR/);
      assert.doesNotMatch(said, /Stack backtrace/);
    }
  } finally {
    await Deno.remove(`${ROOT}httptunneling`).catch(() => {});
    await Deno.remove(`${ROOT}compile-error.log`).catch(() => {});
  }
});
