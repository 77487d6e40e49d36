import assert from "node:assert/strict";
import { pseudoRandomChunks, sha256Of } from "./_util/data.ts";
import {
  connect,
  freePort,
  readAll,
  readExactly,
  startEchoServer,
  within,
  writeAll,
} from "./_util/net.ts";
import {
  missing,
  startBumpingSquid,
  startSquidWithBasic,
  startSquidWithNtlm,
  type TestProcess,
} from "./_util/proxies.ts";
import {
  ALICE_TOKEN,
  fingerprintOf,
  logMatches,
  missingWebsockets,
  SERVE_TLS_ARGS,
  serveCertificates,
  startServe,
} from "./_util/serve.ts";
import {
  captureLogs,
  startTool,
  TEST_OPTIONS,
  waitForLog,
} from "./_util/tool.ts";

// issue #19: the corporate proxies in front of a wss:// hop that users
// meet, as real squids: NTLM or Basic authentication done by the tool, and
// TLS interception with squid's own CA.
const ignore = missingWebsockets() || missing("squid");

/** Sends 1 MiB through `port`, shuts down, and checks the echo's bytes. */
async function echoesMegabyte(port: number): Promise<void> {
  using conn = await connect(port);
  const sent = [...pseudoRandomChunks(7, 1024 * 1024, 30_000)];
  const [received] = await within(
    Promise.all([
      readAll(conn),
      (async () => {
        for (const chunk of sent) await writeAll(conn, chunk);
        await conn.closeWrite();
      })(),
    ]),
    60_000,
    "1 MiB through the tunnel and back",
  );
  assert.equal(received.length, 1024 * 1024);
  assert.equal(sha256Of([received]), sha256Of(sent));
}

for (
  const { scheme, start, user, logged } of [
    // ntlm_fake_auth reads our UTF-16 domain and user as C strings: it
    // logs their first letters.
    {
      scheme: "NTLM",
      start: startSquidWithNtlm,
      user: "CORP%5Cjane",
      logged: String.raw`C\\\\j`,
    },
    {
      scheme: "Basic",
      start: () => startSquidWithBasic("jane", "Secret-123"),
      user: "jane",
      logged: "jane",
    },
  ] satisfies {
    scheme: string;
    start: () => Promise<TestProcess>;
    user: string;
    logged: string;
  }[]
) {
  Deno.test({
    name:
      `squid requiring ${scheme} in front of a wss:// hop: the tool authenticates to squid, and 1 MiB crosses both ways`,
    ignore,
    async fn() {
      await using certs = await serveCertificates();
      await using echo = startEchoServer();
      await using squid = await start();
      await using serve = await startServe({
        files: certs.files,
        args: [...SERVE_TLS_ARGS, "--allow", `127.0.0.1:${echo.port}`],
      });
      const ca = await Deno.readTextFile(certs.ca);
      const port = freePort();
      {
        await using _tool = await startTool(
          `${port} 127.0.0.1 ${echo.port} http://${user}:Secret-123@127.0.0.1:${squid.port} wss://127.0.0.1:${serve.port} token=${ALICE_TOKEN} ca-file=ca.pem`,
          { defaults: TEST_OPTIONS },
          { env: () => undefined, readFile: () => ca },
        );
        await echoesMegabyte(port);
        await logMatches(
          serve,
          /tunnel \d+ closed: .*1\.0 MiB up, 1\.0 MiB down/,
        );
      }
      // squid let the CONNECT through as the authenticated user; it logs
      // the tunnel when it ends, that is when the tool's session closes.
      await waitForLog(
        `${squid.dir}/access.log`,
        new RegExp(
          `TCP_TUNNEL/200 .*CONNECT 127\\.0\\.0\\.1:${serve.port} ${logged} `,
        ),
      );
    },
  });
}

