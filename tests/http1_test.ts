import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  appendVia,
  type BodyFraming,
  errorResponse,
  expectsContinue,
  formatRequestHead,
  formatResponseHead,
  frameHeaders,
  type HeaderField,
  HttpMessageError,
  parseAbsoluteTarget,
  parseConnectTarget,
  persists,
  readRequestHead,
  requestFraming,
  type RequestHead,
  responseFraming,
  stripHopByHop,
} from "../lib/local/http1.ts";
import { chunkSize, copyBody, readBody } from "../lib/local/http1_body.ts";
import { BufferedDuplex } from "../lib/net/buffered.ts";
import type { Duplex } from "../lib/net/duplex.ts";
import { readResponseHead, type ResponseHead } from "../lib/proxy/http_head.ts";
import { pseudoRandomChunks, sendChunks, sha256Of } from "./_util/data.ts";
import {
  bytes,
  connect,
  pause,
  startServer,
  text,
  within,
  writeAll,
} from "./_util/net.ts";

const ended = () => new Error("ended early");

/** A stream with nothing (more) to read that keeps what is written to it. */
class Sink implements Duplex {
  #written: Uint8Array[] = [];
  read(): Promise<number | null> {
    return Promise.resolve(null);
  }
  write(data: Uint8Array): Promise<number> {
    this.#written.push(data.slice());
    return Promise.resolve(data.length);
  }
  closeWrite(): Promise<void> {
    return Promise.resolve();
  }
  close(): void {}
  /** Everything written, as text. */
  get text(): string {
    return this.#written.map(text).join("");
  }
}

/** A {@link Sink} that keeps only the sha256 of what is written. */
class HashSink extends Sink {
  readonly hash = createHash("sha256");
  override write(data: Uint8Array): Promise<number> {
    this.hash.update(data);
    return Promise.resolve(data.length);
  }
}

/** A reader over `raw` alone. */
function input(raw: string): BufferedDuplex {
  return new BufferedDuplex(new Sink(), { initial: bytes(raw), onEnd: ended });
}

function request(headers: HeaderField[], version = "HTTP/1.1"): RequestHead {
  return { method: "POST", target: "http://example.com/", version, headers };
}

function response(
  status: number,
  headers: HeaderField[] = [],
  version = "HTTP/1.1",
): ResponseHead {
  return {
    version,
    status,
    statusLine: `${version} ${status} Something`,
    headers,
  };
}

/** Asserts that `run` throws an HttpMessageError with `status`. */
async function rejectsWith(
  run: () => unknown,
  status: number,
  message?: RegExp,
): Promise<HttpMessageError> {
  let caught: unknown;
  try {
    await run();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof HttpMessageError, `got ${caught}`);
  assert.equal(caught.status, status, caught.message);
  if (message) assert.match(caught.message, message);
  return caught;
}

Deno.test("request head: fields in order, OWS trimmed, the bytes after it kept", async () => {
  const stream = input(
    "\r\nPOST http://example.com/a?b=1 HTTP/1.1\r\nHost: example.com\r\n" +
      "X-Empty:\r\nX-Tab:\t a b \t\r\nContent-Length: 4\n\r\nbody",
  );
  assert.deepEqual(await readRequestHead(stream), {
    method: "POST",
    target: "http://example.com/a?b=1",
    version: "HTTP/1.1",
    headers: [
      ["Host", "example.com"],
      ["X-Empty", ""],
      ["X-Tab", "a b"],
      ["Content-Length", "4"],
    ],
  });
  assert.equal(text(stream.buffered), "body");
  assert.equal(
    (await readRequestHead(input("CONNECT [::1]:22 HTTP/1.0\n\n")))?.version,
    "HTTP/1.0",
  );
  // A later minor version is read as the highest one known (RFC 9110 §2.5).
  assert.equal(
    (await readRequestHead(input("GET http://h/ HTTP/1.2\r\n\r\n")))?.version,
    "HTTP/1.2",
  );
});

Deno.test("request head: a clean close before a request is the end, not an error", async () => {
  assert.equal(await readRequestHead(input("")), undefined);
  assert.equal(await readRequestHead(input("\r\n")), undefined);
  await assert.rejects(
    () => readRequestHead(input("GET http://h/ HTTP/1.1\r\nHost: h\r\n")),
    /ended early/,
  );
});

