import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { HopFailure, openChain } from "../lib/route/chain.ts";
import type { DialOptions } from "../lib/net/dialer.ts";
import { type Duplex, writeAll } from "../lib/net/duplex.ts";
import { parseProxyUrlText } from "../lib/config/proxy_url.ts";
import { ProxyTlsError, routeFailure, WsRefusedError } from "../lib/errors.ts";
import { SEND_WINDOW_BYTES, WsTunnelError } from "../lib/ws/stream.ts";
import { acceptFor } from "../lib/ws/handshake.ts";
import { diagnose } from "../lib/probe/diagnose.ts";
import { pseudoRandomChunks, sha256Of } from "./_util/data.ts";
import {
  bytes,
  connect,
  freePort,
  pause,
  readAll,
  readExactly,
  startServer,
  text,
  within,
} from "./_util/net.ts";
import { rawRequest } from "./_util/local.ts";
import { startTool } from "./_util/tool.ts";
import { missing, startSquid } from "./_util/proxies.ts";
import { makeCertificates } from "./_util/certs.ts";
import { fingerprintOf, missingWebsockets } from "./_util/serve.ts";
import { startWsPeer } from "./_util/ws_peer.ts";

const ignore = missingWebsockets();

const OPTIONS: DialOptions = {
  connectTimeoutMs: 5_000,
  handshakeTimeoutMs: 5_000,
  keepAlive: true,
  token: "good-token",
};

function open(
  urls: string[],
  target: string,
  options: Partial<DialOptions> = {},
): Promise<Duplex> {
  const [host, port] = target.split(":");
  return openChain(
    urls.map(parseProxyUrlText),
    { host, port: Number(port) },
    { ...OPTIONS, ...options },
  );
}

// What openChain threw, unwrapped from the hop it blames.
async function failure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof HopFailure, String(error));
    return error.failure as Error;
  }
  throw new Error("expected a failure");
}

/** Sends `total` pseudo-random bytes, then eof; returns their sha256. */
async function upload(stream: Duplex, total: number): Promise<string> {
  const sent = [...pseudoRandomChunks(7, total, 50_000)];
  for (const chunk of sent) await writeAll(stream, chunk);
  await stream.closeWrite();
  return sha256Of(sent);
}

const from = (...values: number[]) => Uint8Array.from(values);

const sha = (data: Uint8Array) =>
  createHash("sha256").update(data).digest("hex");

Deno.test({
  name:
    "ws:// against python3-websockets: 3 MiB echoed with acks, half-close answered with eof and a 1000 close",
  ignore,
  async fn() {
    await using peer = await startWsPeer();
    const stream = await open([`ws://127.0.0.1:${peer.port}/t`], "echo:7");
    try {
      const [sentHash, received] = await within(
        Promise.all([upload(stream, 3 * 1024 * 1024), readAll(stream)]),
        60_000,
        "echo",
      );
      assert.equal(received.length, 3 * 1024 * 1024);
      assert.equal(sha(received), sentHash);
    } finally {
      stream.close();
    }
    await peer.waitFor(/^eof 3145728$/, "the server saw eof");
    await peer.waitFor(/^close 1000 /, "the server closed with 1000");
  },
});

Deno.test({
  name: "ws://: a fragmented message and eof from the server",
  ignore,
  async fn() {
    await using peer = await startWsPeer();
    const stream = await open([`ws://127.0.0.1:${peer.port}/t`], "fragments:1");
    try {
      const received = await within(readAll(stream), 10_000, "fragments");
      assert.equal(text(received), "frag-one frag-two frag-three");
      await stream.closeWrite();
      await peer.waitFor(/^eof 0$/, "the server saw eof");
    } finally {
      stream.close();
    }
  },
});

Deno.test({
  name:
    "ws://: the server's pings are answered and ours are, so an idle tunnel lives on",
  ignore,
  async fn() {
    await using peer = await startWsPeer();
    // The server pings every 200 ms and gives up after 2 s without a pong;
    // ours go every 300 ms and give up after 600 ms of silence.
    const stream = await open([`ws://127.0.0.1:${peer.port}/t`], "echo:7", {
      heartbeatMs: 300,
    });
    try {
      await pause(3_000);
      await writeAll(stream, bytes("still there?"));
      const buffer = new Uint8Array(64);
      const n = await within(stream.read(buffer), 10_000, "echo after idle");
      assert.equal(text(buffer.subarray(0, n!)), "still there?");
      assert.ok(!peer.lines.some((line) => line.startsWith("close")));
    } finally {
      stream.close();
    }
    await peer.waitFor(/^close 1000 client closed 12$/, "our close frame");
  },
});

Deno.test({
  name: "ws://: a 1011 close from the server rejects reads as a reset",
  ignore,
  async fn() {
    await using peer = await startWsPeer();
    const stream = await open([`ws://127.0.0.1:${peer.port}/t`], "reset:7");
    try {
      await writeAll(stream, bytes("x"));
      const error = await within(
        stream.read(new Uint8Array(16)).then(
          () => undefined,
          (error) => error,
        ),
        10_000,
        "the reset",
      );
      assert.ok(error instanceof WsTunnelError, String(error));
      assert.equal(error.problem, "reset");
      assert.match(error.message, /close 1011: target reset/);
    } finally {
      stream.close();
    }
  },
});

