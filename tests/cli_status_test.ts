/**
 * `run --status` and the `status` command (the status server itself:
 * status_test.ts); JSON log lines.
 */
import assert from "node:assert/strict";
import { freePort, startEchoServer, within } from "./_util/net.ts";
import {
  liveTunnel,
  runTool,
  spawnRun,
  tool,
  waitForLog,
} from "./_util/tool.ts";

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
  // --json: the same document as /status.
  const json = await runTool([
    "status",
    `127.0.0.1:${statusPort}`,
    "--json",
  ]);
  assert.equal(json.code, 0);
  const document = JSON.parse(json.stdout);
  assert.equal(document.entries[0].source, `127.0.0.1:${port}`);
  assert.equal(document.tunnels.length, 1);
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
