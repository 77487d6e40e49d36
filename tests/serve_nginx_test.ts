/**
 * `serve --listen 127.0.0.1:PORT` in plain HTTP behind a real nginx that
 * terminates TLS and proxies the WebSocket upgrade, as the README's
 * example configures it; the python3-websockets client goes through it.
 * nginx runs as the current user, in the foreground, with its config, pid,
 * logs and temporary files in a temporary directory.
 *
 * @module
 */

import assert from "node:assert/strict";
import { makeCertificates } from "./_util/certs.ts";
import {
  freePort,
  startEchoServer,
  text,
  waitPort,
  within,
} from "./_util/net.ts";
import { missing, nginxConf } from "./_util/proxies.ts";
import {
  ALICE_TOKEN,
  logMatches,
  missingWebsockets,
  pythonClient,
  startServe,
} from "./_util/serve.ts";

const ignore = missingWebsockets() || missing("nginx");

/** The reverse-proxy part of the README's nginx example, on test paths. */
function nginxConfig(dir: string, port: number, servePort: number): string {
  return nginxConf(
    dir,
    `  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${dir}/server.pem;
    ssl_certificate_key ${dir}/server.key;
    location /tunnel {
      proxy_pass http://127.0.0.1:${servePort};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_read_timeout 1h;
      proxy_send_timeout 1h;
      proxy_buffering off;
    }
  }`,
  );
}

Deno.test({
  name:
    "serve behind nginx terminating TLS: tunnels, half-close, refusals, the client's address",
  ignore,
  async fn() {
    await using echo = startEchoServer();
    await using serve = await startServe({
      args: [
        "--allow",
        `127.0.0.1:${echo.port}`,
        "--path",
        "/tunnel",
        "--trusted-proxy",
        "127.0.0.1",
      ],
    });
    const dir = await Deno.makeTempDir({ prefix: "httptunneling-nginx-" });
    await Deno.mkdir(`${dir}/tmp`);
    await makeCertificates(dir);
    const port = freePort();
    await Deno.writeTextFile(
      `${dir}/nginx.conf`,
      nginxConfig(dir, port, serve.port),
    );
    const nginx = new Deno.Command("nginx", {
      args: ["-p", dir, "-c", `${dir}/nginx.conf`, "-e", `${dir}/error.log`],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    try {
      await waitPort(port, 10_000, "nginx");
      const url = `wss://127.0.0.1:${port}/tunnel`;
      const ca = `${dir}/ca.pem`;
      const hello = await pythonClient({
        url,
        ca,
        token: ALICE_TOKEN,
        target: `127.0.0.1:${echo.port}`,
        send: "through nginx",
        // What a client says of itself is left of what nginx adds.
        extra_headers: { "X-Forwarded-For": "203.0.113.9" },
      });
      assert.equal(hello.status, 101);
      assert.equal(hello.protocol, "httptunneling.v1");
      assert.equal(hello.received, "through nginx");
      assert.equal(hello.eof, true);
      assert.equal(hello.close_code, 1000);

      const big = await pythonClient({
        url,
        ca,
        token: ALICE_TOKEN,
        target: `127.0.0.1:${echo.port}`,
        send: "0123456789abcdef".repeat(4096),
        repeat: 32,
      });
      assert.equal(big.received_len, 2 * 1024 * 1024);
      assert.equal(big.acked, 2 * 1024 * 1024);

      const denied = await pythonClient({
        url,
        ca,
        token: "not-a-token-0123456789",
        target: `127.0.0.1:${echo.port}`,
      });
      assert.deepEqual([denied.status, denied.refusal], [401, "auth"]);

      const log = await logMatches(serve, /tunnel 2 closed/);
      assert.match(
        log,
        /tunnel 1 open: token alice client 203\.0\.113\.9 \(via 127\.0\.0\.1:\d+\)/,
      );
      assert.match(log, /tunnel 2 closed: .* 2\.0 MiB up, 2\.0 MiB down/);
      assert.match(
        log,
        /refused 401 auth: client 127\.0\.0\.1:\d+: unknown token/,
      );
    } finally {
      nginx.kill("SIGTERM");
      const { stderr } = await within(nginx.output(), 10_000, "nginx's exit");
      const errors = text(stderr);
      await Deno.remove(dir, { recursive: true });
      assert.doesNotMatch(errors, /\[emerg\]/);
    }
  },
});