Deno.test({
  name:
    "a TLS-intercepting squid (ssl_bump) in front of a wss:// hop: refused as an unknown issuer without ca-file=, carried with ca-file= naming squid's CA, refused by a fingerprint= pin of serve's certificate",
  ignore,
  async fn() {
    await using certs = await serveCertificates();
    await using echo = startEchoServer();
    await using squid = await startBumpingSquid(certs.ca);
    await using serve = await startServe({
      files: certs.files,
      args: [...SERVE_TLS_ARGS, "--allow", `127.0.0.1:${echo.port}`],
    });
    const squidCa = await Deno.readTextFile(squid.caFile);
    const pin = await fingerprintOf(certs.cert);
    await using logs = await captureLogs();
    const [unchecked, trusted, pinned] = [freePort(), freePort(), freePort()];
    const hops =
      `127.0.0.1 ${echo.port} http://127.0.0.1:${squid.port} wss://127.0.0.1:${serve.port} token=${ALICE_TOKEN}`;
    {
      await using _tool = await startTool(
        [
          `${unchecked} ${hops}`,
          `${trusted} ${hops} ca-file=squid-ca.pem`,
          `${pinned} ${hops} fingerprint=${pin}`,
        ].join("\n"),
        { defaults: TEST_OPTIONS },
        { env: () => undefined, readFile: () => squidCa },
      );

      // Trusting squid's CA: the bumped connection carries the tunnel.
      await echoesMegabyte(trusted);
      await logMatches(
        serve,
        /tunnel \d+ closed: .*1\.0 MiB up, 1\.0 MiB down/,
      );

      for (
        const [port, pattern] of [
          [unchecked, /UnknownIssuer.*ca-file=/],
          [pinned, /fingerprint/],
        ] as const
      ) {
        using conn = await connect(port);
        assert.equal(
          (await within(readAll(conn), 20_000, "refusal")).length,
          0,
        );
        await logs.waitFor(pattern, 20_000);
      }
    }
    // squid saw the upgrade in the clear; it logs the request when the
    // connection ends, that is when the tool's session closes.
    await waitForLog(
      `${squid.dir}/access.log`,
      new RegExp(`GET https://127\\.0\\.0\\.1:${serve.port}/`),
    );
  },
});

Deno.test({
  name:
    "issue #20's done-when: one NTLM handshake with squid serves a hundred tunnels, all open at once, each echoing its own bytes",
  ignore,
  async fn() {
    await using echo = startEchoServer();
    await using squid = await startSquidWithNtlm();
    await using serve = await startServe({
      args: ["--allow", `127.0.0.1:${echo.port}`],
    });
    const port = freePort();
    {
      await using _tool = await startTool(
        `${port} 127.0.0.1 ${echo.port} http://CORP%5Cjane:Secret-123@127.0.0.1:${squid.port} ws://127.0.0.1:${serve.port} token=${ALICE_TOKEN}`,
        { defaults: TEST_OPTIONS },
      );
      const conns = await Promise.all(
        Array.from({ length: 100 }, () => connect(port)),
      );
      try {
        await within(
          Promise.all(conns.map(async (conn, i) => {
            const payload = [...pseudoRandomChunks(100 + i, 4096)][0];
            await writeAll(conn, payload);
            const back = await readExactly(conn, payload.length);
            assert.equal(sha256Of([back]), sha256Of([payload]));
          })),
          60_000,
          "100 echoes",
        );
      } finally {
        for (const conn of conns) conn.close();
      }
      await logMatches(serve, /tunnel 100 open:/);
    }
    const log = await serve.logText();
    assert.equal(log.match(/session \S+ new/g)?.length, 1, log);
    // squid logs the one tunnel when the tool's session closes: one
    // CONNECT let through, after one NTLM challenge (its 407s).
    const access = await waitForLog(
      `${squid.dir}/access.log`,
      new RegExp(`TCP_TUNNEL/200 .*CONNECT 127\\.0\\.0\\.1:${serve.port} `),
    );
    assert.equal(access.match(/TCP_TUNNEL\/200/g)?.length, 1, access);
    assert.ok(
      (access.match(/TCP_DENIED\/407/g)?.length ?? 0) <= 2,
      access,
    );
  },
});
