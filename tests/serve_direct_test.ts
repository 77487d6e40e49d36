/**
 * serve's own WebSocket on the TLS connections it accepts (issue #19):
 * a v2 upgrade answered by serve itself, checked with the tool's session
 * client and with python3-websockets (framing, ping, close handshake);
 * protocol errors, a head too large or too slow; and the requests that
 * still go to Deno.serve on the same port (the site, poll). The choice
 * of the first request, and the 101, as pure functions.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { RequestHead } from "../lib/local/http1.ts";
import { upgradeRequest } from "../lib/serve/direct.ts";
import { encodeFrame as encodeSessionFrame } from "../lib/session/frame.ts";
import {
  encodeFrame,
  FrameDecoder,
  OPCODE,
  type WsEvent,
} from "../lib/ws/frame.ts";
import { acceptFor, buildUpgradeResponse } from "../lib/ws/handshake.ts";
import { makeCertificates } from "./_util/certs.ts";
import { pseudoRandomChunks, sha256Of } from "./_util/data.ts";
import {
  bytes,
  connect,
  freePort,
  pause,
  readAll,
  startEchoServer,
  text,
  within,
  writeAll,
} from "./_util/net.ts";
import {
  ALICE_TOKEN,
  fingerprintOf,
  logMatches,
  missingWebsockets,
  pythonSessionClient,
  SERVE_TLS_ARGS,
  serveCertificates,
  startServe,
  TLS_FRONTS,
} from "./_util/serve.ts";
import { liveTunnel, startTool } from "./_util/tool.ts";

const ignore = missingWebsockets();

const KEY = "dGhlIHNhbXBsZSBub25jZQ==";

const HELLO = encodeSessionFrame({ type: "hello", streams: [] });
const HELLO_HEX = Array.from(
  HELLO,
  (byte) => byte.toString(16).padStart(2, "0"),
)
  .join("");

function head(
  headers: [string, string][],
  fields: Partial<RequestHead> = {},
): RequestHead {
  return {
    method: "GET",
    target: "/t",
    version: "HTTP/1.1",
    headers: [
      ["Host", "tunnel.example.org"],
      ["Upgrade", "websocket"],
      ["Connection", "Upgrade"],
      ["Sec-WebSocket-Key", KEY],
      ["Sec-WebSocket-Version", "13"],
      ...headers,
    ],
    ...fields,
  };
}

Deno.test("upgradeRequest: a v2 upgrade on the path, and nothing else", () => {
  const v2: [string, string] = ["Sec-WebSocket-Protocol", "httptunneling.v2"];
  const request = upgradeRequest(
    head([v2, ["Authorization", "Bearer x"]]),
    "/t",
  );
  assert.ok(request);
  assert.equal(new URL(request.url).pathname, "/t");
  assert.equal(request.headers.get("authorization"), "Bearer x");
  // Offered beside v1, and on the path with a query.
  assert.ok(
    upgradeRequest(
      head([["Sec-WebSocket-Protocol", "httptunneling.v1, httptunneling.v2"]], {
        target: "/t?x=1",
      }),
      "/t",
    ),
  );
  const others: [string, RequestHead][] = [
    ["v1 only", head([["Sec-WebSocket-Protocol", "httptunneling.v1"]])],
    ["another path", head([v2], { target: "/other" })],
    ["POST", head([v2], { method: "POST" })],
    ["HTTP/1.0", head([v2], { version: "HTTP/1.0" })],
    ["absolute form", head([v2], { target: "http://h/t" })],
    ["a poll request", head([v2, ["X-Httptunneling-Poll", "open"]])],
    ["a body", head([v2, ["Content-Length", "3"]])],
    ["no Host", { ...head([v2]), headers: head([v2]).headers.slice(1) }],
    [
      "no Upgrade",
      {
        ...head([v2]),
        headers: head([v2]).headers.filter(([n]) => n !== "Upgrade"),
      },
    ],
  ];
  for (const [what, each] of others) {
    assert.equal(upgradeRequest(each, "/t"), undefined, what);
  }
});

Deno.test("buildUpgradeResponse: RFC 6455's accept value and the subprotocol", () => {
  const answer = buildUpgradeResponse(KEY, "httptunneling.v2");
  assert.match(answer, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
  assert.match(
    answer,
    /\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/,
  );
  assert.equal(acceptFor(KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  assert.match(
    answer,
    /\r\nSec-WebSocket-Protocol: httptunneling\.v2\r\n\r\n$/,
  );
});

for (const { denoFlags, front } of TLS_FRONTS) {
  Deno.test({
    name: `serve over TLS (${
      denoFlags.length ? "Deno.listenTls" : "node:tls"
    }) answers v2 itself: a checksummed 16 MiB echo with half-close; the site page and poll answer on the same port`,
    ignore,
    async fn() {
      await using echo = startEchoServer();
      const dir = await Deno.makeTempDir({ prefix: "httptunneling-serve-" });
      const certs = await makeCertificates(dir);
      await Deno.mkdir(`${dir}/site`);
      await Deno.writeTextFile(
        `${dir}/site/index.html`,
        "<p>nothing here</p>\n",
      );
      await using serve = await startServe({
        dir,
        args: [
          ...SERVE_TLS_ARGS,
          "--allow",
          `127.0.0.1:${echo.port}`,
          "--site",
          "site",
          "--shutdown-timeout",
          "1s",
        ],
        denoFlags,
      });
      await logMatches(serve, front);
      const wsPort = freePort();
      const pollPort = freePort();
      const server =
        `wss://127.0.0.1:${serve.port}/ token=${ALICE_TOKEN} fingerprint=${await fingerprintOf(
          `${dir}/server.pem`,
        )}`;
      await using _tool = await startTool(
        `${wsPort} 127.0.0.1 ${echo.port} ${server}\n` +
          `${pollPort} 127.0.0.1 ${echo.port} ${server} transport=poll\n`,
      );
      const total = 16 * 1024 * 1024;
      const sent = [...pseudoRandomChunks(11, total)];
      {
        using conn = await connect(wsPort);
        const [, received] = await within(
          Promise.all([
            (async () => {
              for (const chunk of sent) await writeAll(conn, chunk);
              await conn.closeWrite();
            })(),
            readAll(conn),
          ]),
          60_000,
          "the echo",
        );
        assert.equal(received.length, total);
        assert.equal(sha256Of([received]), sha256Of(sent));
      }
      await logMatches(serve, /a v2 upgrade, answered by serve itself/);
      await logMatches(
        serve,
        /tunnel 1 closed: .*16\.0 MiB up, 16\.0 MiB down/,
      );
      // The site, over HTTP/1.1 on its own TLS connection (no ALPN).
      {
        using tls = await Deno.connectTls({
          hostname: "127.0.0.1",
          port: serve.port,
          caCerts: [certs.caPem],
        });
        await writeAll(
          tls,
          bytes(
            "GET /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
          ),
        );
        const answer = text(await within(readAll(tls), 10_000, "the page"));
        assert.match(answer, /^HTTP\/1\.1 200 /);
        assert.match(answer, /<p>nothing here<\/p>/);
      }
      // The poll transport's requests go to Deno.serve.
      using _polled = await liveTunnel(pollPort);
      await logMatches(serve, /session \S+ new: [^]*session \S+ new: /);
      // SIGTERM with a tunnel open on serve's own WebSocket: its stream is
      // closed after --shutdown-timeout, then the WebSocket with 1001 and
      // its close answered, and serve exits.
      using _open = await liveTunnel(wsPort);
      const started = performance.now();
      assert.equal((await serve.stop()).code, 0);
      const seconds = (performance.now() - started) / 1000;
      assert.ok(seconds < 6, `serve took ${seconds.toFixed(1)} s to exit`);
      const log = await serve.logText();
      assert.match(log, /session \S+ lost its WebSocket \(1001 /);
      assert.match(log, /stopped\n$/);
    },
  });
}

Deno.test({
  name:
    "python3-websockets as a v2 client of serve over wss: unmasked frames, the WELCOME, its ping answered, close 1000 answered 1000; a text message is closed 1002",
  ignore,
  async fn() {
    await using certs = await serveCertificates();
    await using serve = await startServe({
      files: certs.files,
      args: [...SERVE_TLS_ARGS, "--allow", "127.0.0.1:1", "--heartbeat", "30s"],
      denoFlags: ["--allow-ffi"],
    });
    const url = `wss://127.0.0.1:${serve.port}/`;
    const clean = await pythonSessionClient({
      url,
      token: ALICE_TOKEN,
      ca: certs.ca,
      hello: HELLO_HEX,
    });
    assert.equal(clean.status, 101);
    assert.equal(clean.protocol, "httptunneling.v2");
    // A WELCOME frame: version 1, type 2.
    assert.match(clean.welcome ?? "", /^0102/);
    assert.equal(clean.pong, true);
    assert.equal(clean.close_code, 1000);
    await logMatches(serve, /session \S+ ended: token alice/);
    const text = await pythonSessionClient({
      url,
      token: ALICE_TOKEN,
      ca: certs.ca,
      hello: HELLO_HEX,
      ping: false,
      text: "eof",
    });
    assert.equal(text.close_code, 1002);
    assert.equal(text.close_reason, "text message in a v2 session");
    const refused = await pythonSessionClient({
      url,
      token: "not-a-token-0123456789",
      ca: certs.ca,
      hello: HELLO_HEX,
    });
    assert.deepEqual([refused.status, refused.refusal], [401, "auth"]);
  },
});

/** A TLS connection to serve that sent a v2 upgrade and read the 101. */
async function upgraded(port: number, ca: string): Promise<{
  tls: Deno.TlsConn;
  events: () => Promise<WsEvent[]>;
}> {
  const tls = await Deno.connectTls({
    hostname: "127.0.0.1",
    port,
    caCerts: [await Deno.readTextFile(ca)],
  });
  await writeAll(
    tls,
    bytes(
      [
        "GET / HTTP/1.1",
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        `Sec-WebSocket-Key: ${KEY}`,
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Protocol: httptunneling.v2",
        `Authorization: Bearer ${ALICE_TOKEN}`,
        "",
        "",
      ].join("\r\n"),
    ),
  );
  let buffered = new Uint8Array(0);
  while (!text(buffered).includes("\r\n\r\n")) {
    const chunk = new Uint8Array(4096);
    const n = await within(tls.read(chunk), 10_000, "the 101");
    assert.ok(n !== null, "serve closed before its 101");
    buffered = new Uint8Array([...buffered, ...chunk.subarray(0, n)]);
  }
  const end = text(buffered).indexOf("\r\n\r\n") + 4;
  const answer = text(buffered.subarray(0, end));
  assert.match(answer, /^HTTP\/1\.1 101 /);
  assert.match(
    answer,
    new RegExp(`Sec-WebSocket-Accept: ${acceptFor(KEY).replace(/\+/g, "\\+")}`),
  );
  const decoder = new FrameDecoder({ masked: false });
  const first = decoder.push(buffered.subarray(end));
  return {
    tls,
    // The server's next frames, or [] at the end of the connection.
    async events() {
      if (first.length > 0) return first.splice(0);
      const chunk = new Uint8Array(4096);
      while (true) {
        const n = await within(
          tls.read(chunk).catch(() => null),
          10_000,
          "a frame",
        );
        if (n === null) return [];
        const events = decoder.push(chunk.subarray(0, n));
        if (events.length > 0) return events;
      }
    },
  };
}