Deno.test("request head: malformed request lines", async () => {
  for (
    const [line, status] of [
      ["GET  http://h/ HTTP/1.1", 400],
      ["GET http://h/ http/1.1", 400],
      ["GET http://h/", 400],
      ["GET http://h/ HTTP/1", 400],
      ["G(T http://h/ HTTP/1.1", 400],
      [" GET http://h/ HTTP/1.1", 400],
      ["GET http://h/\x7f HTTP/1.1", 400],
      ["GET http://h/é HTTP/1.1", 400],
      ["GET\thttp://h/ HTTP/1.1", 400],
      ["GET http://h/ HTTP/1.1\r", 400],
      ["GET http://h/\rX HTTP/1.1", 400],
      ["GET http://h/ HTTP/2.0", 505],
      ["GET http://h/ HTTP/0.9", 505],
    ] as const
  ) {
    await rejectsWith(() => readRequestHead(input(`${line}\r\n\r\n`)), status);
  }
});

Deno.test("request head: obs-fold, bare CR, space before colon, bad names and values are 400", async () => {
  const cases = [
    ["Host: h\r\nX: a\r\n b", /starts with whitespace \(obs-fold/],
    ["Host: h\r\n\tb", /obs-fold/],
    [" Host: h", /obs-fold/],
    ["Host: h\r\nTransfer-Encoding : chunked", /whitespace before its colon/],
    ["Host: h\r\nContent-Length\t: 5", /whitespace before its colon/],
    ["Host: h\r\nX: a\rTransfer-Encoding: chunked", /bare CR/],
    ["Host: h\r\nX-Bare: a\r\r", /bare CR/],
    ["Host h", /no colon/],
    [": value", /not a token/],
    ["Bad Name: v", /not a token/],
    ["Bad@Name: v", /not a token/],
    ["X: a\x00b", /the X field holds a control character/],
    ["X: a\x1bb", /control character/],
    ["Host: a\r\nHost: b", /more than one Host/],
  ] as const;
  for (const [fields, message] of cases) {
    await rejectsWith(
      () =>
        readRequestHead(input(`GET http://h/ HTTP/1.1\r\n${fields}\r\n\r\n`)),
      400,
      message,
    );
  }
});

Deno.test("request head: error messages never quote a header value or the target", async () => {
  const secret = "c2VjcmV0OnBhc3N3b3Jk";
  for (
    const [raw, status] of [
      [
        `GET http://h/ HTTP/1.1\r\nAuthorization: Basic ${secret}\x01\r\n\r\n`,
        400,
      ],
      [`GET http://h/ HTTP/1.1\r\nCookie: ${secret}\rX: y\r\n\r\n`, 400],
      [`GET http://h/?token=${secret} HTTP/3.0\r\n\r\n`, 505],
    ] as const
  ) {
    const error = await rejectsWith(() => readRequestHead(input(raw)), status);
    assert.ok(!error.message.includes(secret), error.message);
  }
  const error = await rejectsWith(
    () => parseAbsoluteTarget(`http://jane:${secret}@h/`),
    400,
  );
  assert.ok(!error.message.includes(secret), error.message);
});

Deno.test("request head limits: header count, head size, request line length", async () => {
  const fields = (n: number) =>
    Array.from({ length: n }, (_, i) => `X-${i}: ${i}\r\n`).join("");
  const head = (n: number) => `GET http://h/ HTTP/1.1\r\n${fields(n)}\r\n`;
  assert.equal((await readRequestHead(input(head(100))))?.headers.length, 100);
  await rejectsWith(
    () => readRequestHead(input(head(101))),
    431,
    /more than 100 header fields/,
  );
  assert.equal(
    (await readRequestHead(input(head(3)), { maxHeaders: 3 }))?.headers.length,
    3,
  );
  await rejectsWith(
    () => readRequestHead(input(head(4)), { maxHeaders: 3 }),
    431,
  );

  const big = (valueBytes: number) =>
    `GET http://h/ HTTP/1.1\r\nX: ${"a".repeat(valueBytes)}\r\n\r\n`;
  const framing = big(0).length;
  assert.ok(await readRequestHead(input(big(64 * 1024 - framing))));
  await rejectsWith(
    () => readRequestHead(input(big(64 * 1024 - framing + 1))),
    431,
    /larger than 65536 bytes/,
  );
  await rejectsWith(
    () => readRequestHead(input(big(2000)), { maxHeadBytes: 1024 }),
    431,
  );
  // Empty lines before the request line count too.
  await rejectsWith(
    () => readRequestHead(input("\r\n".repeat(600)), { maxHeadBytes: 1024 }),
    414,
  );
  await rejectsWith(
    () =>
      readRequestHead(
        input(`GET http://h/${"p".repeat(64 * 1024)} HTTP/1.1\r\n\r\n`),
      ),
    414,
    /request line is longer than 65536 bytes/,
  );
});

Deno.test("request framing: none, Content-Length, chunked", () => {
  assert.deepEqual(requestFraming(request([])), { kind: "none" });
  assert.deepEqual(requestFraming(request([["Content-Length", "0"]])), {
    kind: "length",
    length: 0,
  });
  // Identical values may be merged (RFC 9110 §8.6).
  for (
    const fields of [
      [["content-length", "42"]],
      [["Content-Length", "42, 42"]],
      [["Content-Length", "42"], ["Content-Length", "42"]],
      [["Content-Length", "042"], ["Content-Length", "42,42"]],
    ] satisfies HeaderField[][]
  ) {
    assert.deepEqual(requestFraming(request(fields)), {
      kind: "length",
      length: 42,
    });
  }
  for (const value of ["chunked", "Chunked", "CHUNKED", ",chunked"]) {
    assert.deepEqual(
      requestFraming(request([["Transfer-Encoding", value]])),
      { kind: "chunked" },
    );
  }
  assert.deepEqual(
    requestFraming(request([["Content-Length", "9007199254740991"]])),
    { kind: "length", length: 2 ** 53 - 1 },
  );
});

Deno.test("request framing: smuggling patterns (CL.TE, TE.CL, TE.TE, duplicate CL) are refused", () => {
  const cases: [HeaderField[], number, RegExp?][] = [
    // CL.TE and TE.CL: both fields, in either order (RFC 9112 §6.1, §11.2).
    [
      [["Content-Length", "6"], ["Transfer-Encoding", "chunked"]],
      400,
      /together/,
    ],
    [
      [["Transfer-Encoding", "chunked"], ["Content-Length", "6"]],
      400,
      /together/,
    ],
    [[["Transfer-Encoding", "chunked"], ["Content-Length", "0"]], 400],
    // TE.TE: a second, obfuscated Transfer-Encoding.
    [
      [["Transfer-Encoding", "chunked"], ["Transfer-Encoding", "x"]],
      400,
      /does not end in chunked/,
    ],
    [[["Transfer-Encoding", "chunked, identity"]], 400],
    [[["Transfer-Encoding", "xchunked"]], 400],
    [[["Transfer-Encoding", "chunked;x=1"]], 400],
    [[["Transfer-Encoding", '"chunked"']], 400],
    [[["Transfer-Encoding", ""]], 400],
    [[["Transfer-Encoding", "chunked, chunked"]], 400, /more than once/],
    [[["Transfer-Encoding", "gzip"]], 400],
    // Another coding before chunked: understood, not supported.
    [[["Transfer-Encoding", "gzip, chunked"]], 501],
    [[["Transfer-Encoding", "gzip"], ["Transfer-Encoding", "chunked"]], 501],
    // Duplicate and invalid Content-Length.
    [[["Content-Length", "5"], ["Content-Length", "6"]], 400, /values differ/],
    [[["Content-Length", "5, 6"]], 400, /values differ/],
    [[["Content-Length", ""]], 400, /not a decimal number/],
    [[["Content-Length", "-1"]], 400],
    [[["Content-Length", "+5"]], 400],
    [[["Content-Length", "0x5"]], 400],
    [[["Content-Length", "5.0"]], 400],
    [[["Content-Length", "1e3"]], 400],
    [[["Content-Length", "5 5"]], 400],
    [[["Content-Length", "9007199254740992"]], 400, /larger than 2\^53/],
    [[["Content-Length", "99999999999999999999999"]], 400],
  ];
  for (const [fields, status, message] of cases) {
    assert.throws(
      () => requestFraming(request(fields)),
      (error) =>
        error instanceof HttpMessageError && error.status === status &&
        (message?.test(error.message) ?? true),
      JSON.stringify(fields),
    );
  }
  // Transfer-Encoding in HTTP/1.0 is faulty framing (RFC 9112 §6.1).
  assert.throws(
    () =>
      requestFraming(
        request([["Transfer-Encoding", "chunked"]], "HTTP/1.0"),
      ),
    { status: 400, message: /HTTP\/1\.0/ },
  );
});

Deno.test("request framing: whole requests with smuggling patterns, from the wire", async () => {
  for (
    const [raw, status] of [
      [
        "POST http://h/ HTTP/1.1\r\nContent-Length: 13\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nSMUGGLED",
        400,
      ],
      [
        "POST http://h/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
        400,
      ],
      [
        "POST http://h/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-encoding: cow\r\n\r\n",
        400,
      ],
      [
        "POST http://h/ HTTP/1.1\r\nTransfer-Encoding:\r\n chunked\r\n\r\n",
        400,
      ],
      [
        "POST http://h/ HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n",
        400,
      ],
      [
        "POST http://h/ HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\n",
        400,
      ],
    ] as const
  ) {
    await rejectsWith(
      async () => requestFraming((await readRequestHead(input(raw)))!),
      status,
    );
  }
});

Deno.test("response framing (RFC 9112 §6.3)", () => {
  const length = [["Content-Length", "10"]] satisfies HeaderField[];
  const none = { kind: "none" };
  assert.deepEqual(responseFraming(response(200, length), "HEAD"), none);
  for (const status of [100, 101, 103, 204, 304]) {
    assert.deepEqual(responseFraming(response(status, length), "GET"), none);
  }
  assert.deepEqual(responseFraming(response(200), "CONNECT"), none);
  assert.deepEqual(responseFraming(response(407, length), "CONNECT"), {
    kind: "length",
    length: 10,
  });
  assert.deepEqual(
    responseFraming(response(200, [["Transfer-Encoding", "chunked"]]), "GET"),
    { kind: "chunked" },
  );
  assert.deepEqual(responseFraming(response(200, length), "POST"), {
    kind: "length",
    length: 10,
  });
  assert.deepEqual(responseFraming(response(200), "GET"), { kind: "close" });
  assert.deepEqual(responseFraming(response(404, [], "HTTP/1.0"), "GET"), {
    kind: "close",
  });
  for (
    const [head, message] of [
      [
        response(200, [...length, ["Transfer-Encoding", "chunked"]]),
        /together/,
      ],
      [response(200, [["Transfer-Encoding", "gzip"]]), /end in chunked/],
      [response(200, [["Transfer-Encoding", "gzip, chunked"]]), /other than/],
      [
        response(200, [["Transfer-Encoding", "chunked"]], "HTTP/1.0"),
        /HTTP\/1\.0/,
      ],
      [response(200, [["Content-Length", "1, 2"]]), /differ/],
    ] as const
  ) {
    assert.throws(() => responseFraming(head, "GET"), {
      status: 502,
      message: new RegExp(
        `^the upstream response is malformed: .*${message.source}`,
      ),
    });
  }
});

Deno.test("hop-by-hop fields are removed, with every field Connection names", () => {
  const fields: HeaderField[] = [
    ["Host", "h"],
    ["Connection", "keep-alive, X-Secret"],
    ["connection", "Upgrade"],
    ["Keep-Alive", "timeout=5"],
    ["Proxy-Connection", "keep-alive"],
    ["TE", "trailers"],
    ["Trailer", "X-Checksum"],
    ["Transfer-Encoding", "chunked"],
    ["Upgrade", "websocket"],
    ["Proxy-Authorization", "Basic eA=="],
    ["Proxy-Authenticate", "Basic"],
    ["x-secret", "1"],
    ["Authorization", "Bearer t"],
    ["Content-Length", "5"],
  ];
  assert.deepEqual(stripHopByHop(fields), [
    ["Host", "h"],
    ["Authorization", "Bearer t"],
    ["Content-Length", "5"],
  ]);
});

Deno.test("framing fields: one canonical Content-Length, or chunked", () => {
  const fields: HeaderField[] = [
    ["A", "1"],
    ["Content-Length", "5"],
    ["content-length", "5"],
  ];
  assert.deepEqual(frameHeaders(fields, { kind: "length", length: 5 }), [
    ["A", "1"],
    ["Content-Length", "5"],
  ]);
  assert.deepEqual(frameHeaders([["A", "1"]], { kind: "chunked" }), [
    ["A", "1"],
    ["Transfer-Encoding", "chunked"],
  ]);
  // A response to HEAD keeps the length of the body it stands for.
  assert.deepEqual(frameHeaders(fields, { kind: "none" }), fields);
  assert.deepEqual(frameHeaders([["A", "1"]], { kind: "close" }), [["A", "1"]]);
});

Deno.test("persistence: HTTP/1.1 unless close, HTTP/1.0 only with keep-alive", () => {
  const head = (version: string, headers: HeaderField[] = []) => ({
    version,
    headers,
  });
  assert.equal(persists(head("HTTP/1.1")), true);
  assert.equal(persists(head("HTTP/1.1", [["Connection", "close"]])), false);
  assert.equal(
    persists(head("HTTP/1.1", [["Connection", "Keep-Alive, CLOSE"]])),
    false,
  );
  assert.equal(
    persists(head("HTTP/1.1", [["Connection", "x"], ["Connection", "close"]])),
    false,
  );
  assert.equal(persists(head("HTTP/1.1", [["Connection", "closed"]])), true);
  assert.equal(persists(head("HTTP/1.0")), false);
  assert.equal(
    persists(head("HTTP/1.0", [["Connection", "keep-alive"]])),
    true,
  );
  assert.equal(
    persists(head("HTTP/1.0", [["Proxy-Connection", "Keep-Alive"]])),
    true,
  );
  assert.equal(
    persists(head("HTTP/1.1", [["Proxy-Connection", "close"]])),
    false,
  );
  assert.equal(persists(response(200, [], "HTTP/1.0")), false);
});

Deno.test("Via: appended to the last Via field, with the version received", () => {
  assert.deepEqual(appendVia([["A", "1"]], "HTTP/1.1"), [
    ["A", "1"],
    ["Via", "1.1 httptunneling"],
  ]);
  assert.deepEqual(
    appendVia([["via", "1.0 a"], ["B", "2"], ["Via", "1.1 squid"]], "HTTP/1.0"),
    [["via", "1.0 a"], ["B", "2"], ["Via", "1.1 squid, 1.0 httptunneling"]],
  );
  assert.deepEqual(appendVia([["Via", ""]], "HTTP/1.1"), [
    ["Via", "1.1 httptunneling"],
  ]);
});

Deno.test("Expect: 100-continue, in HTTP/1.1 only", () => {
  assert.equal(expectsContinue(request([["Expect", "100-Continue"]])), true);
  assert.equal(
    expectsContinue(request([["Expect", "100-continue"]], "HTTP/1.0")),
    false,
  );
  assert.equal(expectsContinue(request([["Expect", "something"]])), false);
  assert.equal(expectsContinue(request([])), false);
});

Deno.test("absolute-form targets: host, port, authority, path", () => {
  assert.deepEqual(parseAbsoluteTarget("http://example.com/a/b?c=d&e"), {
    host: "example.com",
    port: 80,
    authority: "example.com",
    path: "/a/b?c=d&e",
  });
  assert.deepEqual(parseAbsoluteTarget("HTTP://Example.com:8080"), {
    host: "Example.com",
    port: 8080,
    authority: "Example.com:8080",
    path: "/",
  });
  assert.deepEqual(parseAbsoluteTarget("http://10.0.0.1:/?q"), {
    host: "10.0.0.1",
    port: 80,
    authority: "10.0.0.1:",
    path: "/?q",
  });
  assert.deepEqual(parseAbsoluteTarget("http://[2001:DB8::1]:81/x"), {
    host: "2001:db8::1",
    port: 81,
    authority: "[2001:DB8::1]:81",
    path: "/x",
  });
  for (
    const [target, message] of [
      ["https://example.com/", /CONNECT/],
      ["ftp://example.com/", /only http/],
      ["/just/a/path", /absolute http/],
      ["*", /absolute http/],
      ["example.com:80", /absolute http/],
      ["http://example.com/a#frag", /fragment/],
      ["http://u@example.com/", /user info/],
      ["http:///path", /host/],
      ["http://exa_mple!.com/", /host/],
      ["http://[::1/", /host:port/],
      ["http://[not:v6]/", /host/],
      ["http://example.com:0/", /port/],
      ["http://example.com:65536/", /port/],
      ["http://example.com:8a/", /host:port/],
    ] as const
  ) {
    assert.throws(() => parseAbsoluteTarget(target), {
      name: "HttpMessageError",
      status: 400,
      message,
    }, target);
  }
});

Deno.test("CONNECT targets: host and port required", () => {
  assert.deepEqual(parseConnectTarget("example.com:443"), {
    host: "example.com",
    port: 443,
  });
  assert.deepEqual(parseConnectTarget("[::1]:22"), { host: "::1", port: 22 });
  assert.deepEqual(parseConnectTarget("192.0.2.1:8443"), {
    host: "192.0.2.1",
    port: 8443,
  });
  for (
    const target of [
      "example.com",
      "example.com:",
      "::1:22",
      "[::1]",
      "a b:1",
      "example.com:99999",
      "http://example.com:443",
    ]
  ) {
    assert.throws(() => parseConnectTarget(target), {
      name: "HttpMessageError",
      status: 400,
    }, target);
  }
});

Deno.test("request heads for the next hop: origin form and absolute form, Host from the target", () => {
  const head: RequestHead = {
    method: "GET",
    target: "http://example.com:8080?q=1",
    version: "HTTP/1.0",
    headers: [["Accept", "*/*"], ["host", "evil.example"], ["X", ""]],
  };
  const target = parseAbsoluteTarget(head.target);
  assert.equal(
    text(formatRequestHead(head, target, "origin")),
    "GET /?q=1 HTTP/1.1\r\nHost: example.com:8080\r\nAccept: */*\r\nX: \r\n\r\n",
  );
  assert.equal(
    text(formatRequestHead(head, target, "absolute")),
    "GET http://example.com:8080/?q=1 HTTP/1.1\r\nHost: example.com:8080\r\n" +
      "Accept: */*\r\nX: \r\n\r\n",
  );
  for (
    const field of [["X", "a\r\nInjected: 1"], [
      "Bad Name",
      "v",
    ]] satisfies HeaderField[]
  ) {
    assert.throws(
      () => formatRequestHead({ ...head, headers: [field] }, target, "origin"),
      TypeError,
    );
  }
});

Deno.test("response heads for the client: status and reason received, this tool's version", () => {
  assert.equal(
    text(formatResponseHead({
      version: "HTTP/1.0",
      status: 404,
      statusLine: "HTTP/1.0 404 Not  Found",
      headers: [["Content-Length", "0"]],
    })),
    "HTTP/1.1 404 Not  Found\r\nContent-Length: 0\r\n\r\n",
  );
  assert.equal(
    text(formatResponseHead({
      version: "HTTP/1.1",
      status: 100,
      statusLine: "HTTP/1.1 100",
      headers: [],
    })),
    "HTTP/1.1 100 \r\n\r\n",
  );
  assert.throws(
    () => formatResponseHead(response(200, [["X", "a\rContent-Length: 0"]])),
    { name: "HttpMessageError", status: 502 },
  );
});

Deno.test("error responses: plain text, length in bytes, connection closed", () => {
  assert.equal(
    text(errorResponse(502, "upstream proxy proxy.corp:3128 unreachable")),
    "HTTP/1.1 502 Bad Gateway\r\n" +
      "Content-Type: text/plain; charset=utf-8\r\n" +
      "Content-Length: 43\r\n" +
      "Connection: close\r\n\r\n" +
      "upstream proxy proxy.corp:3128 unreachable\n",
  );
  const french = "trop d’en-têtes";
  assert.match(
    text(errorResponse(431, french)),
    new RegExp(
      `^HTTP/1\\.1 431 Request Header Fields Too Large\r\n.*` +
        `Content-Length: ${bytes(french).length + 1}\r\n.*${french}\n$`,
      "s",
    ),
  );
  assert.match(text(errorResponse(599, "x")), /^HTTP\/1\.1 599 \r\n/);
});

Deno.test("chunk sizes: hex digits, extensions dropped, at most 2^53 - 1", () => {
  assert.equal(chunkSize("0"), 0);
  assert.equal(chunkSize("1a"), 26);
  assert.equal(chunkSize("1A;name=value;x"), 26);
  assert.equal(chunkSize('10 ; ext="quoted value"'), 16);
  assert.equal(chunkSize("0000000000000000000000ff"), 255);
  assert.equal(chunkSize("1fffffffffffff"), 2 ** 53 - 1);
  for (
    const line of [
      "",
      " 1",
      "1 ",
      "-1",
      "+1",
      "0x1",
      "g",
      "1g",
      "1\r;x",
      "1;\x00",
      "20000000000000",
      "ffffffffffffffffff",
    ]
  ) {
    assert.throws(() => chunkSize(line), {
      name: "HttpMessageError",
      status: 400,
    }, JSON.stringify(line));
  }
});

Deno.test("copyBody: a length, what follows it stays buffered", async () => {
  const from = input("hello world");
  const to = new Sink();
  assert.equal(
    await copyBody(from, to, { kind: "length", length: 5 }),
    5,
  );
  assert.equal(to.text, "hello");
  assert.equal(text(from.buffered), " world");
  assert.equal(await copyBody(from, to, { kind: "none" }), 0);
  await assert.rejects(
    () => copyBody(input("abc"), new Sink(), { kind: "length", length: 5 }),
    /ended early/,
  );
});

Deno.test("copyBody: chunked written anew, extensions and trailers dropped", async () => {
  const body = "5;ext=1\r\nhello\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\nNEXT";
  const from = input(body);
  const to = new Sink();
  assert.equal(await copyBody(from, to, { kind: "chunked" }), 11);
  assert.equal(to.text, "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  assert.equal(text(from.buffered), "NEXT");

  const plain = new Sink();
  await copyBody(input(body), plain, { kind: "chunked" }, { chunked: false });
  assert.equal(plain.text, "hello world");

  const rechunked = new Sink();
  assert.equal(
    await copyBody(input("until the end"), rechunked, { kind: "close" }, {
      chunked: true,
    }),
    13,
  );
  assert.equal(rechunked.text, "d\r\nuntil the end\r\n0\r\n\r\n");
});

Deno.test("readBody: a length, chunked and until the end, each within its cap; what follows stays buffered", async () => {
  const tooLarge = () => new Error("too large");
  const chunked = input("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nNEXT");
  assert.equal(
    text(await readBody(chunked, { kind: "chunked" }, 11, tooLarge)),
    "hello world",
  );
  assert.equal(text(chunked.buffered), "NEXT");
  const empty = input("0\r\n\r\nNEXT");
  assert.equal(
    (await readBody(empty, { kind: "chunked" }, 0, tooLarge)).length,
    0,
  );
  assert.equal(text(empty.buffered), "NEXT");
  const length = input("helloNEXT");
  assert.equal(
    text(await readBody(length, { kind: "length", length: 5 }, 5, tooLarge)),
    "hello",
  );
  assert.equal(text(length.buffered), "NEXT");
  assert.equal(
    text(await readBody(input("to the end"), { kind: "close" }, 10, tooLarge)),
    "to the end",
  );
  // Over the cap: a declared length before any byte is read, else as read.
  const declared = input("hello");
  await assert.rejects(
    () => readBody(declared, { kind: "length", length: 5 }, 4, tooLarge),
    /too large/,
  );
  assert.equal(text(declared.buffered), "hello");
  await assert.rejects(
    () =>
      readBody(
        input("5\r\nhello\r\n0\r\n\r\n"),
        { kind: "chunked" },
        4,
        tooLarge,
      ),
    /too large/,
  );
  await assert.rejects(
    () => readBody(input("hello"), { kind: "close" }, 4, tooLarge),
    /too large/,
  );
  // Cut short: the stream's own early-end error.
  await assert.rejects(
    () => readBody(input("5\r\nhel"), { kind: "chunked" }, 5, tooLarge),
    /ended early/,
  );
  await assert.rejects(
    () => readBody(input("hel"), { kind: "length", length: 5 }, 5, tooLarge),
    /ended early/,
  );
});

Deno.test("copyBody: malformed and oversize chunked framing", async () => {
  const chunked: BodyFraming = { kind: "chunked" };
  const copy = (raw: string, options = {}) =>
    copyBody(input(raw), new Sink(), chunked, options);
  await rejectsWith(() => copy("x\r\n"), 400, /not a hex number/);
  await rejectsWith(() => copy("5\r\nhelloX\r\n0\r\n\r\n"), 400, /CRLF/);
  await rejectsWith(() => copy("5\r\nhello\r\r\n0\r\n\r\n"), 400, /CRLF/);
  await rejectsWith(() => copy("20000000000000\r\n"), 400, /2\^53/);
  await rejectsWith(
    () => copy(`1;${"e".repeat(5000)}\r\nx\r\n0\r\n\r\n`),
    400,
    /chunk size line is longer than 4096 bytes/,
  );
  await rejectsWith(
    () =>
      copy(`1;${"e".repeat(100)}\r\nx\r\n0\r\n\r\n`, { maxChunkLineBytes: 64 }),
    400,
    /longer than 64 bytes/,
  );
  await rejectsWith(
    () => copy(`0\r\n${"X: y\r\n".repeat(3000)}\r\n`),
    400,
    /trailer section is larger than 16384 bytes/,
  );
  assert.equal(await copy(`0\r\n${"X: y\r\n".repeat(2000)}\r\n`), 0);
  await assert.rejects(() => copy("5\r\nhel"), /ended early/);
  await assert.rejects(() => copy("5\r\nhello\r\n"), /ended early/);
});

Deno.test("a request head split at every byte, through a loopback socket", async () => {
  const raw = bytes(
    "POST http://example.com/upload?x=1 HTTP/1.1\r\nHost: example.com\r\n" +
      "Content-Length: 5\r\nX-Empty:\r\nX-Bare-LF: yes\n\r\nhello",
  );
  let received = 0;
  const results = Promise.withResolvers<string[]>();
  await using server = startServer(async (conn) => {
    // Counts what arrived, so the client sends the second part only
    // after the first was read on its own.
    const counted: Duplex = {
      read: async (buffer) => {
        const n = await conn.read(buffer);
        received += n ?? 0;
        return n;
      },
      write: (data) => conn.write(data),
      closeWrite: () => conn.closeWrite(),
      close: () => conn.close(),
    };
    const stream = new BufferedDuplex(counted, { onEnd: ended });
    const seen: string[] = [];
    try {
      for (let head; (head = await readRequestHead(stream));) {
        const body = new Sink();
        await copyBody(stream, body, requestFraming(head));
        seen.push(`${JSON.stringify(head)} ${body.text}`);
      }
      results.resolve(seen);
    } catch (error) {
      results.reject(error);
    }
  });
  using conn = await connect(server.port);
  conn.setNoDelay(true);
  let sent = 0;
  for (let cut = 1; cut < raw.length; cut++) {
    for (const part of [raw.subarray(0, cut), raw.subarray(cut)]) {
      await writeAll(conn, part);
      sent += part.length;
      await within(
        (async () => {
          while (received < sent) await pause(1);
        })(),
        5_000,
        `the server reading up to byte ${cut}`,
      );
    }
  }
  await conn.closeWrite();
  const seen = await within(results.promise, 5_000, "the requests");
  assert.equal(seen.length, raw.length - 1);
  const expected = JSON.stringify({
    method: "POST",
    target: "http://example.com/upload?x=1",
    version: "HTTP/1.1",
    headers: [
      ["Host", "example.com"],
      ["Content-Length", "5"],
      ["X-Empty", ""],
      ["X-Bare-LF", "yes"],
    ],
  });
  for (const [i, line] of seen.entries()) {
    assert.equal(line, `${expected} hello`, `cut at ${i + 1}`);
  }
});

Deno.test("response heads from a stream: 100 Continue, then the final head, the body after it", async () => {
  await using upstream = startServer(async (conn) => {
    for (
      const part of [
        "HTTP/1.1 100 Continue\r\n\r",
        "\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n",
        "\r\n3\r\nabc\r\n0\r\n\r\n",
      ]
    ) {
      await writeAll(conn, bytes(part));
      await pause(10);
    }
  });
  const closed = () => new Error("upstream closed before answering");
  const stream = new BufferedDuplex(await connect(upstream.port), {
    onEnd: ended,
  });
  try {
    const interim = await within(
      readResponseHead(stream, closed),
      5_000,
      "100",
    );
    assert.equal(interim.status, 100);
    assert.equal(
      text(formatResponseHead(interim)),
      "HTTP/1.1 100 Continue\r\n\r\n",
    );
    assert.deepEqual(responseFraming(interim, "POST"), { kind: "none" });
    const final = await within(readResponseHead(stream, closed), 5_000, "200");
    assert.equal(final.status, 200);
    const body = new Sink();
    const framing = responseFraming(final, "POST");
    assert.equal(
      await within(copyBody(stream, body, framing), 5_000, "body"),
      3,
    );
    assert.equal(body.text, "3\r\nabc\r\n0\r\n\r\n");
    await assert.rejects(
      () => within(readResponseHead(stream, closed), 5_000, "end"),
      /upstream closed before answering/,
    );
  } finally {
    stream.close();
  }
});

/** Deterministic chunk sizes from 1 to 40000 (a linear congruential generator). */
function* chunkSizes(seed: number): Generator<number> {
  let state = seed;
  while (true) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    yield 1 + (state >>> 8) % 40_000;
  }
}

/** `data` in chunked coding, in chunks of random sizes, some with extensions. */
function* chunkedCoding(data: Iterable<Uint8Array>): Generator<Uint8Array> {
  const sizes = chunkSizes(7);
  let count = 0;
  for (const block of data) {
    for (let offset = 0; offset < block.length;) {
      const size = Math.min(sizes.next().value!, block.length - offset);
      const hex = count % 2
        ? size.toString(16).toUpperCase()
        : size.toString(16);
      yield bytes(
        `${count % 3 ? "" : "00"}${hex}${count % 5 ? "" : ";n=v"}\r\n`,
      );
      yield block.subarray(offset, offset + size);
      yield bytes("\r\n");
      offset += size;
      count++;
    }
  }
  yield bytes("0\r\nX-Checksum: none\r\n\r\n");
}

Deno.test("copyBody: 8 MiB chunked through two sockets, re-chunked then decoded, by sha256", async () => {
  const total = 8 * 1024 * 1024;
  const data = () => pseudoRandomChunks(0xb0d7, total);
  const received = Promise.withResolvers<{ hash: string; length: number }>();
  // The receiving end decodes the chunked body into a hash.
  await using receiver = startServer(async (conn) => {
    const hashing = new HashSink();
    try {
      const length = await copyBody(
        new BufferedDuplex(conn, { onEnd: ended }),
        hashing,
        { kind: "chunked" },
        { chunked: false },
      );
      received.resolve({ hash: hashing.hash.digest("hex"), length });
    } catch (error) {
      received.reject(error);
    }
  });
  // The forwarder re-writes the chunks on their way to the receiver.
  const forwarded = Promise.withResolvers<number>();
  await using forwarder = startServer(async (conn) => {
    using next = await connect(receiver.port);
    try {
      forwarded.resolve(
        await copyBody(
          new BufferedDuplex(conn, { onEnd: ended }),
          next,
          { kind: "chunked" },
        ),
      );
    } catch (error) {
      forwarded.reject(error);
    }
  });
  using conn = await connect(forwarder.port);
  await within(sendChunks(conn, chunkedCoding(data())), 30_000, "sending");
  assert.equal(await within(forwarded.promise, 30_000, "forwarding"), total);
  const { hash, length } = await within(received.promise, 30_000, "receiving");
  assert.equal(length, total);
  assert.equal(hash, sha256Of(data()));
});
