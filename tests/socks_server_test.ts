import assert from "node:assert/strict";
import {
  DialError,
  ProxyAuthError,
  ProxyProtocolError,
  ProxyRefusedError,
  SocksError,
  TimeoutError,
} from "../lib/errors.ts";
import {
  acceptSocks,
  SocksClientError,
  socksFailure,
  socksRefusal,
  type SocksRequest,
  type SocksServerOptions,
  socksSuccess,
} from "../lib/local/socks_server.ts";
import { BufferedDuplex } from "../lib/net/buffered.ts";
import { writeAll } from "../lib/net/duplex.ts";
import { dialTcp } from "../lib/net/tcp.ts";
import { socksUserPass } from "../lib/proxy/socks5.ts";
import { relay } from "../lib/relay.ts";
import { curl, netcatThroughSocks } from "./_util/clients.ts";
import {
  bytes,
  connect,
  freePort,
  readExactly,
  startBannerServer,
  startEchoServer,
  startServer,
  type TestServer,
  text,
  within,
} from "./_util/net.ts";
import { HELLO_TEXT, startHttpOrigin } from "./_util/origins.ts";
import { IN_CI, missing } from "./_util/proxies.ts";

const V5 = { version: 5, target: { host: "example.com", port: 22 } } as const;
const V4 = { version: 4, target: { host: "192.0.2.1", port: 22 } } as const;
const CREDENTIALS = { username: "jane", password: "s3cret-Pa55" };
// A SOCKS5 reply with the bound address 0.0.0.0:0.
const reply = (code: number) => [5, code, 0, 1, 0, 0, 0, 0, 0, 0];

// netcat-traditional has no -X: only the OpenBSD netcat speaks SOCKS.
function missingOpenBsdNetcat(): boolean {
  if (missing("nc")) return true;
  if (IN_CI) return false;
  const help = new Deno.Command("nc", { args: ["-h"], stderr: "piped" })
    .outputSync();
  if (text(help.stderr).includes("OpenBSD")) return false;
  console.log(
    "skipping tests that need netcat-openbsd: nc is another netcat",
  );
  return true;
}

// --- The answers, byte by byte (RFC 1928 §6; SOCKS4 and SOCKS4a) ---

Deno.test("SOCKS5 success: VER REP RSV ATYP BND.ADDR BND.PORT, 0.0.0.0:0 by default", () => {
  assert.deepEqual([...socksSuccess(V5)], reply(0));
  assert.deepEqual(
    [...socksSuccess(V5, { host: "192.0.2.7", port: 1080 })],
    [5, 0, 0, 1, 192, 0, 2, 7, 0x04, 0x38],
  );
  assert.deepEqual(
    [...socksSuccess(V5, { host: "2001:db8::7", port: 443 })],
    [5, 0, 0, 4, 0x20, 1, 0x0d, 0xb8, ...Array(11).fill(0), 7, 1, 187],
  );
  assert.deepEqual(
    [...socksSuccess(V5, { host: "ab.c", port: 80 })],
    [5, 0, 0, 3, 4, 0x61, 0x62, 0x2e, 0x63, 0, 80],
  );
});