Deno.test({
  name:
    "serve's own WebSocket: an unmasked client frame is closed 1002; a client that answers no ping is closed 1001; a head over 64 KiB gets 431; a head that does not arrive in time is cut",
  ignore,
  async fn() {
    await using certs = await serveCertificates();
    await using serve = await startServe({
      files: certs.files,
      args: [...SERVE_TLS_ARGS, "--allow", "127.0.0.1:1", "--heartbeat", "1s"],
      denoFlags: ["--allow-ffi"],
    });
    {
      const { tls, events } = await upgraded(serve.port, certs.ca);
      using _tls = tls;
      await writeAll(tls, encodeFrame(OPCODE.binary, HELLO));
      const [close] = await events();
      assert.deepEqual(close, {
        kind: "close",
        code: 1002,
        reason: "an unmasked client frame",
      });
      assert.deepEqual(await events(), []);
      await logMatches(
        serve,
        /broke the protocol: an unmasked client frame; closing it \(1002\)/,
      );
    }
    {
      const { tls, events } = await upgraded(serve.port, certs.ca);
      using _tls = tls;
      const mask = Uint8Array.of(1, 2, 3, 4);
      await writeAll(tls, encodeFrame(OPCODE.binary, HELLO, { mask }));
      const seen: WsEvent[] = [];
      const started = performance.now();
      while (true) {
        const next = await events();
        if (next.length === 0) break;
        seen.push(...next);
      }
      const seconds = (performance.now() - started) / 1000;
      const kinds = seen.map((event) => event.kind);
      assert.deepEqual(kinds, ["binary", "ping", "close"]);
      assert.deepEqual(seen[2], {
        kind: "close",
        code: 1001,
        reason: "No response from ping frame.",
      });
      assert.ok(seconds >= 0.9 && seconds < 6, `closed after ${seconds} s`);
    }
    {
      using tls = await Deno.connectTls({
        hostname: "127.0.0.1",
        port: serve.port,
        caCerts: [await Deno.readTextFile(certs.ca)],
      });
      await writeAll(
        tls,
        bytes(
          `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${
            "a".repeat(70_000)
          }\r\n\r\n`,
        ),
      ).catch(() => {});
      const answer = text(
        await within(
          readAll(tls).catch(() => new Uint8Array()),
          10_000,
          "the 431",
        ),
      );
      assert.match(answer, /^HTTP\/1\.1 431 /);
    }
    {
      using tls = await Deno.connectTls({
        hostname: "127.0.0.1",
        port: serve.port,
        caCerts: [await Deno.readTextFile(certs.ca)],
      });
      await writeAll(tls, bytes("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"));
      const started = performance.now();
      // One header byte every half second: bytes move, the head never ends.
      const trickle = (async () => {
        try {
          while (true) {
            await pause(500);
            await tls.write(bytes("X"));
          }
        } catch { /* closed */ }
      })();
      const end = await within(
        tls.read(new Uint8Array(16)).catch(() => null),
        20_000,
        "the cut",
      );
      assert.equal(end, null);
      const seconds = (performance.now() - started) / 1000;
      assert.ok(seconds >= 6, `cut after ${seconds.toFixed(1)} s`);
      tls.close();
      await trickle;
      await logMatches(
        serve,
        /TLS connection from .* closed: no whole request head within 7 s/,
      );
    }
  },
});
