import assert from "node:assert/strict";
import {
  CLOSE_CODE,
  closePayload,
  encodeFrame,
  FrameDecoder,
  OPCODE,
  parseClosePayload,
  type WsEvent,
  WsProtocolError,
} from "../lib/ws/frame.ts";
import { FrameWriter } from "../lib/ws/frame_writer.ts";
import {
  acceptFor,
  buildUpgradeRequest,
  checkUpgradeResponse,
  newKey,
  SUBPROTOCOL,
} from "../lib/ws/handshake.ts";
import { ResponseHeadReader } from "../lib/proxy/http_head.ts";
import { ProxyProtocolError } from "../lib/errors.ts";
import { bytes } from "./_util/net.ts";
import { concat } from "../lib/net/bytes.ts";

const hex = (data: Uint8Array) =>
  Array.from(data, (b) => b.toString(16).padStart(2, "0")).join(" ");
const from = (...values: number[]) => Uint8Array.from(values);
const HELLO = bytes("Hello");
// RFC 6455 §5.7's masking key.
const RFC_MASK = from(0x37, 0xfa, 0x21, 0x3d);

/** Decodes `data` fed one byte at a time and all at once; both must agree. */
function decodeBoth(data: Uint8Array, masked = false): WsEvent[] {
  const whole = new FrameDecoder({ masked }).push(data);
  const bytewise = new FrameDecoder({ masked });
  const events = [...data].flatMap((byte) => bytewise.push(from(byte)));
  assert.deepEqual(events, whole);
  return whole;
}

function refused(data: Uint8Array, code: number, pattern: RegExp) {
  assert.throws(
    () => new FrameDecoder().push(data),
    (error) =>
      error instanceof WsProtocolError && error.closeCode === code &&
      pattern.test(error.message),
  );
}

Deno.test("RFC 6455 §5.7 examples, encoded byte for byte", () => {
  assert.equal(
    hex(encodeFrame(OPCODE.text, HELLO)),
    "81 05 48 65 6c 6c 6f",
  );
  assert.equal(
    hex(encodeFrame(OPCODE.text, HELLO, { mask: RFC_MASK })),
    "81 85 37 fa 21 3d 7f 9f 4d 51 58",
  );
  assert.equal(
    hex(encodeFrame(OPCODE.text, bytes("Hel"), { fin: false })),
    "01 03 48 65 6c",
  );
  assert.equal(
    hex(encodeFrame(OPCODE.continuation, bytes("lo"))),
    "80 02 6c 6f",
  );
  assert.equal(
    hex(encodeFrame(OPCODE.ping, HELLO)),
    "89 05 48 65 6c 6c 6f",
  );
  assert.equal(
    hex(encodeFrame(OPCODE.pong, HELLO, { mask: RFC_MASK })),
    "8a 85 37 fa 21 3d 7f 9f 4d 51 58",
  );
  // 256 bytes: a 16-bit length; 64 KiB: a 64-bit length.
  const k256 = encodeFrame(OPCODE.binary, new Uint8Array(256));
  assert.equal(hex(k256.subarray(0, 4)), "82 7e 01 00");
  assert.equal(k256.length, 4 + 256);
  const k64 = encodeFrame(OPCODE.binary, new Uint8Array(65536));
  assert.equal(hex(k64.subarray(0, 10)), "82 7f 00 00 00 00 00 01 00 00");
  assert.equal(k64.length, 10 + 65536);
});

Deno.test("RFC 6455 §5.7 examples, decoded", () => {
  assert.deepEqual(decodeBoth(from(0x81, 0x05, ...HELLO)), [
    { kind: "text", text: "Hello" },
  ]);
  assert.deepEqual(
    decodeBoth(
      from(0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58),
      true,
    ),
    [{ kind: "text", text: "Hello" }],
  );
  assert.deepEqual(
    decodeBoth(from(0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f)),
    [{ kind: "text", text: "Hello" }],
  );
  assert.deepEqual(decodeBoth(from(0x89, 0x05, ...HELLO)), [
    { kind: "ping", data: HELLO },
  ]);
  assert.deepEqual(
    decodeBoth(
      from(0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58),
      true,
    ),
    [{ kind: "pong", data: HELLO }],
  );
  const big = new Uint8Array(65536).map((_, i) => i * 7);
  const [event] = decodeBoth(encodeFrame(OPCODE.binary, big));
  assert.equal(event.kind, "binary");
  assert.deepEqual(event.kind === "binary" && event.data, big);
});

Deno.test("masked frames round-trip with 7-, 16- and 64-bit lengths", () => {
  for (const length of [0, 1, 125, 126, 127, 65535, 65536, 200_000]) {
    const payload = new Uint8Array(length).map((_, i) => i ^ (i >> 8));
    const frame = encodeFrame(OPCODE.binary, payload, {
      mask: from(1, 2, 3, 4),
    });
    const events = new FrameDecoder({ masked: true }).push(frame);
    assert.deepEqual(events, [{ kind: "binary", data: payload }], `${length}`);
  }
});

