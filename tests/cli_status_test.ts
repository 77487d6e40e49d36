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
  const [port, statusPort, chained] = [freePort(), freePort(), freePort()];
  const route =
    "http://proxy-a.corp.example:3128,http://proxy-b.corp.example:3128 socks5h://jump.example:1080";
  await using run = await spawnRun(
    `${port} 127.0.0.1 ${echo.port}\n${chained} db.internal 5432 ${route}\n`,
    [
      "--status",
      `127.0.0.1:${statusPort}`,
      "--log-format",
      "json",
    ],
  );
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
      `\\n127\\.0\\.0\\.1:${port} +127\\.0\\.0\\.1:${echo.port} +direct +listening +1 +1 +0\\n`,
    ),
  );
  assert.match(
    stdout,
    new RegExp(
      `\\ntraffic, and failures by reason\\nSOURCE +UP +DOWN\\n127\\.0\\.0\\.1:${port} +4 B +4 B\\n`,
    ),
  );
  for (const line of stdout.split("\n")) assert.ok(line.length <= 100, line);
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
  assert.equal(document.entries[1].proxies.length, 3);
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
  // A long route is cut in the middle to fit; --wide shows it whole.
  const full =
    "via http://proxy-a.corp.example:3128,http://proxy-b.corp.example:3128 -> socks5h://jump.example:1080";
  assert.ok(!stdout.includes(full));
  assert.match(
    stdout,
    new RegExp(
      `\\n127\\.0\\.0\\.1:${chained} +db\\.internal:5432 +via http://pro\\S*…\\S*\\.example:1080 +listening`,
    ),
  );
  const wide = await runTool(["status", `127.0.0.1:${statusPort}`, "--wide"]);
  assert.equal(wide.code, 0);
  assert.ok(wide.stdout.includes(full), wide.stdout);
  const down = await runTool(["status", `127.0.0.1:${freePort()}`]);
  assert.equal(down.code, 1);
  assert.match(
    down.stderr,
    /: nothing listens there \(connection refused\); is the tool running with --status 127\.0\.0\.1:\d+\?\n$/,
  );
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
