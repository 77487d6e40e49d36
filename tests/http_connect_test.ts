import assert from "node:assert/strict";
import { buildConnectRequest, httpConnect } from "../lib/proxy/http_connect.ts";
import {
  MAX_RESPONSE_HEAD_BYTES,
  type ResponseHead,
  ResponseHeadReader,
} from "../lib/proxy/http_head.ts";
import {
  ProxyAuthError,
  ProxyProtocolError,
  ProxyRefusedError,
  TimeoutError,
} from "../lib/errors.ts";
import {
  bytes,
  connect,
  readExactly,
  startServer,
  text,
  within,
  writeAll,
} from "./_util/net.ts";

Deno.test("CONNECT request: authority, Host and User-Agent, IPv6 in brackets", () => {
  assert.match(
    buildConnectRequest({ host: "ssh.example.com", port: 22 }),
    /^CONNECT ssh\.example\.com:22 HTTP\/1\.1\r\nHost: ssh\.example\.com:22\r\nUser-Agent: httptunneling\/\d+\.\d+\.\d+\r\n\r\n$/,
  );
  assert.match(
    buildConnectRequest({ host: "2001:db8::1", port: 443 }),
    /^CONNECT \[2001:db8::1\]:443 HTTP\/1\.1\r\nHost: \[2001:db8::1\]:443\r\n/,
  );
  assert.match(
    buildConnectRequest({ host: "h", port: 1 }, [[
      "Proxy-Authorization",
      "Basic eA==",
    ]]),
    /\r\nProxy-Authorization: Basic eA==\r\n\r\n$/,
  );
});

const RESPONSE =
  "HTTP/1.1 200 Connection established\r\nVia: 1.1 squid\r\n\r\n";
const BANNER = "SSH-2.0-OpenSSH_9.2\r\n";

function readInChunks(data: Uint8Array, cuts: number[]): {
  head?: ResponseHead;
  rest: Uint8Array;
} {
  const reader = new ResponseHeadReader();
  const bounds = [0, ...cuts, data.length];
  for (let i = 0; i + 1 < bounds.length; i++) {
    const head = reader.push(data.subarray(bounds[i], bounds[i + 1]));
    if (head) {
      const later = data.subarray(bounds[i + 1]);
      const rest = new Uint8Array(reader.rest.length + later.length);
      rest.set(reader.rest);
      rest.set(later, reader.rest.length);
      return { head, rest };
    }
  }
  return { rest: new Uint8Array() };
}

Deno.test("response head split at every byte boundary, banner bytes kept", () => {
  const data = bytes(RESPONSE + BANNER);
  for (let cut = 0; cut <= data.length; cut++) {
    const { head, rest } = readInChunks(data, [cut]);
    assert.equal(head?.status, 200, `cut at ${cut}`);
    assert.equal(head?.statusLine, "HTTP/1.1 200 Connection established");
    assert.deepEqual(head?.headers, [["Via", "1.1 squid"]]);
    assert.equal(text(rest), BANNER, `cut at ${cut}`);
  }
  const everyByte = Array.from({ length: data.length - 1 }, (_, i) => i + 1);
  assert.equal(text(readInChunks(data, everyByte).rest), BANNER);
});

Deno.test("bare LF line ends, HTTP/1.0, no reason phrase, other 2xx", () => {
  for (
    const [raw, status, version] of [
      ["HTTP/1.0 200 OK\n\nX", 200, "HTTP/1.0"],
      ["HTTP/1.1 204\r\n\r\nX", 204, "HTTP/1.1"],
      ["HTTP/1.1 299 Whatever\nA: b\n\nX", 299, "HTTP/1.1"],
      ["HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\nX", 200, "HTTP/1.1"],
    ] as const
  ) {
    const { head, rest } = readInChunks(bytes(raw), []);
    assert.equal(head?.status, status, raw);
    assert.equal(head?.version, version, raw);
    assert.equal(text(rest), "X", raw);
  }
});

Deno.test("folded header lines join the previous field", () => {
  const { head } = readInChunks(
    bytes("HTTP/1.1 200 OK\r\nA: one\r\n two\r\n\r\n"),
    [],
  );
  assert.deepEqual(head?.headers, [["A", "one two"]]);
});