Deno.test("control frames between fragments come out as they arrive", () => {
  const data = [
    encodeFrame(OPCODE.binary, from(1, 2), { fin: false }),
    encodeFrame(OPCODE.ping, bytes("p")),
    encodeFrame(OPCODE.continuation, from(3), { fin: false }),
    encodeFrame(OPCODE.pong, new Uint8Array(0)),
    encodeFrame(OPCODE.continuation, from(4, 5)),
    encodeFrame(OPCODE.text, bytes("eof")),
    encodeFrame(OPCODE.close, closePayload(1000, "bye")),
  ];
  const joined = new Uint8Array(data.reduce((n, d) => n + d.length, 0));
  let at = 0;
  for (const frame of data) {
    joined.set(frame, at);
    at += frame.length;
  }
  assert.deepEqual(decodeBoth(joined), [
    { kind: "ping", data: bytes("p") },
    { kind: "pong", data: new Uint8Array(0) },
    { kind: "binary", data: from(1, 2, 3, 4, 5) },
    { kind: "text", text: "eof" },
    { kind: "close", code: 1000, reason: "bye" },
  ]);
});

Deno.test("frames the RFC forbids are refused with the right close code", () => {
  const P = CLOSE_CODE.protocolError;
  refused(from(0xc2, 0x00), P, /reserved bits/);
  refused(from(0x83, 0x00), P, /reserved opcode 3/);
  refused(from(0x8b, 0x00), P, /reserved opcode 11/);
  refused(from(0x09, 0x00), P, /fragmented control/);
  refused(from(0x89, 0x7e, 0x00, 0x7e), P, /control frame longer/);
  refused(from(0x80, 0x00), P, /continuation frame without/);
  refused(from(0x02, 0x01, 0x00, 0x82, 0x00), P, /new message before/);
  refused(from(0x82, 0x80, 1, 2, 3, 4), P, /masked frame from the server/);
  assert.throws(
    () => new FrameDecoder({ masked: true }).push(from(0x82, 0x00)),
    /unmasked client frame/,
  );
  refused(
    from(0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0),
    P,
    /most significant bit/,
  );
  // Over 1 MiB: refused from the header, before any payload arrives.
  refused(
    from(0x82, 0x7f, 0, 0, 0, 0, 0, 0x10, 0, 1),
    CLOSE_CODE.tooBig,
    /larger than 1048576/,
  );
  // Fragments that add up to more than the limit.
  const small = new FrameDecoder({ maxMessageBytes: 10 });
  small.push(encodeFrame(OPCODE.binary, new Uint8Array(6), { fin: false }));
  assert.throws(
    () => small.push(encodeFrame(OPCODE.continuation, new Uint8Array(6))),
    (error) =>
      error instanceof WsProtocolError &&
      error.closeCode === CLOSE_CODE.tooBig,
  );
  refused(
    encodeFrame(OPCODE.text, from(0xff, 0xfe)),
    CLOSE_CODE.invalidData,
    /not valid UTF-8/,
  );
  refused(encodeFrame(OPCODE.close, from(3)), P, /1-byte payload/);
  refused(encodeFrame(OPCODE.close, closePayload(1005)), P, /1005/);
  refused(encodeFrame(OPCODE.close, closePayload(999)), P, /999/);
});

Deno.test("close payloads: code and reason, cut to fit a control frame", () => {
  assert.deepEqual(parseClosePayload(closePayload(1011, "target reset")), {
    code: 1011,
    reason: "target reset",
  });
  assert.deepEqual(parseClosePayload(new Uint8Array(0)), { reason: "" });
  assert.deepEqual(parseClosePayload(closePayload(4000)), {
    code: 4000,
    reason: "",
  });
  // 200 two-byte characters: cut at a character boundary, within 125 bytes.
  const long = closePayload(1000, "é".repeat(200));
  assert.ok(long.length <= 125);
  assert.equal(parseClosePayload(long).reason, "é".repeat(61));
});

Deno.test("RFC 6455 §1.3: the accept value for the sample nonce", () => {
  assert.equal(
    acceptFor("dGhlIHNhbXBsZSBub25jZQ=="),
    "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
  );
  assert.equal(newKey(() => new Uint8Array(16).fill(1)).length, 24);
});

function head(text: string) {
  const reader = new ResponseHeadReader();
  const parsed = reader.push(bytes(text.replaceAll("\n", "\r\n") + "\r\n"));
  assert.ok(parsed);
  return parsed;
}

