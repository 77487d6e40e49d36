import assert from "node:assert/strict";
import {
  connect,
  echoExchange,
  eventually,
  freePort,
  readAll,
  startEchoServer,
  within,
} from "./_util/net.ts";
import {
  IN_CI,
  missing,
  startSquidWithBasic,
  startSquidWithDigest,
  startSquidWithNtlm,
  type TestProcess,
} from "./_util/proxies.ts";
import { byConnection, startLoggedSquid } from "./_util/local.ts";
import { captureLogs, spawnRun, startTool, waitForLog } from "./_util/tool.ts";

const PASSWORD = "pa55-Wörd@with%specials/ok";
const noSquid = missing("squid");
const noHtpasswd = !IN_CI && missing("htpasswd");

function proxyUrl(user: string, password: string, port: number): string {
  return `http://${encodeURIComponent(user)}:${
    encodeURIComponent(password)
  }@127.0.0.1:${port}`;
}

/** squid's access log once it has a line matching `pattern`. */
function accessLog(squid: TestProcess, pattern: RegExp): Promise<string> {
  // squid writes a tunnel's line when the tunnel ends.
  return eventually(
    async () => {
      const log = await Deno.readTextFile(`${squid.dir}/access.log`).catch(() =>
        ""
      );
      return pattern.test(log) && log;
    },
    10_000,
    `squid access log line ${pattern}`,
  );
}

async function assertRejected(
  port: number,
  logs: Awaited<ReturnType<typeof captureLogs>>,
  scheme: string,
) {
  using conn = await connect(port);
  assert.equal(
    (await within(readAll(conn), 10_000, "client closed")).length,
    0,
  );
  await logs.waitFor(
    new RegExp(
      `^c\\d+ failed .*: Proxy 127\\.0\\.0\\.1:\\d+ rejected the credentials \\(${scheme}\\) for CONNECT 127\\.0\\.0\\.1:\\d+: "HTTP/1\\.1 407 Proxy Authentication Required"$`,
    ),
  );
}

function assertNoSecret(lines: string[]) {
  for (
    const secret of [PASSWORD, encodeURIComponent(PASSWORD), "wrong-password"]
  ) {
    assert.ok(
      !lines.some((line) => line.includes(secret)),
      `"${secret}" was logged`,
    );
  }
}

Deno.test({
  name:
    "real squid with Basic (basic_ncsa_auth): right credentials tunnel, wrong ones are rejected",
  ignore: noSquid || noHtpasswd,
  async fn() {
    await using logs = await captureLogs();
    await using squid = await startSquidWithBasic("jane", PASSWORD);
    await using echo = startEchoServer();
    const [good, bad, none] = [freePort(), freePort(), freePort()];
    await using _tool = await startTool(
      `${good} 127.0.0.1 ${echo.port} ${
        proxyUrl("jane", PASSWORD, squid.port)
      }\n` +
        `${bad} 127.0.0.1 ${echo.port} ${
          proxyUrl("jane", "wrong-password", squid.port)
        }\n` +
        `${none} 127.0.0.1 ${echo.port} 127.0.0.1 ${squid.port}\n`,
    );
    assert.equal(await echoExchange(good, "basic ok"), "basic ok");
    await assertRejected(bad, logs, "Basic");
    using conn = await connect(none);
    assert.equal(
      (await within(readAll(conn), 10_000, "client closed")).length,
      0,
    );
    await logs.waitFor(
      /requires authentication for CONNECT 127\.0\.0\.1:\d+ \("HTTP\/1\.1 407 Proxy Authentication Required"\): the proxy offers Basic; add user:password to the proxy URL$/,
    );
    assertNoSecret(logs.lines);
  },
});

Deno.test({
  name: "real squid with Basic: auth=basic sends credentials before any 407",
  ignore: noSquid || noHtpasswd,
  async fn() {
    await using squid = await startSquidWithBasic("jane", PASSWORD);
    await using echo = startEchoServer();
    const port = freePort();
    await using _tool = await startTool(
      `${port} 127.0.0.1 ${echo.port} ${
        proxyUrl("jane", PASSWORD, squid.port)
      } auth=basic\n`,
    );
    assert.equal(await echoExchange(port, "preemptive"), "preemptive");
    const log = await accessLog(
      squid,
      /TCP_TUNNEL\/200 .* CONNECT 127\.0\.0\.1:\d+ jane /,
    );
    assert.doesNotMatch(log, /\/407 /, "no challenge round");
  },
});

