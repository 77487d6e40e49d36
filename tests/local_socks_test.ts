/**
 * End-to-end tests of the local SOCKS server (`<source> socks <route>`):
 * netcat and curl as SOCKS5 and SOCKS4a clients of the tool, carried on
 * over real squid (CONNECT) or real dante (socks5h), with the entry's
 * `direct-for=` and `client-auth=`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { curl, netcatThroughSocks } from "./_util/clients.ts";
import { squidLogged, tempCertificates } from "./_util/local.ts";
import { freePort, startEchoServer } from "./_util/net.ts";
import {
  HELLO_TEXT,
  startHttpOrigin,
  startHttpsOrigin,
} from "./_util/origins.ts";
import {
  missing,
  missingOnPath,
  SQUID_LOOPBACK_ONLY,
  startDante,
  startSquid,
} from "./_util/proxies.ts";
import { captureLogs, startTool } from "./_util/tool.ts";

const noSquid = missing("squid");
const noDante = missing("danted");
const noCurl = missingOnPath("curl");
const noNetcat = missingOnPath("nc");

/** An HTTP/1.0 request for /hello: the origin closes after answering. */
const GET_HELLO = "GET /hello HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";

Deno.test({
  name:
    "SOCKS5 over squid: netcat and curl reach the origins, names resolved by squid; direct-for= goes around squid; a closed port is a SOCKS failure",
  ignore: noSquid || noCurl || noNetcat,
  async fn() {
    await using logs = await captureLogs();
    await using certs = await tempCertificates();
    await using origin = startHttpOrigin();
    await using https = await startHttpsOrigin(certs);
    await using echo = startEchoServer();
    await using squid = await startSquid(SQUID_LOOPBACK_ONLY);
    const port = freePort();
    await using _tool = await startTool(
      `${port} socks http://127.0.0.1:${squid.port} direct-for=127.0.0.1:${echo.port}\n`,
    );

    // squid ends a tunnel when one side shuts down: netcat waits instead.
    const raw = await netcatThroughSocks(
      port,
      "127.0.0.1",
      origin.port,
      GET_HELLO,
      { halfClose: false },
    );
    assert.equal(raw.code, 0, raw.stderr);
    assert.match(raw.stdout, /^HTTP\/1\.[01] 200 OK\r\n/);
    assert.ok(raw.stdout.endsWith(`\r\n\r\n${HELLO_TEXT}`), raw.stdout);

    const named = await curl([
      "--socks5-hostname",
      `127.0.0.1:${port}`,
      `http://localhost:${origin.port}/hello`,
    ]);
    assert.equal(named.code, 0, named.stderr);
    assert.equal(named.stdout, HELLO_TEXT);
    const secure = await curl([
      "--socks5-hostname",
      `127.0.0.1:${port}`,
      "--cacert",
      https.caFile,
      `https://localhost:${https.port}/hello`,
    ]);
    assert.equal(secure.code, 0, secure.stderr);
    assert.equal(secure.stdout, HELLO_TEXT);
    // Through the tunnel nothing was added to the requests.
    assert.equal(origin.requests.at(-1)!.headers.get("via"), null);

    // direct-for=: the echo server is reached without squid.
    const message = "around squid\n".repeat(50);
    const direct = await netcatThroughSocks(
      port,
      "127.0.0.1",
      echo.port,
      message,
    );
    assert.equal(direct.code, 0, direct.stderr);
    assert.equal(direct.stdout, message);
    await logs.waitFor(
      new RegExp(
        `open 127\\.0\\.0\\.1:\\d+ -> 127\\.0\\.0\\.1:${echo.port} direct after`,
      ),
    );

    const closed = freePort();
    const refused = await curl([
      "--socks5-hostname",
      `127.0.0.1:${port}`,
      `http://127.0.0.1:${closed}/hello`,
    ]);
    assert.equal(refused.code, 97, refused.stderr);
    assert.match(refused.stderr, /Can't complete SOCKS5 connection/);
    await logs.waitFor(
      new RegExp(
        `failed 127\\.0\\.0\\.1:\\d+ -> 127\\.0\\.0\\.1:${closed} via http://127\\.0\\.0\\.1:${squid.port}: .*refused CONNECT`,
      ),
    );

    const log = await squidLogged(squid.dir, / TCP_TUNNEL\/200 /, 3);
    const tunnels = log.filter((line) => / TCP_TUNNEL\/200 /.test(line));
    // The names went to squid as they were: squid resolved them.
    assert.deepEqual(
      tunnels.map((line) => line.split(/\s+/)[6]).sort(),
      [
        `127.0.0.1:${origin.port}`,
        `localhost:${https.port}`,
        `localhost:${origin.port}`,
      ].sort(),
    );
    assert.ok(!log.some((line) => line.includes(`:${echo.port} `)));
  },
});

Deno.test({
  name:
    "SOCKS5 over dante (socks5h route): netcat and curl reach the origin, the name resolved by dante",
  ignore: noDante || noCurl || noNetcat,
  async fn() {
    await using logs = await captureLogs();
    await using origin = startHttpOrigin();
    await using echo = startEchoServer();
    await using dante = await startDante();
    const port = freePort();
    await using _tool = await startTool(
      `${port} socks socks5h://127.0.0.1:${dante.port}\n`,
    );
    const message = "through dante\n".repeat(100);
    const echoed = await netcatThroughSocks(
      port,
      "localhost",
      echo.port,
      message,
    );
    assert.equal(echoed.code, 0, echoed.stderr);
    assert.equal(echoed.stdout, message);
    const raw = await netcatThroughSocks(
      port,
      "127.0.0.1",
      origin.port,
      GET_HELLO,
    );
    assert.equal(raw.code, 0, raw.stderr);
    assert.ok(raw.stdout.endsWith(`\r\n\r\n${HELLO_TEXT}`), raw.stdout);

    const got = await curl([
      "--socks5-hostname",
      `127.0.0.1:${port}`,
      `http://localhost:${origin.port}/hello`,
    ]);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.stdout, HELLO_TEXT);
    for (
      const target of [`localhost:${echo.port}`, `localhost:${origin.port}`]
    ) {
      await logs.waitFor(
        new RegExp(
          `open 127\\.0\\.0\\.1:\\d+ -> ${target} via socks5h://127\\.0\\.0\\.1:${dante.port} after`,
        ),
      );
    }
  },
});