Deno.test({
  name: "ws://: without acks the client stops at the 1 MiB window",
  ignore,
  async fn() {
    await using peer = await startWsPeer();
    const stream = await open([`ws://127.0.0.1:${peer.port}/t`], "ackless:7");
    try {
      let written = 0;
      const chunk = new Uint8Array(64 * 1024);
      const writing = (async () => {
        while (true) written += await stream.write(chunk);
      })().catch(() => {});
      await within(
        (async () => {
          while (written < SEND_WINDOW_BYTES) await pause(20);
        })(),
        10_000,
        "the window filling",
      );
      await pause(500);
      assert.equal(written, SEND_WINDOW_BYTES);
      stream.close();
      await writing;
    } finally {
      stream.close();
    }
  },
});

Deno.test({
  name:
    "ws:// refusals become WsRefusedError with the server's reason and the blame the protocol gives",
  ignore,
  async fn() {
    await using peer = await startWsPeer();
    const url = `ws://127.0.0.1:${peer.port}/t`;
    const cases = [
      { target: "echo:7", token: "wrong", refusal: "auth", fault: true },
      { target: "blocked.example:22", refusal: "not-allowed", fault: false },
      { target: "unreachable.example:22", refusal: "unreachable", fault: true },
      { target: "slow.example:22", refusal: "timeout", fault: true },
      { target: "busy.example:22", refusal: "busy", fault: true },
    ] as const;
    for (const each of cases) {
      const error = await failure(
        open([url], each.target, "token" in each ? { token: each.token } : {}),
      );
      assert.ok(error instanceof WsRefusedError, String(error));
      assert.equal(error.refusal, each.refusal);
      assert.equal(error.proxyFault, each.fault, each.refusal);
      assert.equal(
        error.unreachable,
        each.refusal === "unreachable" || each.refusal === "timeout",
      );
      assert.ok(!error.message.includes("wrong"), "never the token");
    }
    const auth = await failure(open([url], "echo:7", { token: "wrong" }));
    assert.match(auth.message, /server says: unknown token\).*token=/);
    const blocked = await failure(open([url], "blocked.example:22"));
    assert.match(
      blocked.message,
      /does not allow blocked\.example:22 .*matches no allow rule/,
    );
    assert.equal(routeFailure(blocked)?.reason, "refused");
    assert.match(
      diagnose(blocked, { target: "blocked.example:22", step: "ask" }),
      /allow rules/,
    );
    await peer.waitFor(/^refused not-allowed blocked\.example:22$/, "logged");
    const path = await failure(
      open([`ws://127.0.0.1:${peer.port}/wrong`], "echo:7"),
    );
    assert.ok(path instanceof WsRefusedError);
    assert.equal(path.refusal, "not-a-tunnel");
    assert.match(path.message, /status 404.*check the path/);
  },
});

Deno.test({
  name:
    "ws://: no pong for twice the heartbeat ends the tunnel with a clear reason",
  async fn() {
    // A server that answers the upgrade and then reads without a word.
    await using server = startServer(async (conn) => {
      const buffer = new Uint8Array(4096);
      const n = await conn.read(buffer);
      const key = /Sec-WebSocket-Key: (\S+)/.exec(
        text(buffer.subarray(0, n!)),
      )!;
      await conn.write(bytes(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
          `Sec-WebSocket-Accept: ${acceptFor(key[1])}\r\n` +
          "Sec-WebSocket-Protocol: httptunneling.v1\r\n\r\n",
      ));
      while ((await conn.read(buffer)) !== null) { /* silent */ }
    });
    const stream = await open(
      [`ws://127.0.0.1:${server.port}/t`],
      "echo:7",
      { heartbeatMs: 200 },
    );
    try {
      const error = await within(
        stream.read(new Uint8Array(16)).then(() => undefined, (e) => e),
        10_000,
        "the heartbeat failing",
      );
      assert.ok(error instanceof WsTunnelError, String(error));
      assert.equal(error.problem, "heartbeat");
      assert.equal(
        error.message,
        `no pong from 127.0.0.1:${server.port}/t within 400 ms`,
      );
    } finally {
      stream.close();
    }
  },
});