Deno.test({
  name:
    "real squid with Digest (digest_file_auth): right credentials tunnel, wrong ones are rejected",
  ignore: noSquid,
  async fn() {
    await using logs = await captureLogs();
    await using squid = await startSquidWithDigest("jane", PASSWORD);
    await using echo = startEchoServer();
    const [good, bad] = [freePort(), freePort()];
    await using _tool = await startTool(
      `${good} 127.0.0.1 ${echo.port} ${
        proxyUrl("jane", PASSWORD, squid.port)
      }\n` +
        `${bad} 127.0.0.1 ${echo.port} ${
          proxyUrl("jane", "wrong-password", squid.port)
        }\n`,
    );
    assert.equal(await echoExchange(good, "digest ok"), "digest ok");
    await accessLog(squid, /TCP_TUNNEL\/200 .* CONNECT 127\.0\.0\.1:\d+ jane /);
    await assertRejected(bad, logs, "Digest");
    assertNoSecret(logs.lines);
  },
});

Deno.test({
  name:
    "real squid with NTLM (ntlm_fake_auth): the three-message handshake on one connection",
  ignore: noSquid,
  async fn() {
    await using logs = await captureLogs();
    await using squid = await startSquidWithNtlm();
    await using echo = startEchoServer();
    const port = freePort();
    await using _tool = await startTool(
      `${port} 127.0.0.1 ${echo.port} ${
        proxyUrl("CORP\\jane", PASSWORD, squid.port)
      }\n`,
    );
    assert.equal(await echoExchange(port, "ntlm ok"), "ntlm ok");
    // ntlm_fake_auth reads our UTF-16 domain and user as C strings, so it
    // reports the first letter of each, "CORP" and "jane", logged as C\\j.
    await accessLog(
      squid,
      /TCP_TUNNEL\/200 .* CONNECT 127\.0\.0\.1:\d+ C\\\\j /,
    );
    assertNoSecret(logs.lines);
  },
});

Deno.test({
  name:
    "real squid with NTLM: once a proxy took NTLM, the next CONNECT opens with it (one 407, not two)",
  ignore: noSquid,
  async fn() {
    await using squid = await startLoggedSquid({ ntlm: true });
    await using echo = startEchoServer();
    const port = freePort();
    await using _tool = await startTool(
      `${port} 127.0.0.1 ${echo.port} http://CORP%5Cjane:x@127.0.0.1:${squid.port}\n`,
    );
    for (const round of ["first", "second", "third"]) {
      assert.equal(await echoExchange(port, round), round);
    }
    const requests = await eventually(
      async () => {
        const all = await squid.requests();
        return all.filter((r) => r.status === 200).length >= 3 && all;
      },
      5_000,
      "three tunnels in squid's log",
    );
    const denied = byConnection(requests).map((connection) =>
      connection.filter((r) => r.status === 407).length
    );
    assert.deepEqual(denied, [2, 1, 1]);
  },
});

Deno.test({
  name:
    "the run log names the authentication: once per proxy at info, each tunnel at debug (NTLM through real squid)",
  ignore: noSquid,
  async fn() {
    await using squid = await startSquidWithNtlm();
    await using echo = startEchoServer();
    const port = freePort();
    await using run = await spawnRun(
      `${port} 127.0.0.1 ${echo.port} ${
        proxyUrl("CORP\\jane", PASSWORD, squid.port)
      }\n`,
      ["--log-level", "debug"],
    );
    assert.equal(await echoExchange(port, "one"), "one");
    assert.equal(await echoExchange(port, "two"), "two");
    const log = await waitForLog(
      run.log,
      /(CONNECT 127\.0\.0\.1:\d+ through proxy 127\.0\.0\.1:\d+: NTLM[^]*){2}/,
    );
    const info = log.split("\n").filter((line) =>
      line.includes(
        `[INF] httptunneling.proxy-auth: proxy 127.0.0.1:${squid.port} authenticates with NTLM`,
      )
    );
    assert.equal(info.length, 1, log);
    const debug = log.split("\n").filter((line) =>
      /\[DBG\] .*CONNECT 127\.0\.0\.1:\d+ through proxy 127\.0\.0\.1:\d+: NTLM$/
        .test(line)
    );
    assert.equal(debug.length, 2, log);
    assertNoSecret(log.split("\n"));
  },
});
