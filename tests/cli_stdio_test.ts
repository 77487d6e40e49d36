/**
 * The `stdio` command: one tunnel on stdin and stdout, for SSH's
 * ProxyCommand.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  hashExactly,
  pseudoRandomChunks,
  sendChunks,
  sha256Of,
} from "./_util/data.ts";
import {
  bytes,
  freePort,
  readAll,
  startServer,
  text,
  within,
  writeAll,
} from "./_util/net.ts";
import { IN_CI, missing, startDante, startSquid } from "./_util/proxies.ts";
import { runArgs } from "./_util/tool.ts";

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

Deno.test("stdio: failures exit 1 with the reason and probe's advice on stderr, nothing on stdout", async () => {
  const closed = freePort();
  for (
    const [args, reason] of [
      [
        ["127.0.0.1", String(closed)],
        /cannot open the tunnel: Cannot connect to 127\.0\.0\.1:\d+: Connection refused.*; nothing accepts connections at 127\.0\.0\.1:\d+ \(connection refused\): check the host and port\n$/,
      ],
      [
        ["example.com", "22", "--proxy", `http://127.0.0.1:${closed}`],
        /cannot open the tunnel: Cannot connect to 127\.0\.0\.1:\d+.*; nothing accepts connections at proxy 127\.0\.0\.1:\d+ \(connection refused\): check the host and port\n$/,
      ],
      [
        ["name.invalid", "22"],
        /; the name in name\.invalid:22 does not resolve here: check its spelling and this machine's DNS, or write the IP address\n$/,
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

Deno.test("stdio: ends when its reader goes away or a time limit passes, even with stdin still open", async () => {
  const endless = startServer(async (conn) => {
    const chunk = new Uint8Array(64 * 1024);
    while (true) await writeAll(conn, chunk);
  });
  const silent = startServer(async (conn) => {
    await readAll(conn);
  });
  const halfClosed = startServer(async (conn) => {
    await writeAll(conn, bytes("bye"));
    await conn.closeWrite();
    await readAll(conn);
  });
  await using _servers = {
    async [Symbol.asyncDispose]() {
      for (const server of [endless, silent, halfClosed]) {
        await server[Symbol.asyncDispose]();
      }
    },
  };
  // `stdio … | head -c 100000`: the reader of stdout goes away early.
  const piped = spawnStdio(["127.0.0.1", String(endless.port)]);
  const reader = piped.stdout.getReader();
  let got = 0;
  while (got < 100_000) {
    const { value, done } = await within(reader.read(), 5_000, "stdout");
    if (done) break;
    got += value.length;
  }
  await reader.cancel();
  const ended = await within(
    piped.status,
    5_000,
    "stdio after its reader left",
  );
  assert.notEqual(ended.code, 0, "a tunnel cut short is a failure");
  await piped.stdin.close();
  await piped.stderr.cancel();
  for (
    const [port, flag] of [
      [silent.port, "--idle-timeout"],
      [halfClosed.port, "--linger-timeout"],
    ] as const
  ) {
    const child = spawnStdio(["127.0.0.1", String(port), flag, "300ms"]);
    // stdin stays open and silent: only the time limit can end the tunnel.
    const status = await within(child.status, 5_000, `stdio ${flag}`);
    assert.equal(status.code, 0, flag);
    await child.stdin.close();
    await child.stdout.cancel();
    await child.stderr.cancel();
  }
});

Deno.test({
  name:
    "stdio -v logs the open line with its time; a failure through squid ends with probe's advice, squid's reason in words",
  ignore: missing("squid"),
  async fn() {
    await using squid = await startSquid();
    await using destination = startServer(async (conn) => {
      await writeAll(conn, bytes("hello"));
    });
    const proxy = `http://127.0.0.1:${squid.port}`;
    const open = spawnStdio([
      "127.0.0.1",
      String(destination.port),
      "--proxy",
      proxy,
      "-v",
    ]);
    // stdin ends only after the greeting is out: squid ends the whole
    // tunnel when the client half-closes, which could cut the greeting.
    const greeting = open.stdout.getReader();
    const { value } = await within(greeting.read(), 10_000, "the greeting");
    assert.equal(text(value!), "hello");
    greeting.releaseLock();
    await open.stdin.close();
    const opened = await within(open.output(), 10_000, "exit");
    assert.equal(opened.code, 0);
    assert.equal(text(opened.stdout), "");
    assert.match(
      text(opened.stderr),
      new RegExp(
        `^\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\.\\d{3} [+-]\\d\\d:\\d\\d \\[INF\\] httptunneling\\.stdio: open -> 127\\.0\\.0\\.1:${destination.port} via http://127\\.0\\.0\\.1:${squid.port} after \\d+ ms$`,
        "m",
      ),
    );
    const failed = spawnStdio([
      "127.0.0.1",
      String(freePort()),
      "--proxy",
      proxy,
    ]);
    await failed.stdin.close();
    const result = await within(failed.output(), 10_000, "exit");
    assert.equal(result.code, 1);
    assert.match(
      text(result.stderr),
      /; proxy 127\.0\.0\.1:\d+ could not reach 127\.0\.0\.1:\d+ \(503 Service Unavailable\): the proxy could not connect to the destination: connection refused; nothing listens on that port there, or the destination is down\n$/,
    );
  },
});