Deno.test({
  name:
    "wss:// through real squid: CONNECT, TLS checked by ca-file or pinned by fingerprint, then the upgrade",
  ignore: ignore || missing("squid"),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "httptunneling-wss-" });
    try {
      const { caPem } = await makeCertificates(dir);
      await using peer = await startWsPeer({
        cert: `${dir}/server.pem`,
        key: `${dir}/server.key`,
      });
      await using squid = await startSquid();
      const route = [
        `http://127.0.0.1:${squid.port}`,
        `wss://127.0.0.1:${peer.port}/t`,
      ];
      const roundTrip = async (options: Partial<DialOptions>) => {
        const stream = await open(route, "echo:7", options);
        try {
          const [hash, received] = await within(
            Promise.all([upload(stream, 300_000), readAll(stream)]),
            30_000,
            "echo through squid",
          );
          assert.equal(sha(received), hash);
        } finally {
          stream.close();
        }
      };
      await roundTrip({ caCerts: [caPem] });
      const pin = await fingerprintOf(`${dir}/server.pem`);
      const { parseFingerprint } = await import("../lib/config/options.ts");
      await roundTrip({ fingerprint: parseFingerprint(pin) });
      // Without the CA: refused; with the wrong pin: refused, naming the seen one.
      const untrusted = await failure(open(route, "echo:7"));
      assert.ok(untrusted instanceof ProxyTlsError, String(untrusted));
      const wrong = await failure(
        open(route, "echo:7", {
          fingerprint: parseFingerprint(`sha256:${"00".repeat(32)}`),
        }),
      );
      assert.ok(wrong instanceof ProxyTlsError, String(wrong));
      assert.match(wrong.message, new RegExp(`\\(${pin}\\) is not the one`));
      await peer.waitFor(/^eof 300000$/, "the server saw eof");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "local proxy entries take a ws:// hop: CONNECT and SOCKS5 through it, its refusal as 403 and SOCKS reply 2",
  ignore,
  async fn() {
    await using peer = await startWsPeer();
    const [http, socks] = [freePort(), freePort()];
    const hop = `ws://127.0.0.1:${peer.port}/t token=good-token`;
    await using _tool = await startTool(
      `${http} proxy ${hop}\n${socks} socks ${hop}\n`,
    );
    {
      using conn = await connect(http);
      await writeAll(
        conn,
        bytes(
          "CONNECT echo:7 HTTP/1.1\r\nHost: echo:7\r\n\r\nthrough the proxy",
        ),
      );
      let answer = "";
      const buffer = new Uint8Array(1024);
      await within(
        (async () => {
          while (!answer.endsWith("through the proxy")) {
            const n = await conn.read(buffer);
            if (n === null) break;
            answer += text(buffer.subarray(0, n));
          }
        })(),
        10_000,
        "the CONNECT answer and the echo",
      );
      assert.match(answer, /^HTTP\/1\.1 200 [^\r]*\r\n\r\nthrough the proxy$/);
    }
    const blocked = await rawRequest(
      http,
      "CONNECT blocked.example:22 HTTP/1.1\r\nHost: blocked.example:22\r\n\r\n",
      10_000,
    );
    assert.match(blocked.statusLine, /^HTTP\/1\.1 403 /);
    assert.match(blocked.text, /matches no allow rule/);
    // SOCKS5: no auth; CONNECT to a domain name.
    const socksConnect = async (host: string) => {
      const conn = await connect(socks);
      await writeAll(conn, from(5, 1, 0));
      assert.deepEqual(await readExactly(conn, 2), from(5, 0));
      await writeAll(conn, from(5, 1, 0, 3, host.length, ...bytes(host), 0, 7));
      const reply = await within(readExactly(conn, 2), 10_000, "SOCKS reply");
      return { conn, reply: reply[1] };
    };
    const ok = await socksConnect("echo");
    try {
      assert.equal(ok.reply, 0);
      await readExactly(ok.conn, 8); // the rest of the reply: IPv4 and port
      await writeAll(ok.conn, bytes("socks"));
      assert.equal(text(await readExactly(ok.conn, 5)), "socks");
    } finally {
      ok.conn.close();
    }
    const refused = await socksConnect("blocked.example");
    refused.conn.close();
    assert.equal(refused.reply, 2);
  },
});

Deno.test({
  name:
    "wss://: a self-signed server certificate, made as the README says, is trusted when named with ca-file=",
  ignore,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "httptunneling-selfsigned-" });
    try {
      const { code, stderr } = await new Deno.Command("openssl", {
        args: [
          "req",
          "-x509",
          "-newkey",
          "ec",
          "-pkeyopt",
          "ec_paramgen_curve:prime256v1",
          "-nodes",
          "-keyout",
          "key.pem",
          "-out",
          "cert.pem",
          "-days",
          "2",
          "-subj",
          "/CN=localhost",
          "-addext",
          "subjectAltName=DNS:localhost",
          "-addext",
          "basicConstraints=critical,CA:FALSE",
        ],
        cwd: dir,
        stdout: "null",
        stderr: "piped",
      }).output();
      assert.equal(code, 0, text(stderr));
      await using peer = await startWsPeer({
        cert: `${dir}/cert.pem`,
        key: `${dir}/key.pem`,
      });
      const stream = await open([`wss://localhost:${peer.port}/t`], "echo:7", {
        caCerts: [await Deno.readTextFile(`${dir}/cert.pem`)],
      });
      try {
        const [hash, received] = await within(
          Promise.all([upload(stream, 10_000), readAll(stream)]),
          30_000,
          "echo",
        );
        assert.equal(sha(received), hash);
      } finally {
        stream.close();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
