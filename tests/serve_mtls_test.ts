import assert from "node:assert/strict";
import { dirname } from "node:path";
import { makeCertificates, makeClientCertificate } from "./_util/certs.ts";
import {
  connect,
  echoRoundTrip,
  freePort,
  readAll,
  startEchoServer,
  within,
} from "./_util/net.ts";
import {
  ALICE_TOKEN,
  logMatches,
  SERVE_TLS_ARGS,
  serveCertificates,
  startServe,
} from "./_util/serve.ts";
import { runTool, spawnRun, tempConfig, waitForLog } from "./_util/tool.ts";

Deno.test(
  "serve --client-ca: a client certificate from that CA gets its tunnel; none, or one from another CA, is refused with the reason in both logs",
  async () => {
    await using certs = await serveCertificates();
    const jane = await makeClientCertificate(dirname(certs.ca), "jane");
    const otherDir = await Deno.makeTempDir({ prefix: "httptunneling-ca2-" });
    try {
      await makeCertificates(otherDir);
      const mallory = await makeClientCertificate(otherDir, "mallory");
      await using echo = startEchoServer();
      await using serve = await startServe({
        files: {
          ...certs.files,
          "client-ca.pem": await Deno.readTextFile(certs.ca),
        },
        args: [
          ...SERVE_TLS_ARGS,
          "--client-ca",
          "client-ca.pem",
          "--allow",
          `127.0.0.1:${echo.port}`,
        ],
      });
      await logMatches(serve, /client certificates required/);
      const [good, none, other] = [freePort(), freePort(), freePort()];
      const hop =
        `wss://127.0.0.1:${serve.port}/ token=${ALICE_TOKEN} ca-file=ca.pem`;
      await using tool = await spawnRun(
        [
          `${good} 127.0.0.1 ${echo.port} ${hop} client-cert=jane.pem client-key=jane.key`,
          `${none} 127.0.0.1 ${echo.port} ${hop}`,
          `${other} 127.0.0.1 ${echo.port} ${hop} client-cert=mallory.pem client-key=mallory.key`,
        ].join("\n") + "\n",
        [],
        undefined,
        await filesOf([
          certs.ca,
          jane.cert,
          jane.key,
          mallory.cert,
          mallory.key,
        ]),
      );

      assert.equal(
        await echoRoundTrip(good, "with jane's certificate"),
        "with jane's certificate",
      );
      await logMatches(serve, /open: token alice client 127\.0\.0\.1:\d+/);

      for (
        const [port, why] of [
          [none, "no client certificate"],
          [other, 'client certificate "mallory" not accepted \\('],
        ] as const
      ) {
        using conn = await connect(port);
        assert.equal((await within(readAll(conn), 15_000, why)).length, 0);
        await logMatches(
          serve,
          new RegExp(`TLS client 127\\.0\\.0\\.1:\\d+ refused: ${why}`),
        );
        await waitForLog(
          tool.log,
          new RegExp(
            `refused the client certificate for .*\\(status 403; server says: ${why}.*give client-cert= and client-key=`,
          ),
        );
      }
    } finally {
      await Deno.remove(otherDir, { recursive: true });
    }
  },
);

Deno.test(
  "client certificates: a missing half or a key of another certificate is a located config error; --client-ca without --cert is a usage error",
  async () => {
    await using certs = await serveCertificates();
    const dir = dirname(certs.ca);
    const jane = await makeClientCertificate(dir, "jane");
    const joe = await makeClientCertificate(dir, "joe");
    const config = await tempConfig(
      [
        "2222 host 22 wss://far.example/ client-cert=jane.pem",
        "2223 host 22 wss://far.example/ client-cert=jane.pem client-key=joe.key",
        "2224 host 22 http://proxy:3128 client-key=jane.key",
      ].join("\n") + "\n",
      await filesOf([jane.cert, jane.key, joe.key]),
    );
    try {
      const { code, stdout, stderr } = await runTool(
        ["check", "tunnels.conf"],
        config,
      );
      assert.equal(code, 1);
      const said = stdout + stderr;
      assert.match(
        said,
        /tunnels\.conf:1:\d+: client-cert= and client-key= go together: give both/,
      );
      assert.match(
        said,
        /tunnels\.conf:2:\d+: client-key=: the key does not belong to the certificate/,
      );
      assert.match(
        said,
        /tunnels\.conf:3:\d+: option client-key applies to ws:\/\/ and wss:\/\/ hops/,
      );
      assert.ok(!said.includes("PRIVATE KEY"));
    } finally {
      await Deno.remove(config, { recursive: true });
    }
    const usage = await runTool(["serve", "--client-ca", certs.ca]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--client-ca needs --cert and --key/);
  },
);

// The files at `paths`, by their base names, to put beside a config.
async function filesOf(paths: string[]): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const path of paths) {
    files[path.slice(path.lastIndexOf("/") + 1)] = await Deno.readTextFile(
      path,
    );
  }
  return files;
}
