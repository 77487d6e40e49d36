import assert from "node:assert/strict";
import { parseProxyUrlText } from "../lib/config/proxy_url.ts";
import { readProxyEnvironment } from "../lib/route/env.ts";
import {
  connect,
  echoExchange,
  freePort,
  pause,
  readAll,
  startEchoServer,
  within,
} from "./_util/net.ts";
import {
  IN_CI,
  missing,
  SOCKS_TEST_USER,
  startDante,
  startSquid,
  startTinyproxy,
  startTlsFront,
} from "./_util/proxies.ts";
import { captureLogs, startTool, TEST_OPTIONS } from "./_util/tool.ts";

const noSquid = missing("squid");
const noTinyproxy = missing("tinyproxy");
const noStunnel = !IN_CI && missing("stunnel4");
const noDante = !IN_CI && missing("danted");

/** Config files (CA certificates) read the way the loader reads them. */
const FILES = {
  env: () => undefined,
  readFile: (path: string) => Deno.readTextFileSync(path),
};

Deno.test({
  name:
    "an https:// proxy (stunnel in front of real squid), trusted through ca-file",
  ignore: noSquid || noStunnel,
  async fn() {
    await using logs = await captureLogs();
    await using squid = await startSquid();
    await using front = await startTlsFront(squid.port);
    await using echo = startEchoServer();
    const caFile = `${front.dir}/ca.pem`;
    const [trusted, untrusted] = [freePort(), freePort()];
    await using _tool = await startTool(
      `${trusted} 127.0.0.1 ${echo.port} https://127.0.0.1:${front.port} ca-file=${caFile}\n` +
        `${untrusted} 127.0.0.1 ${echo.port} https://127.0.0.1:${front.port}\n`,
      { defaults: TEST_OPTIONS },
      FILES,
    );
    assert.equal(await echoExchange(trusted, "over TLS"), "over TLS");
    await logs.waitFor(/open .* via https:\/\/127\.0\.0\.1:\d+ after/);
    using conn = await connect(untrusted);
    assert.equal((await within(readAll(conn), 10_000, "refused")).length, 0);
    await logs.waitFor(
      /failed .*: TLS with proxy 127\.0\.0\.1:\d+ failed: .*(UnknownIssuer|certificate).*: if the proxy uses a private CA, name its certificate with ca-file=FILE/i,
    );
  },
});

Deno.test({
  name: "a chain: real squid, then real tinyproxy, then the destination",
  ignore: noSquid || noTinyproxy,
  async fn() {
    await using logs = await captureLogs();
    await using squid = await startSquid();
    await using tinyproxy = await startTinyproxy();
    await using echo = startEchoServer();
    const port = freePort();
    await using _tool = await startTool(
      `${port} 127.0.0.1 ${echo.port} http://127.0.0.1:${squid.port} http://127.0.0.1:${tinyproxy.port}\n`,
    );
    assert.equal(await echoExchange(port, "two hops"), "two hops");
    await logs.waitFor(
      /open .* via http:\/\/127\.0\.0\.1:\d+ -> http:\/\/127\.0\.0\.1:\d+ after/,
    );
  },
});

Deno.test({
  name:
    "failover: a closed first proxy is skipped for squid, then used again after its backoff",
  ignore: noSquid || noTinyproxy,
  async fn() {
    await using logs = await captureLogs();
    await using squid = await startSquid();
    await using echo = startEchoServer();
    const [port, down] = [freePort(), freePort()];
    await using _tool = await startTool(
      `${port} 127.0.0.1 ${echo.port} http://127.0.0.1:${down},http://127.0.0.1:${squid.port}\n`,
      { defaults: TEST_OPTIONS, failoverBackoffMs: 300 },
    );
    assert.equal(await echoExchange(port, "via the second"), "via the second");
    await logs.waitFor(
      new RegExp(
        `http://127\\.0\\.0\\.1:${down} failed \\(Cannot connect to 127\\.0\\.0\\.1:${down}: Connection refused.*\\); trying http://127\\.0\\.0\\.1:${squid.port}, and skipping the failed one for 0 s`,
      ),
    );
    // The first proxy comes up; after the backoff it is preferred again.
    await using _first = await startTinyproxy(down);
    await pause(400);
    assert.equal(await echoExchange(port, "via the first"), "via the first");
    await logs.waitFor(
      new RegExp(`open .* via http://127\\.0\\.0\\.1:${down} after`),
    );
    await logs.waitFor(
      new RegExp(
        `^c\\d+ proxy http://127\\.0\\.0\\.1:${down} recovered after 1 failure\\(s\\)$`,
      ),
    );
    // Only once: the next tunnel through it is not a recovery.
    assert.equal(await echoExchange(port, "again"), "again");
    assert.equal(
      logs.lines.filter((line) => line.includes("recovered")).length,
      1,
    );
  },
});