Deno.test("a response head over 64 KiB is refused", () => {
  const reader = new ResponseHeadReader();
  reader.push(bytes("HTTP/1.1 200 OK\r\n"));
  const filler = bytes(`X-Filler: ${"a".repeat(1000)}\r\n`);
  assert.throws(
    () => {
      for (let i = 0; i < 100; i++) reader.push(filler);
    },
    (error) =>
      error instanceof ProxyProtocolError &&
      /exceeds 64 KiB/.test(error.message),
  );
  const whole = bytes(
    `HTTP/1.1 200 OK\r\nX: ${"a".repeat(MAX_RESPONSE_HEAD_BYTES)}\r\n\r\n`,
  );
  assert.throws(() => new ResponseHeadReader().push(whole), ProxyProtocolError);
});

Deno.test("something other than HTTP is refused early, with what was received", () => {
  assert.throws(
    () => new ResponseHeadReader().push(bytes("<html>\r\n<body>blocked")),
    {
      name: "ProxyProtocolError",
      message: 'proxy did not answer with HTTP: got "<html>"',
    },
  );
  assert.throws(
    () => new ResponseHeadReader().push(bytes("HTTP/1.1 abc\r\n\r\n")),
    {
      name: "ProxyProtocolError",
      message: 'proxy sent a malformed status line: "HTTP/1.1 abc"',
    },
  );
});

const OPTIONS = { proxyLabel: "proxy:3128", timeoutMs: 2_000 };

Deno.test("httpConnect: sends one request, returns bytes after the head first", async () => {
  let request = "";
  await using proxy = startServer(async (conn) => {
    const buffer = new Uint8Array(4096);
    while (!request.endsWith("\r\n\r\n")) {
      const n = await conn.read(buffer);
      if (n === null) return;
      request += text(buffer.subarray(0, n));
    }
    await writeAll(conn, bytes(RESPONSE + BANNER));
    const echo = await readExactly(conn, 4);
    await writeAll(conn, echo);
  });
  using conn = await connect(proxy.port);
  const { tunnel, head } = await within(
    httpConnect(conn, { host: "example.com", port: 22 }, OPTIONS),
    5_000,
    "handshake",
  );
  assert.equal(head.status, 200);
  assert.match(request, /^CONNECT example\.com:22 HTTP\/1\.1\r\n/);
  const banner = new Uint8Array(BANNER.length);
  assert.equal(await tunnel.read(banner), BANNER.length);
  assert.equal(text(banner), BANNER);
  await tunnel.write(bytes("ping"));
  assert.equal(text(await readExactly(conn, 4)), "ping");
});

Deno.test("httpConnect: a non-2xx answer carries the proxy's status line", async () => {
  await using proxy = startServer(async (conn) => {
    await conn.read(new Uint8Array(4096));
    await writeAll(
      conn,
      bytes("HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nnope"),
    );
  });
  using conn = await connect(proxy.port);
  await assert.rejects(
    httpConnect(conn, { host: "example.com", port: 25 }, OPTIONS),
    (error) =>
      error instanceof ProxyRefusedError && error.status === 403 &&
      error.message ===
        'Proxy proxy:3128 refused CONNECT to example.com:25: "HTTP/1.1 403 Forbidden"',
  );
});

Deno.test("httpConnect: a proxy that closes before answering", async () => {
  await using proxy = startServer(async (conn) => {
    await conn.read(new Uint8Array(4096));
  });
  using conn = await connect(proxy.port);
  await assert.rejects(
    httpConnect(conn, { host: "example.com", port: 22 }, OPTIONS),
    {
      name: "ProxyProtocolError",
      message:
        "proxy proxy:3128 closed the connection before answering CONNECT example.com:22",
    },
  );
});

Deno.test("httpConnect: a proxy that never answers times out", async () => {
  const { promise: released, resolve: release } = Promise.withResolvers<void>();
  await using proxy = startServer(async (conn) => {
    await conn.read(new Uint8Array(4096));
    await released;
  });
  const conn = await connect(proxy.port);
  const started = performance.now();
  await assert.rejects(
    httpConnect(conn, { host: "example.com", port: 22 }, {
      ...OPTIONS,
      timeoutMs: 200,
    }),
    (error) =>
      error instanceof TimeoutError &&
      error.message ===
        "CONNECT example.com:22 through proxy proxy:3128 timed out after 200 ms",
  );
  assert.ok(performance.now() - started < 2_000);
  release();
});

/**
 * A proxy that answers each request head with `respond(request, connection)`;
 * it closes the connection after a response that says `Connection: close`.
 */