Deno.test("the upgrade request and the checks on the answer", () => {
  const key = "dGhlIHNhbXBsZSBub25jZQ==";
  const request = buildUpgradeRequest({
    server: { host: "tunnel.example.org", port: 443 },
    path: "/t",
    key,
    target: { host: "2001:db8::1", port: 22 },
    token: "s3cret",
  });
  assert.match(
    request,
    /^GET \/t HTTP\/1\.1\r\nHost: tunnel\.example\.org:443\r\n/,
  );
  for (
    const line of [
      "Upgrade: websocket",
      "Connection: Upgrade",
      `Sec-WebSocket-Key: ${key}`,
      "Sec-WebSocket-Version: 13",
      `Sec-WebSocket-Protocol: ${SUBPROTOCOL}`,
      "Authorization: Bearer s3cret",
      "X-Httptunneling-Target: [2001:db8::1]:22",
    ]
  ) {
    assert.ok(request.includes(`\r\n${line}\r\n`), line);
  }
  assert.ok(request.endsWith("\r\n\r\n"));
  const good = `HTTP/1.1 101 Switching Protocols
Upgrade: websocket
Connection: Upgrade
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
Sec-WebSocket-Protocol: httptunneling.v1
`;
  assert.deepEqual(checkUpgradeResponse(head(good), key, "s"), { open: true });
  const broken = (text: string, pattern: RegExp) =>
    assert.throws(
      () => checkUpgradeResponse(head(text), key, "s"),
      (error) =>
        error instanceof ProxyProtocolError && pattern.test(error.message),
    );
  broken(good.replace("s3pPLM", "AAAAAA"), /does not match our key/);
  broken(good.replace("httptunneling.v1", "chat"), /subprotocol "chat"/);
  broken(good.replace(/Sec-WebSocket-Protocol.*\n/, ""), /without choosing/);
  broken(
    good.replace("Upgrade: websocket", "Upgrade: h2c"),
    /Upgrade: websocket/,
  );
  broken(good + "Sec-WebSocket-Extensions: permessage-deflate\n", /extension/);
  assert.deepEqual(
    checkUpgradeResponse(
      head("HTTP/1.1 403 Forbidden\nX-Httptunneling-Refusal: not-allowed\n"),
      key,
      "s",
    ),
    { open: false, status: 403, refusal: "not-allowed" },
  );
  assert.deepEqual(
    checkUpgradeResponse(head("HTTP/1.1 404 Not Found\n"), key, "s"),
    { open: false, status: 404, refusal: undefined },
  );
});

/** A connection whose writes wait until the test lets them finish. */
class HeldConn {
  writes: Uint8Array[] = [];
  #release: (() => void)[] = [];
  failWith: Error | undefined;

  write(data: Uint8Array): Promise<number> {
    this.writes.push(data.slice());
    return new Promise((resolve, reject) =>
      this.#release.push(() =>
        this.failWith ? reject(this.failWith) : resolve(data.length)
      )
    );
  }
  finishWrite(): void {
    this.#release.shift()?.();
  }
  read(): Promise<number | null> {
    return Promise.resolve(null);
  }
  closeWrite(): Promise<void> {
    return Promise.resolve();
  }
  close(): void {}
}

Deno.test("ws frame writer: frames sent during a write go together in the next, in order, masked each with its own key", async () => {
  const conn = new HeldConn();
  const errors: unknown[] = [];
  const writer = new FrameWriter(conn, (error) => errors.push(error));
  const first = writer.send(OPCODE.binary, [bytes("one")]);
  assert.equal(conn.writes.length, 1);
  // 200 KiB while the first write is in flight: the buffer grows.
  const big = new Uint8Array(200 * 1024).fill(9);
  const second = writer.send(OPCODE.binary, [big.subarray(0, 100), big], {
    mask: RFC_MASK,
  });
  const third = writer.send(OPCODE.text, [HELLO], { mask: from(1, 2, 3, 4) });
  assert.equal(
    conn.writes.length,
    1,
    "nothing more while a write is in flight",
  );
  assert.equal(
    writer.backlog,
    conn.writes[0].length + 2 * 1024 * 100 + 114 + 11,
  );
  conn.finishWrite();
  await first;
  assert.equal(conn.writes.length, 2, "the rest in one write");
  assert.deepEqual(conn.writes[0], encodeFrame(OPCODE.binary, bytes("one")));
  assert.deepEqual(
    conn.writes[1],
    concat(
      encodeFrame(OPCODE.binary, [big.subarray(0, 100), big], {
        mask: RFC_MASK,
      }),
      encodeFrame(OPCODE.text, HELLO, { mask: from(1, 2, 3, 4) }),
    ),
  );
  conn.finishWrite();
  await Promise.all([second, third]);
  assert.equal(writer.backlog, 0);
  // A failed write fails its frames, those sent meanwhile and later ones.
  conn.failWith = new Error("connection reset");
  const failed = writer.send(OPCODE.binary, [bytes("a")]);
  const meanwhile = writer.send(OPCODE.binary, [bytes("b")]);
  conn.finishWrite();
  await assert.rejects(failed, /connection reset/);
  await assert.rejects(meanwhile, /connection reset/);
  await assert.rejects(writer.send(OPCODE.ping, []), /connection reset/);
  assert.equal(errors.length, 1);
  assert.equal(writer.backlog, 0);
});