Deno.test({
  name: "a refused destination (403 from a working proxy) does not fail over",
  async fn() {
    await using logs = await captureLogs();
    const refusing = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const serving = (async () => {
      const conn = await refusing.accept();
      await conn.read(new Uint8Array(4096));
      await conn.write(
        new TextEncoder().encode("HTTP/1.1 403 Forbidden\r\n\r\n"),
      );
      conn.close();
    })();
    const [port, never] = [freePort(), freePort()];
    await using _tool = await startTool(
      `${port} example.com 22 http://127.0.0.1:${refusing.addr.port},http://127.0.0.1:${never}\n`,
    );
    using conn = await connect(port);
    await within(readAll(conn), 5_000, "closed");
    await serving;
    refusing.close();
    await logs.waitFor(
      /failed .*: Proxy 127\.0\.0\.1:\d+ refused CONNECT to example\.com:22: "HTTP\/1\.1 403 Forbidden"$/,
    );
    assert.ok(!logs.lines.some((line) => line.includes("trying")));
  },
});

Deno.test({
  name: "env: HTTPS_PROXY through real squid, and NO_PROXY going direct",
  ignore: noSquid,
  async fn() {
    await using logs = await captureLogs();
    await using squid = await startSquid();
    await using echo = startEchoServer();
    const environment = readProxyEnvironment(
      (name) =>
        ({
          HTTPS_PROXY: `http://127.0.0.1:${squid.port}`,
          NO_PROXY: "localhost,.internal",
        })[name],
      parseProxyUrlText,
    );
    const [proxied, bypassed] = [freePort(), freePort()];
    await using _tool = await startTool(
      `${proxied} 127.0.0.1 ${echo.port} env\n${bypassed} localhost ${echo.port} env\n`,
      { defaults: TEST_OPTIONS, environment },
    );
    assert.equal(await echoExchange(proxied, "through squid"), "through squid");
    await logs.waitFor(
      /open .* -> 127\.0\.0\.1:\d+ via http:\/\/127\.0\.0\.1:\d+ after/,
    );
    assert.equal(await echoExchange(bypassed, "direct"), "direct");
    await logs.waitFor(
      /open .* -> localhost:\d+ direct \(NO_PROXY or no proxy set\) after/,
    );
  },
});

Deno.test({
  name:
    "SOCKS5 through real dante: socks5 resolving here, socks5h letting dante resolve localhost",
  ignore: noDante,
  async fn() {
    await using logs = await captureLogs();
    await using dante = await startDante();
    await using echo = startEchoServer();
    const [local, remote] = [freePort(), freePort()];
    await using _tool = await startTool(
      `${local} 127.0.0.1 ${echo.port} socks5://127.0.0.1:${dante.port}\n` +
        `${remote} localhost ${echo.port} socks5h://127.0.0.1:${dante.port}\n`,
    );
    assert.equal(await echoExchange(local, "socks5"), "socks5");
    assert.equal(await echoExchange(remote, "socks5h"), "socks5h");
    await logs.waitFor(
      /open .* -> localhost:\d+ via socks5h:\/\/127\.0\.0\.1:\d+ after/,
    );
    // A closed destination is reported with dante's reply.
    const closed = freePort();
    const refusedPort = freePort();
    await using _second = await startTool(
      `${refusedPort} 127.0.0.1 ${closed} socks5://127.0.0.1:${dante.port}\n`,
    );
    using conn = await connect(refusedPort);
    await within(readAll(conn), 5_000, "closed");
    await logs.waitFor(
      /failed .*: SOCKS5 proxy 127\.0\.0\.1:\d+ refused CONNECT to 127\.0\.0\.1:\d+: (connection refused by the destination|host unreachable|general SOCKS server failure) \(reply \d\)$/,
    );
  },
});

const hasSocksUser = IN_CI || (() => {
  try {
    return Deno.readTextFileSync("/etc/passwd").includes(
      `${SOCKS_TEST_USER.username}:`,
    );
  } catch {
    return false;
  }
})();

Deno.test({
  name:
    "SOCKS5 through real dante with username/password: right ones tunnel, wrong ones are rejected",
  ignore: noDante || !hasSocksUser,
  async fn() {
    await using logs = await captureLogs();
    await using dante = await startDante(true);
    await using echo = startEchoServer();
    const { username, password } = SOCKS_TEST_USER;
    const [good, bad, none] = [freePort(), freePort(), freePort()];
    await using _tool = await startTool(
      `${good} 127.0.0.1 ${echo.port} socks5://${username}:${password}@127.0.0.1:${dante.port}\n` +
        `${bad} 127.0.0.1 ${echo.port} socks5://${username}:wrong@127.0.0.1:${dante.port}\n` +
        `${none} 127.0.0.1 ${echo.port} socks5://127.0.0.1:${dante.port}\n`,
    );
    assert.equal(await echoExchange(good, "authenticated"), "authenticated");
    for (const port of [bad, none]) {
      using conn = await connect(port);
      await within(readAll(conn), 5_000, "closed");
    }
    await logs.waitFor(
      /failed .*: SOCKS5 proxy 127\.0\.0\.1:\d+ rejected the user name or password$/,
    );
    await logs.waitFor(
      /failed .*: SOCKS5 proxy 127\.0\.0\.1:\d+ requires a user name and password/,
    );
    assert.ok(!logs.lines.some((line) => line.includes(password)));
  },
});