Deno.test("SOCKS4 answers: 00 5A granted, 00 5B rejected, IPv4 only", () => {
  assert.deepEqual([...socksSuccess(V4)], [0, 0x5a, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(
    [...socksSuccess(V4, { host: "192.0.2.7", port: 1080 })],
    [0, 0x5a, 0x04, 0x38, 192, 0, 2, 7],
  );
  // No room for an IPv6 address: the field is left empty.
  assert.deepEqual(
    [...socksSuccess(V4, { host: "::1", port: 1080 })],
    [0, 0x5a, 0, 0, 0, 0, 0, 0],
  );
  assert.deepEqual([...socksRefusal(V4)], [0, 0x5b, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(
    [...socksFailure(V4, new SocksError("x", { reply: 5 }))],
    [0, 0x5b, 0, 0, 0, 0, 0, 0],
  );
});

Deno.test("a refusal by our own rules is reply 2, connection not allowed", () => {
  assert.deepEqual([...socksRefusal(V5)], reply(2));
});

Deno.test("route failures map to the reply codes a SOCKS client understands", () => {
  const dial = (cause: Error) => new DialError("example.com:22", { cause });
  const cases: [unknown, number][] = [
    [dial(new Deno.errors.ConnectionRefused("refused")), 5],
    [dial(new Deno.errors.NetworkUnreachable("no route")), 3],
    [dial(new Error("failed to lookup address information")), 4],
    [new TimeoutError("TCP connect to example.com:22", 10_000), 4],
    [new ProxyRefusedError("p:3128", "t:22", 403, "HTTP/1.1 403 Forbidden"), 2],
    [new ProxyRefusedError("p:3128", "t:22", 502, "HTTP/1.1 502 Bad"), 4],
    [new ProxyRefusedError("p:3128", "t:22", 400, "HTTP/1.1 400 Bad"), 1],
    [new SocksError("refused", { reply: 5 }), 5],
    [new SocksError("ttl", { reply: 6 }), 6],
    [new SocksError("odd", { reply: 0x42 }), 1],
    [new SocksError("rejected the user name or password"), 1],
    [new ProxyAuthError("p:3128", "t:22", "407", "credentials-needed", "B"), 1],
    [new ProxyProtocolError("garbage"), 1],
    [new Error("anything else"), 1],
    ["not even an Error", 1],
  ];
  for (const [error, code] of cases) {
    assert.deepEqual([...socksFailure(V5, error)], reply(code), String(error));
  }
});

// --- The handshake, with hand-written client bytes ---

/**
 * Runs acceptSocks on one connection while `talk` plays the client, and
 * returns what acceptSocks returned or threw.
 */
async function handshake(
  talk: (conn: Deno.TcpConn) => Promise<void>,
  options: Partial<SocksServerOptions> = {},
): Promise<unknown> {
  const outcome = Promise.withResolvers<unknown>();
  await using server = startServer(async (conn) => {
    const client = new BufferedDuplex(conn);
    await acceptSocks(client, {
      clientLabel: "127.0.0.1:5555",
      timeoutMs: 5_000,
      ...options,
    }).then(outcome.resolve, outcome.resolve);
  });
  using conn = await connect(server.port);
  await within(talk(conn), 5_000, "the client's side of the handshake");
  return await within(outcome.promise, 5_000, "acceptSocks");
}

function accepted(outcome: unknown): SocksRequest {
  if (outcome instanceof Error) throw outcome;
  return outcome as SocksRequest;
}

function refused(outcome: unknown): SocksClientError {
  assert.ok(
    outcome instanceof SocksClientError,
    `expected a SocksClientError, got ${outcome}`,
  );
  return outcome;
}

async function expectBytes(conn: Deno.Conn, expected: number[]) {
  assert.deepEqual([...await readExactly(conn, expected.length)], expected);
}

// The server closed: end of stream, or a reset for bytes it did not read.
async function expectClosed(conn: Deno.Conn) {
  try {
    assert.equal(await conn.read(new Uint8Array(1)), null);
  } catch (error) {
    assert.ok(error instanceof Deno.errors.ConnectionReset, String(error));
  }
}

// Offers no authentication, then sends a request (VER CMD RSV ATYP ...).
async function requestWithoutAuth(conn: Deno.Conn, request: number[]) {
  await writeAll(conn, Uint8Array.of(5, 1, 0));
  await expectBytes(conn, [5, 0]);
  await writeAll(conn, Uint8Array.from(request));
}

const loopback = [127, 0, 0, 1];
const port22 = [0, 22];
// ATYP 1, 127.0.0.1, port 22.
const loopback22 = [1, ...loopback, ...port22];

Deno.test("SOCKS5 CONNECT to IPv4, IPv6 and a domain name, which is not resolved", async () => {
  const ipv6 = [...Array(15).fill(0), 1];
  const name = [...bytes("db.internal.example")];
  for (
    const [address, host] of [
      [[1, ...loopback], "127.0.0.1"],
      [[4, ...ipv6], "::1"],
      [[3, name.length, ...name], "db.internal.example"],
    ] as const
  ) {
    const request = accepted(
      await handshake((conn) =>
        requestWithoutAuth(conn, [5, 1, 0, ...address, ...port22])
      ),
    );
    assert.deepEqual(request, {
      version: 5,
      target: { host, port: 22 },
      user: undefined,
    });
  }
});

Deno.test("SOCKS5 username/password (RFC 1929): 01 00 for the right one, the user is returned", async () => {
  const request = accepted(
    await handshake(async (conn) => {
      await writeAll(conn, Uint8Array.of(5, 2, 0, 2));
      await expectBytes(conn, [5, 2]);
      await writeAll(conn, socksUserPass(CREDENTIALS));
      await expectBytes(conn, [1, 0]);
      await writeAll(conn, Uint8Array.of(5, 1, 0, ...loopback22));
    }, { credentials: CREDENTIALS }),
  );
  assert.equal(request.user, "jane");
});

Deno.test("a wrong password is answered 01 01 and never appears in the error", async () => {
  const error = refused(
    await handshake(async (conn) => {
      await writeAll(conn, Uint8Array.of(5, 1, 2));
      await expectBytes(conn, [5, 2]);
      await writeAll(
        conn,
        socksUserPass({ username: "jane", password: "guessed-Pa55" }),
      );
      await expectBytes(conn, [1, 1]);
      await expectClosed(conn);
    }, { credentials: CREDENTIALS }),
  );
  assert.equal(error.problem, "auth");
  assert.match(error.message, /^SOCKS client 127\.0\.0\.1:5555 .*"jane"/);
  assert.doesNotMatch(error.message, /guessed|s3cret/);
});

Deno.test("methods: no acceptable method is answered 05 FF", async () => {
  // Credentials required, the client offers none.
  const noPassword = refused(
    await handshake(async (conn) => {
      await writeAll(conn, Uint8Array.of(5, 1, 0));
      await expectBytes(conn, [5, 0xff]);
      await expectClosed(conn);
    }, { credentials: CREDENTIALS }),
  );
  assert.equal(noPassword.problem, "auth");
  assert.match(noPassword.message, /requires a user name and password/);
  // No credentials configured, the client offers only GSSAPI.
  const gssapi = refused(
    await handshake(async (conn) => {
      await writeAll(conn, Uint8Array.of(5, 1, 1));
      await expectBytes(conn, [5, 0xff]);
    }),
  );
  assert.equal(gssapi.problem, "unsupported");
  assert.match(gssapi.message, /methods: 0x01/);
});

Deno.test("BIND and UDP ASSOCIATE are answered with reply 7, an unknown address type with 8", async () => {
  for (const [command, name] of [[2, "BIND"], [3, "UDP ASSOCIATE"]] as const) {
    const error = refused(
      await handshake(async (conn) => {
        await requestWithoutAuth(conn, [5, command, 0, ...loopback22]);
        await expectBytes(conn, reply(7));
        await expectClosed(conn);
      }),
    );
    assert.equal(error.problem, "unsupported");
    assert.match(error.message, new RegExp(`asked for ${name}`));
  }
  const error = refused(
    await handshake(async (conn) => {
      await requestWithoutAuth(conn, [5, 1, 0, 9, 1, 2, 3]);
      await expectBytes(conn, reply(8));
    }),
  );
  assert.match(error.message, /address type 0x09/);
});

Deno.test("a domain name that cannot go into a CONNECT line, or port 0, is refused with reply 1", async () => {
  const cases: [string, number][] = [
    ["evil\r\nX-Injected: 1", 22],
    ["example.com", 0],
  ];
  for (const [name, port] of cases) {
    const host = bytes(name);
    const address = [3, host.length, ...host, 0, port];
    const error = refused(
      await handshake(async (conn) => {
        await requestWithoutAuth(conn, [5, 1, 0, ...address]);
        await expectBytes(conn, reply(1));
      }),
    );
    assert.equal(error.problem, "protocol");
    assert.doesNotMatch(error.message, /[\r\n]/);
  }
});

// The examples of the SOCKS4 and SOCKS4a protocol documents, as Wikipedia
// writes them out: user "Fred" to 66.102.7.99:80, and to www.example.com:80.
const FRED = [0x46, 0x72, 0x65, 0x64, 0];

Deno.test("SOCKS4 CONNECT, and SOCKS4a with a host name after the user id", async () => {
  const v4 = accepted(
    await handshake((conn) =>
      writeAll(
        conn,
        Uint8Array.of(4, 1, 0x00, 0x50, 0x42, 0x66, 0x07, 0x63, ...FRED),
      )
    ),
  );
  assert.deepEqual(v4, {
    version: 4,
    target: { host: "66.102.7.99", port: 80 },
  });
  const v4a = accepted(
    await handshake((conn) =>
      writeAll(
        conn,
        Uint8Array.of(
          4,
          1,
          0x00,
          0x50,
          0,
          0,
          0,
          0xff,
          ...FRED,
          ...bytes("www.example.com"),
          0,
        ),
      )
    ),
  );
  assert.deepEqual(v4a, {
    version: 4,
    target: { host: "www.example.com", port: 80 },
  });
});

Deno.test("SOCKS4: BIND, a user id past 255 bytes, and any request when a password is required are answered 00 5B", async () => {
  const rejected = [0, 0x5b, 0, 0, 0, 0, 0, 0];
  const cases: [number[], Partial<SocksServerOptions>, string, RegExp][] = [
    [[4, 2, 0, 80, ...loopback, 0], {}, "unsupported", /SOCKS4 BIND/],
    [
      [4, 1, 0, 80, ...loopback, ...Array(300).fill(0x41), 0],
      {},
      "protocol",
      /user id longer than 255 bytes/,
    ],
    [
      [4, 1, 0, 80, ...loopback, ...FRED],
      { credentials: CREDENTIALS },
      "auth",
      /SOCKS4, which has no password/,
    ],
  ];
  for (const [sent, options, problem, message] of cases) {
    const error = refused(
      await handshake(async (conn) => {
        await writeAll(conn, Uint8Array.from(sent));
        await expectBytes(conn, rejected);
        await expectClosed(conn);
      }, options),
    );
    assert.equal(error.problem, problem);
    assert.match(error.message, message);
  }
});

Deno.test("a client that is not SOCKS gets an error saying what it looks like", async () => {
  const cases: [string | Uint8Array, RegExp][] = [
    [
      "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
      /^SOCKS client 127\.0\.0\.1:5555 sent version 0x47 \("G"\): is this an HTTP client on the SOCKS port\?/,
    ],
    [Uint8Array.of(0x16, 3, 1, 0, 0xa5), /TLS handshake/],
    [Uint8Array.of(0x00, 1, 2), /sent version 0x00: a SOCKS client starts/],
  ];
  for (const [sent, message] of cases) {
    const error = refused(
      await handshake(async (conn) => {
        await writeAll(conn, typeof sent === "string" ? bytes(sent) : sent);
        await expectClosed(conn);
      }),
    );
    assert.equal(error.problem, "protocol");
    assert.match(error.message, message);
  }
});

Deno.test("a client that stalls mid-handshake is closed at the time limit", async () => {
  const started = Date.now();
  const error = refused(
    await handshake(async (conn) => {
      await writeAll(conn, Uint8Array.of(5, 2));
      await expectClosed(conn);
    }, { timeoutMs: 300 }),
  );
  assert.equal(error.problem, "timeout");
  assert.match(error.message, /within 300 ms/);
  assert.ok(Date.now() - started < 3_000, "closed long after the limit");
});

Deno.test("a client that goes away mid-handshake, and an abort", async () => {
  const gone = refused(
    await handshake(async (conn) => {
      await requestWithoutAuth(conn, [5, 1, 0, 3, 20, 0x61]);
      await conn.closeWrite();
      await expectClosed(conn);
    }),
  );
  assert.equal(gone.problem, "closed");
  const abort = new AbortController();
  const aborted = await handshake(async (conn) => {
    await writeAll(conn, Uint8Array.of(5));
    abort.abort(new Error("shutting down"));
    await expectClosed(conn);
  }, { signal: abort.signal });
  assert.equal((aborted as Error).message, "shutting down");
});

// --- Real clients through a test server: acceptSocks, a direct dial, relay ---

interface SocksTestServer extends AsyncDisposable {
  readonly port: number;
  /** What acceptSocks returned, in order. */
  readonly requests: SocksRequest[];
  /** What acceptSocks threw. */
  readonly errors: unknown[];
}

function startSocksServer(
  options: Partial<SocksServerOptions> = {},
): SocksTestServer {
  const requests: SocksRequest[] = [];
  const errors: unknown[] = [];
  const server: TestServer = startServer(async (conn) => {
    const client = new BufferedDuplex(conn);
    let request: SocksRequest;
    try {
      request = await acceptSocks(client, {
        clientLabel: `127.0.0.1:${conn.remoteAddr.port}`,
        timeoutMs: 5_000,
        ...options,
      });
    } catch (error) {
      errors.push(error);
      return;
    }
    requests.push(request);
    let target: Deno.TcpConn;
    try {
      target = await dialTcp(request.target, {
        connectTimeoutMs: 5_000,
        keepAlive: false,
      });
    } catch (error) {
      await writeAll(client, socksFailure(request, error));
      return;
    }
    const { hostname, port } = target.localAddr;
    await writeAll(client, socksSuccess(request, { host: hostname, port }));
    await relay(client, target);
  });
  return {
    port: server.port,
    requests,
    errors,
    [Symbol.asyncDispose]: () => server[Symbol.asyncDispose](),
  };
}

Deno.test({
  name:
    "curl through SOCKS5 (--socks5-hostname, --socks5), SOCKS4a and SOCKS4 to an HTTP server",
  ignore: missing("curl"),
  async fn() {
    await using origin = startHttpOrigin();
    await using socks = startSocksServer();
    const proxy = `127.0.0.1:${socks.port}`;
    const cases = [
      ["--socks5-hostname", "localhost", 5],
      ["--socks5", "127.0.0.1", 5],
      ["--socks4a", "localhost", 4],
      ["--socks4", "127.0.0.1", 4],
    ] as const;
    for (const [flag, host, version] of cases) {
      const got = await curl([
        flag,
        proxy,
        `http://${host}:${origin.port}/hello`,
      ]);
      assert.equal(got.code, 0, `curl ${flag}: ${got.stderr}`);
      assert.equal(got.stdout, HELLO_TEXT);
      assert.deepEqual(socks.requests.at(-1), {
        version,
        target: { host, port: origin.port },
        ...(version === 5 ? { user: undefined } : {}),
      });
    }
    assert.equal(origin.requests.length, cases.length);
    assert.deepEqual(socks.errors, []);
  },
});

Deno.test({
  name:
    "curl --socks5-hostname --proxy-user: the right password passes, a wrong one and none are refused",
  ignore: missing("curl"),
  async fn() {
    await using origin = startHttpOrigin();
    await using socks = startSocksServer({ credentials: CREDENTIALS });
    const url = `http://localhost:${origin.port}/hello`;
    const proxy = ["--socks5-hostname", `127.0.0.1:${socks.port}`];
    const right = await curl([
      ...proxy,
      "--proxy-user",
      `jane:${CREDENTIALS.password}`,
      url,
    ]);
    assert.equal(right.code, 0, right.stderr);
    assert.equal(right.stdout, HELLO_TEXT);
    assert.equal(socks.requests[0].user, "jane");

    const wrong = await curl([
      ...proxy,
      "--proxy-user",
      "jane:wrong-Pa55",
      url,
    ]);
    assert.notEqual(wrong.code, 0);
    const none = await curl([...proxy, url]);
    assert.notEqual(none.code, 0);
    const socks4 = await curl(["--socks4a", `127.0.0.1:${socks.port}`, url]);
    assert.notEqual(socks4.code, 0);

    assert.equal(origin.requests.length, 1);
    const errors = socks.errors.map(refused);
    assert.deepEqual(errors.map((e) => e.problem), ["auth", "auth", "auth"]);
    assert.match(errors[0].message, /wrong user name or password/);
    assert.doesNotMatch(errors[0].message, /wrong-Pa55/);
    assert.match(errors[1].message, /offered no username\/password/);
    assert.match(errors[2].message, /SOCKS4, which has no password/);
  },
});

Deno.test({
  name:
    "curl: a refused destination is reply 5; an HTTP proxy client on the SOCKS port is told so",
  ignore: missing("curl"),
  async fn() {
    await using socks = startSocksServer();
    const closed = freePort();
    const refusedConnect = await curl([
      "--socks5",
      `127.0.0.1:${socks.port}`,
      `http://127.0.0.1:${closed}/`,
    ]);
    assert.notEqual(refusedConnect.code, 0);
    assert.match(refusedConnect.stderr, /\(5\)|refused/i);

    const http = await curl([
      "-x",
      `http://127.0.0.1:${socks.port}`,
      "http://example.com/",
    ]);
    assert.notEqual(http.code, 0);
    const [error] = socks.errors.map(refused);
    assert.match(error.message, /0x47 \("G"\): is this an HTTP client/);
  },
});

Deno.test({
  name:
    "nc -X 5 -x (netcat-openbsd) to an IPv4 address, and by name to a server that speaks first",
  ignore: missingOpenBsdNetcat(),
  async fn() {
    await using echo = startEchoServer();
    await using banner = startBannerServer("SSH-2.0-test\r\n");
    await using socks = startSocksServer();
    const cases = [
      ["127.0.0.1", echo.port, ""],
      ["localhost", banner.port, "SSH-2.0-test\r\n"],
    ] as const;
    for (const [host, port, greeting] of cases) {
      const got = await netcatThroughSocks(socks.port, host, port, "ping\n");
      assert.equal(got.stdout, `${greeting}ping\n`, got.stderr);
    }
    // The name reached the server as a name (ATYP 3), not resolved by nc.
    assert.deepEqual(
      socks.requests.map((request) => request.target),
      cases.map(([host, port]) => ({ host, port })),
    );
  },
});

Deno.test("bytes a client sends right after its request reach the destination", async () => {
  await using echo = startEchoServer();
  await using socks = startSocksServer();
  using conn = await connect(socks.port);
  await writeAll(conn, Uint8Array.of(5, 1, 0));
  await within(expectBytes(conn, [5, 0]), 5_000, "method selection");
  await writeAll(
    conn,
    Uint8Array.of(
      5,
      1,
      0,
      1,
      ...loopback,
      echo.port >> 8,
      echo.port & 0xff,
      ...bytes("early"),
    ),
  );
  const reply = await within(readExactly(conn, 10), 5_000, "the reply");
  assert.deepEqual([...reply.subarray(0, 4)], [5, 0, 0, 1]);
  assert.equal(
    text(await within(readExactly(conn, 5), 5_000, "the echo")),
    "early",
  );
});