function startScriptedProxy(
  respond: (request: string, connection: number) => string,
) {
  const requests: string[] = [];
  const server = startServer(async (conn, connection) => {
    let pending = "";
    const buffer = new Uint8Array(4096);
    while (true) {
      const end = pending.indexOf("\r\n\r\n");
      if (end < 0) {
        const n = await conn.read(buffer);
        if (n === null) return;
        pending += text(buffer.subarray(0, n));
        continue;
      }
      const request = pending.slice(0, end + 4);
      pending = pending.slice(end + 4);
      requests.push(request);
      const response = respond(request, connection);
      await writeAll(conn, bytes(response));
      if (/connection: close/i.test(response)) return;
      if (response.startsWith("HTTP/1.1 200")) {
        await conn.read(buffer);
        return;
      }
    }
  });
  return { server, requests };
}

async function connectThrough(
  port: number,
  credentials?: { username: string; password: string },
) {
  const open = () => connect(port);
  const { tunnel } = await within(
    httpConnect(await open(), { host: "example.com", port: 22 }, {
      ...OPTIONS,
      credentials,
      reconnect: open,
    }),
    5_000,
    "handshake",
  );
  tunnel.close();
}

const JANE = { username: "jane", password: "secret" };

Deno.test("407 with a chunked body: answered on the same connection", async () => {
  const proxy = startScriptedProxy((request) =>
    /Proxy-Authorization: Basic amFuZTpzZWNyZXQ=/.test(request)
      ? "HTTP/1.1 200 OK\r\n\r\n"
      : 'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="x"\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'
  );
  await using _server = proxy.server;
  await connectThrough(proxy.server.port, JANE);
  assert.equal(proxy.server.accepted, 1);
  assert.equal(proxy.requests.length, 2);
  assert.match(proxy.requests[1], /Proxy-Connection: Keep-Alive\r\n/);
});

Deno.test("407 with Connection: close: the answer goes on a new connection", async () => {
  const proxy = startScriptedProxy((request) =>
    /Proxy-Authorization: Basic/.test(request)
      ? "HTTP/1.1 200 OK\r\n\r\n"
      : "HTTP/1.0 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\nConnection: close\r\n\r\n"
  );
  await using _server = proxy.server;
  await connectThrough(proxy.server.port, JANE);
  assert.equal(proxy.server.accepted, 2);
});

Deno.test("Digest stale=true is answered once more with the new nonce", async () => {
  let round = 0;
  const proxy = startScriptedProxy(() => {
    round++;
    if (round === 1) {
      return 'HTTP/1.1 407 Auth\r\nProxy-Authenticate: Digest realm="r", nonce="one", qop="auth"\r\nContent-Length: 0\r\n\r\n';
    }
    if (round === 2) {
      return 'HTTP/1.1 407 Auth\r\nProxy-Authenticate: Digest realm="r", nonce="two", qop="auth", stale=true\r\nContent-Length: 3\r\n\r\nabc';
    }
    return "HTTP/1.1 200 OK\r\n\r\n";
  });
  await using _server = proxy.server;
  await connectThrough(proxy.server.port, JANE);
  assert.match(
    proxy.requests[1],
    /Digest username="jane", realm="r", nonce="one"/,
  );
  assert.match(proxy.requests[2], /nonce="two"/);
});

Deno.test("a proxy that closes during NTLM breaks off the handshake", async () => {
  const proxy = startScriptedProxy((request) =>
    /Proxy-Authorization: NTLM/.test(request)
      ? "HTTP/1.1 407 Auth\r\nProxy-Authenticate: NTLM TlRMTVNTUAACAAAAAAAAACgAAAABggAAU3J2Tm9uY2UAAAAAAAAAAA==\r\nConnection: close\r\n\r\n"
      : "HTTP/1.1 407 Auth\r\nProxy-Authenticate: NTLM\r\nContent-Length: 0\r\n\r\n"
  );
  await using _server = proxy.server;
  await assert.rejects(
    connectThrough(proxy.server.port, JANE),
    (error) =>
      error instanceof ProxyAuthError && error.failure === "handshake-failed" &&
      /broke off the NTLM handshake by closing the connection/.test(
        error.message,
      ),
  );
});

