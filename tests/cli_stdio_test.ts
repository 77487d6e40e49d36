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
