/**
 * How the `run` command stops: SIGTERM lets live tunnels finish,
 * --shutdown-timeout and a second SIGTERM cut them.
 */
import assert from "node:assert/strict";
import {
  bytes,
  freePort,
  readAll,
  readExactly,
  startEchoServer,
  text,
  within,
  writeAll,
} from "./_util/net.ts";
import { liveTunnel, spawnRun, waitForLog } from "./_util/tool.ts";

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
