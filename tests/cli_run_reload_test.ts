/**
 * The `run` command applying a changed config without a restart: a saved
 * file, and SIGHUP.
 */
import assert from "node:assert/strict";
import { echoRoundTrip, freePort, startEchoServer } from "./_util/net.ts";
import { startRun, tempConfig, waitForLog } from "./_util/tool.ts";

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

Deno.test("run: a config replaced by a named pipe is refused, and SIGTERM still stops the tool", async () => {
  await using echo = startEchoServer();
  const port = freePort();
  const dir = await tempConfig(`${port} 127.0.0.1 ${echo.port}\n`);
  await using run = startRun(dir);
  await waitForLog(run.log, /SIGHUP reloads too/);
  await Deno.remove(`${dir}/tunnels.conf`);
  const fifo = await new Deno.Command("mkfifo", {
    args: [`${dir}/tunnels.conf`],
  }).output();
  assert.ok(fifo.success);
  await waitForLog(run.log, /tunnels\.conf is a named pipe \(FIFO\)/);
  // The running entry is kept; disposing `run` checks SIGTERM exits 0.
  assert.equal(await echoRoundTrip(port, "still here"), "still here");
});

Deno.test("run: a world-readable credentials file is warned about once, not per entry or reload", async () => {
  await using echo = startEchoServer();
  const [a, b, c] = [freePort(), freePort(), freePort()];
  const line = (port: number) =>
    `${port} 127.0.0.1 ${echo.port} http://127.0.0.1:9 credentials=proxy.cred\n`;
  const dir = await tempConfig(line(a) + line(b));
  await Deno.writeTextFile(`${dir}/proxy.cred`, "jane:s3cret\n");
  await Deno.chmod(`${dir}/proxy.cred`, 0o644);
  await using run = startRun(dir);
  await waitForLog(run.log, /SIGHUP reloads too/);
  await Deno.writeTextFile(`${dir}/tunnels.conf`, line(a) + line(b) + line(c));
  const log = await waitForLog(
    run.log,
    /config applied: 1 added, 0 removed, 0 changed, 2 unchanged/,
  );
  const warnings = log.split("\n").filter((each) =>
    each.includes("proxy.cred can be read by other users")
  );
  assert.equal(warnings.length, 1, log);
  assert.ok(!log.includes("s3cret"));
});