Deno.test({
  name:
    "SOCKS client-auth= with curl --proxy-user: right ones pass, wrong or none are refused; SOCKS4a and SOCKS4 with curl",
  ignore: noSquid || noCurl,
  async fn() {
    await using logs = await captureLogs();
    await using origin = startHttpOrigin();
    await using squid = await startSquid(SQUID_LOOPBACK_ONLY);
    const [guarded, open] = [freePort(), freePort()];
    await using _tool = await startTool(
      `${guarded} socks http://127.0.0.1:${squid.port} client-auth=alice:Wonder-1\n` +
        `${open} socks http://127.0.0.1:${squid.port}\n`,
    );
    const url = `http://localhost:${origin.port}/hello`;
    const through = (port: number, ...args: string[]) =>
      curl([...args, "--socks5-hostname", `127.0.0.1:${port}`, url]);

    const right = await through(guarded, "--proxy-user", "alice:Wonder-1");
    assert.equal(right.code, 0, right.stderr);
    assert.equal(right.stdout, HELLO_TEXT);

    const wrong = await through(guarded, "--proxy-user", "alice:wonder-1");
    assert.equal(wrong.code, 97);
    assert.match(wrong.stderr, /User was rejected by the SOCKS5 server/);
    await logs.waitFor(/gave a wrong user name or password \(user "alice"\)/);
    assert.ok(!logs.lines.some((line) => line.includes("wonder-1")));

    const none = await through(guarded);
    assert.equal(none.code, 97);
    assert.match(none.stderr, /No authentication method was acceptable/);

    // SOCKS4 has no password: it cannot pass client-auth=.
    const socks4Guarded = await curl([
      "--socks4a",
      `127.0.0.1:${guarded}`,
      url,
    ]);
    assert.equal(socks4Guarded.code, 97);
    assert.match(socks4Guarded.stderr, /request rejected or failed/);
    await logs.waitFor(/spoke SOCKS4, which has no password/);

    const socks4 = [["--socks4a", "localhost"], ["--socks4", "127.0.0.1"]];
    for (const [flag, host] of socks4) {
      const got = await curl([
        flag,
        `127.0.0.1:${open}`,
        `http://${host}:${origin.port}/hello`,
      ]);
      assert.equal(got.code, 0, `${flag}: ${got.stderr}`);
      assert.equal(got.stdout, HELLO_TEXT);
    }
    // SOCKS4a passed the name on: squid resolved it.
    const log = await squidLogged(squid.dir, / TCP_TUNNEL\/200 /, 3);
    assert.equal(
      log.filter((line) => line.includes(`CONNECT localhost:${origin.port} `))
        .length,
      2,
      log.join("\n"),
    );
    assert.equal(
      log.filter((line) => line.includes(`CONNECT 127.0.0.1:${origin.port} `))
        .length,
      1,
      log.join("\n"),
    );
  },
});