Deno.test("407 without credentials, or with only Negotiate and no Kerberos ticket, says what to do", async () => {
  const offers = startScriptedProxy(() =>
    'HTTP/1.1 407 Auth\r\nProxy-Authenticate: NTLM\r\nProxy-Authenticate: Basic realm="x"\r\nContent-Length: 0\r\n\r\n'
  );
  await using _offers = offers.server;
  await assert.rejects(
    connectThrough(offers.server.port),
    (error) =>
      error instanceof ProxyAuthError &&
      error.failure === "credentials-needed" &&
      error.message ===
        'Proxy proxy:3128 requires authentication for CONNECT example.com:22 ("HTTP/1.1 407 Auth"): the proxy offers NTLM, Basic; add user:password to the proxy URL',
  );
  const kerberos = startScriptedProxy(() =>
    "HTTP/1.1 407 Auth\r\nProxy-Authenticate: Negotiate\r\nContent-Length: 0\r\n\r\n"
  );
  await using _kerberos = kerberos.server;
  await assert.rejects(
    connectThrough(kerberos.server.port, JANE),
    // This test process has no ticket for HTTP@proxy (nor, without
    // --allow-ffi, the library): either way a Kerberos reason ends it.
    (error) =>
      error instanceof ProxyAuthError &&
      error.failure === "negotiate-failed" &&
      /requires Kerberos authentication \(offers Negotiate\) .*; Negotiate: .*(run kinit|--allow-ffi|GSSAPI library)/
        .test(error.message),
  );
});

Deno.test("a 407 after Basic credentials is a rejection, never a loop", async () => {
  const proxy = startScriptedProxy(() =>
    "HTTP/1.1 407 Auth\r\nProxy-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n"
  );
  await using _server = proxy.server;
  await assert.rejects(
    connectThrough(proxy.server.port, JANE),
    (error) =>
      error instanceof ProxyAuthError &&
      error.failure === "credentials-rejected" &&
      !error.message.includes("secret"),
  );
  assert.equal(proxy.requests.length, 2);
});

Deno.test("httpConnect: interim 1xx answers before the 200 are skipped", async () => {
  await using proxy = startServer(async (conn) => {
    await conn.read(new Uint8Array(4096));
    await writeAll(
      conn,
      bytes(
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\nHTTP/1.1 200 OK\r\n\r\nbanner",
      ),
    );
    await conn.read(new Uint8Array(16));
  });
  using conn = await connect(proxy.port);
  const { tunnel, head } = await within(
    httpConnect(conn, { host: "example.com", port: 22 }, OPTIONS),
    5_000,
    "CONNECT",
  );
  assert.equal(head.status, 200);
  const banner = new Uint8Array(6);
  assert.equal(await tunnel.read(banner), 6);
  assert.equal(text(banner), "banner");
});

Deno.test("httpConnect: a 407 body with a huge chunk size is not read through", async () => {
  await using proxy = startServer(async (conn) => {
    await conn.read(new Uint8Array(4096));
    await writeAll(
      conn,
      bytes(
        'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="x"\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffff\r\n',
      ),
    );
    // Endless data, as a hostile proxy would send.
    const junk = new Uint8Array(64 * 1024).fill(0x61);
    while (true) await writeAll(conn, junk);
  });
  using conn = await connect(proxy.port);
  // Not a TimeoutError: the body is given up at once, not read until the
  // handshake's time is up.
  await assert.rejects(
    within(
      httpConnect(conn, { host: "example.com", port: 22 }, {
        ...OPTIONS,
        credentials: { username: "jane", password: "pw" },
      }),
      5_000,
      "CONNECT",
    ),
    (error) => error instanceof ProxyAuthError,
  );
});

Deno.test("httpConnect: a Digest challenge without a nonce, or with CR/LF in it, is the proxy's protocol fault", async () => {
  for (
    const challenge of [
      'Digest realm="r", qop="auth"',
      'Digest realm="r\rX-Injected: yes", nonce="n", qop="auth"',
    ]
  ) {
    await using proxy = startServer(async (conn) => {
      await conn.read(new Uint8Array(4096));
      await writeAll(
        conn,
        bytes(
          `HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: ${challenge}\r\nContent-Length: 0\r\n\r\n`,
        ),
      );
      await conn.read(new Uint8Array(4096));
    });
    using conn = await connect(proxy.port);
    await assert.rejects(
      httpConnect(conn, { host: "example.com", port: 22 }, {
        ...OPTIONS,
        credentials: { username: "jane", password: "pw" },
      }),
      (error) =>
        error instanceof ProxyProtocolError && error.proxyFault &&
        /Digest challenge/.test(error.message),
    );
  }
});
