/**
 * The session frame codec: every frame type round-trips, a stream of
 * frames decodes the same however it is cut, and malformed input is
 * refused with a typed {@link FrameError} before anything over a bound is
 * buffered.
 */
import assert from "node:assert/strict";
import fc from "npm:fast-check@4.3.0";
import { FrameError } from "../lib/session/errors.ts";
import {
  clipReason,
  encodeFrame,
  encodeFrameParts,
  type Frame,
  FrameDecoder,
  HEADER_BYTES,
  MAX_DATA_PAYLOAD,
  MAX_FRAME_BODY,
  MAX_REASON_BYTES,
  MAX_RESUME_ENTRIES,
  MAX_WINDOW,
  REFUSE_CODES,
  type ResumeEntry,
  SESSION_ID_BYTES,
} from "../lib/session/frame.ts";

const RUNS = Number(Deno.env.get("FUZZ_RUNS") ?? 200);
const SETTINGS = { numRuns: RUNS, seed: 20261205 };

const id = Uint8Array.from({ length: SESSION_ID_BYTES }, (_, i) => i * 7);
const entries: ResumeEntry[] = [
  { stream: 1, offset: 0, window: 65536, eof: false },
  { stream: 2, offset: 2 ** 40 + 3, window: 0, eof: true },
  { stream: 4, offset: 0, window: 0, eof: false, reset: true },
];

const SAMPLES: Frame[] = [
  { type: "hello", streams: [] },
  { type: "hello", session: id, streams: entries },
  { type: "welcome", session: id, resume: "new", streams: [] },
  { type: "welcome", session: id, resume: "resumed", streams: entries },
  { type: "welcome", session: id, resume: "refused", streams: [] },
  { type: "open", stream: 1, host: "db.internal", port: 5432, window: 1024 },
  { type: "open", stream: 3, host: "2001:db8::1", port: 22, window: 0 },
  { type: "opened", stream: 1, window: MAX_WINDOW },
  ...REFUSE_CODES.map((code): Frame => ({
    type: "refuse",
    stream: 5,
    code,
    reason: `no: ${code} é`,
  })),
  { type: "data", stream: 7, offset: 0, payload: new Uint8Array(0) },
  {
    type: "data",
    stream: 0xffff_ffff,
    offset: Number.MAX_SAFE_INTEGER - MAX_DATA_PAYLOAD,
    payload: new Uint8Array(MAX_DATA_PAYLOAD).fill(9),
  },
  { type: "ack", stream: 2, offset: 12345, window: 777, eof: false },
  { type: "ack", stream: 2, offset: 12346, window: 0, eof: true },
  { type: "eof", stream: 9, offset: 2 ** 33 },
  { type: "reset", stream: 4, reason: "" },
  { type: "goaway", reason: "replaced by a newer transport" },
];

/** Frames decoded from `bytes` pushed in the given chunks. */
function decodeChunks(bytes: Uint8Array, sizes: number[]): Frame[] {
  const decoder = new FrameDecoder();
  const frames: Frame[] = [];
  let at = 0;
  for (const size of sizes) {
    frames.push(...decoder.push(bytes.subarray(at, at + size)));
    at += size;
  }
  frames.push(...decoder.push(bytes.subarray(at)));
  assert.equal(decoder.buffered, 0);
  return frames;
}

function concatAll(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** A valid header followed by `body`, with fields that may be overridden. */
function rawFrame(
  type: number,
  stream: number,
  body: number[] | Uint8Array,
  { version = 1, flags = 0, reserved = 0, length = body.length } = {},
): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + body.length);
  const view = new DataView(out.buffer);
  view.setUint8(0, version);
  view.setUint8(1, type);
  view.setUint8(2, flags);
  view.setUint8(3, reserved);
  view.setUint32(4, stream);
  view.setUint32(8, length);
  out.set(body, HEADER_BYTES);
  return out;
}

function refused(bytes: Uint8Array, problem: string, message: RegExp): void {
  assert.throws(() => new FrameDecoder().push(bytes), (error) => {
    assert.ok(error instanceof FrameError, String(error));
    assert.equal(error.problem, problem);
    assert.match(error.message, message);
    return true;
  });
}

Deno.test("session frame: every type round-trips, whole and a byte at a time", () => {
  for (const frame of SAMPLES) {
    const bytes = encodeFrame(frame);
    assert.deepEqual(new FrameDecoder().push(bytes), [frame]);
    const ones = Array.from({ length: bytes.length }, () => 1);
    assert.deepEqual(decodeChunks(bytes, ones), [frame]);
  }
  const all = concatAll(SAMPLES.map(encodeFrame));
  assert.deepEqual(new FrameDecoder().push(all), SAMPLES);
});

Deno.test("session frame: the header is 12 bytes: version, type, flags, 0, stream, length", () => {
  const bytes = encodeFrame({ type: "eof", stream: 0x01020304, offset: 5 });
  assert.deepEqual(
    [...bytes],
    [1, 8, 0, 0, 1, 2, 3, 4, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 5],
  );
});

Deno.test("session frame: decoded payloads do not alias the pushed buffer", () => {
  const bytes = encodeFrame({
    type: "data",
    stream: 1,
    offset: 0,
    payload: Uint8Array.of(1, 2, 3),
  });
  const [frame] = new FrameDecoder().push(bytes);
  bytes.fill(0);
  assert.deepEqual(
    frame.type === "data" && [...frame.payload],
    [1, 2, 3],
  );
});

Deno.test("session frame: unknown version and type are refused, by name", () => {
  refused(
    rawFrame(6, 1, [], { version: 2 }),
    "version",
    /version 2 .*speaks version 1/,
  );
  refused(rawFrame(6, 1, [], { version: 0 }), "version", /version 0/);
  refused(rawFrame(0, 1, []), "type", /unknown frame type 0/);
  refused(rawFrame(11, 1, []), "type", /unknown frame type 11/);
  // The version is checked from the header alone, before any body arrives.
  assert.throws(
    () =>
      new FrameDecoder().push(
        rawFrame(6, 1, [], { version: 9, length: 60000 }).subarray(0, 12),
      ),
    FrameError,
  );
});

Deno.test("session frame: a body over the bound is refused from its header, before buffering", () => {
  const decoder = new FrameDecoder();
  const header = rawFrame(6, 1, [], { length: MAX_FRAME_BODY + 1 });
  assert.throws(() => decoder.push(header), (error) => {
    assert.ok(error instanceof FrameError);
    assert.equal(error.problem, "size");
    assert.match(error.message, /over the 65544-byte bound/);
    return true;
  });
  // The framing is lost: the decoder refuses everything after.
  assert.throws(
    () => decoder.push(encodeFrame({ type: "goaway", reason: "" })),
    FrameError,
  );
  // A valid header's body is held until complete, never more than one frame.
  const partial = new FrameDecoder();
  const big = encodeFrame({
    type: "data",
    stream: 1,
    offset: 0,
    payload: new Uint8Array(MAX_DATA_PAYLOAD),
  });
  assert.deepEqual(partial.push(big.subarray(0, big.length - 1)), []);
  assert.equal(partial.buffered, big.length - 1);
  assert.equal(partial.push(big.subarray(big.length - 1)).length, 1);
});

Deno.test("session frame: malformed bodies are refused", () => {
  const offset = [0, 0, 0, 0, 0, 0, 0, 0];
  const cases: [Uint8Array, string, RegExp][] = [
    [rawFrame(6, 1, offset, { reserved: 1 }), "malformed", /reserved/],
    [rawFrame(6, 0, offset), "malformed", /stream 0; it needs a stream id/],
    [rawFrame(10, 3, [0, 0]), "malformed", /goaway frame names stream 3/],
    [rawFrame(6, 1, offset, { flags: 1 }), "malformed", /unknown flags 0x1/],
    [
      rawFrame(7, 1, [...offset, 0, 0, 0, 0], { flags: 2 }),
      "malformed",
      /flags 0x2/,
    ],
    [rawFrame(8, 1, [0, 0, 0]), "malformed", /eof frame is too short/],
    [rawFrame(8, 1, [...offset, 0]), "malformed", /1 bytes past its fields/],
    [rawFrame(8, 1, [0, 0x20, 0, 0, 0, 0, 0, 0]), "malformed", /past 2\^53/],
    [rawFrame(4, 1, [0x80, 0, 0, 0]), "malformed", /window 2147483648 is over/],
    [rawFrame(5, 1, [6, 0, 0]), "malformed", /unknown code/],
    [rawFrame(9, 1, [0x02, 0x01]), "size", /reason of 513 bytes is over 512/],
    [rawFrame(9, 1, [0, 2, 0xc3, 0x28]), "malformed", /not UTF-8/],
    [rawFrame(2, 0, [...id, 3, 0, 0]), "malformed", /unknown outcome/],
    [rawFrame(1, 0, [0, 1]), "malformed", /hello frame is too short/],
    [rawFrame(1, 0, [0x08, 0x01]), "size", /lists 2049 streams; at most 2048/],
    [
      rawFrame(1, 0, [0, 2, ...[0, 0, 0, 1, ...offset, 0, 0, 0, 0, 0], ...[
        0,
        0,
        0,
        1,
        ...offset,
        0,
        0,
        0,
        0,
        0,
      ]]),
      "malformed",
      /entry 1 is not valid/,
    ],
    [
      rawFrame(1, 0, [0, 1, 0, 0, 0, 0, ...offset, 0, 0, 0, 0, 0]),
      "malformed",
      /entry 0/,
    ],
    [
      rawFrame(1, 0, [0, 1, 0, 0, 0, 1, ...offset, 0, 0, 0, 0, 4]),
      "malformed",
      /entry 0/,
    ],
    [
      rawFrame(3, 1, [3, 0x61, 0x20, 0x62, 0, 22, 0, 0, 0, 0]),
      "malformed",
      /host "a\?b" is not/,
    ],
    [rawFrame(3, 1, [1, 0x61, 0, 0, 0, 0, 0, 0]), "malformed", /port is 0/],
    [rawFrame(3, 1, [0, 0, 22, 0, 0, 0, 0]), "malformed", /host "" is not/],
  ];
  for (const [bytes, problem, message] of cases) {
    refused(bytes, problem, message);
  }
  // A whole DATA body of the bound may not hold more than the payload cap:
  // it cannot, since offset + payload is the bound itself.
  assert.equal(MAX_FRAME_BODY, 8 + MAX_DATA_PAYLOAD);
  assert.ok(MAX_RESUME_ENTRIES * 17 + SESSION_ID_BYTES + 3 <= MAX_FRAME_BODY);
});

Deno.test("session frame: the encoder refuses out-of-bound fields; clipReason makes any reason fit", () => {
  assert.throws(
    () => encodeFrame({ type: "reset", stream: 0, reason: "" }),
    RangeError,
  );
  assert.throws(
    () => encodeFrame({ type: "reset", stream: 1, reason: "x".repeat(513) }),
    RangeError,
  );
  assert.throws(
    () =>
      encodeFrame({
        type: "data",
        stream: 1,
        offset: 0,
        payload: new Uint8Array(MAX_DATA_PAYLOAD + 1),
      }),
    RangeError,
  );
  assert.throws(
    () =>
      encodeFrame({ type: "open", stream: 1, host: "a b", port: 1, window: 0 }),
    RangeError,
  );
  assert.throws(
    () =>
      encodeFrame({
        type: "open",
        stream: 1,
        host: "a",
        port: 70000,
        window: 0,
      }),
    RangeError,
  );
  assert.throws(
    () => encodeFrame({ type: "opened", stream: 1, window: -1 }),
    RangeError,
  );
  assert.throws(
    () => encodeFrame({ type: "eof", stream: 1, offset: 2 ** 53 }),
    RangeError,
  );
  assert.throws(
    () =>
      encodeFrame({ type: "hello", session: new Uint8Array(8), streams: [] }),
    RangeError,
  );
  const long = "é".repeat(400);
  const clipped = clipReason(long);
  assert.equal(new TextEncoder().encode(clipped).length, MAX_REASON_BYTES);
  assert.equal(clipReason("short"), "short");
  encodeFrame({ type: "reset", stream: 1, reason: clipped });
});

const streamId = fc.integer({ min: 1, max: 0xffff_ffff });
const offset = fc.integer({
  min: 0,
  max: Number.MAX_SAFE_INTEGER - MAX_DATA_PAYLOAD,
});
const win = fc.integer({ min: 0, max: MAX_WINDOW });
const reason = fc.string({ maxLength: 40 }).map(clipReason);
const resumeEntries = fc.uniqueArray(
  fc.record({
    stream: streamId,
    offset,
    window: win,
    eof: fc.boolean(),
    reset: fc.boolean(),
  }).map(({ reset, ...entry }) =>
    reset ? { ...entry, reset: true as const } : entry
  ),
  { maxLength: 6, selector: (e) => e.stream },
);
const sessionBytes = fc.uint8Array({
  minLength: SESSION_ID_BYTES,
  maxLength: SESSION_ID_BYTES,
});
const host = fc.oneof(
  fc.domain(),
  fc.ipV4(),
  fc.ipV6().filter((h) => !h.includes(".")),
);
const anyFrame: fc.Arbitrary<Frame> = fc.oneof(
  fc.record({ type: fc.constant("hello" as const), streams: resumeEntries }),
  fc.record({
    type: fc.constant("hello" as const),
    session: sessionBytes,
    streams: resumeEntries,
  }),
  fc.record({
    type: fc.constant("welcome" as const),
    session: sessionBytes,
    resume: fc.constantFrom(
      "new" as const,
      "resumed" as const,
      "refused" as const,
    ),
    streams: resumeEntries,
  }),
  fc.record({
    type: fc.constant("open" as const),
    stream: streamId,
    host,
    port: fc.integer({ min: 1, max: 65535 }),
    window: win,
  }),
  fc.record({
    type: fc.constant("opened" as const),
    stream: streamId,
    window: win,
  }),
  fc.record({
    type: fc.constant("refuse" as const),
    stream: streamId,
    code: fc.constantFrom(...REFUSE_CODES),
    reason,
  }),
  fc.record({
    type: fc.constant("data" as const),
    stream: streamId,
    offset,
    payload: fc.uint8Array({ maxLength: 300 }),
  }),
  fc.record({
    type: fc.constant("ack" as const),
    stream: streamId,
    offset,
    window: win,
    eof: fc.boolean(),
  }),
  fc.record({ type: fc.constant("eof" as const), stream: streamId, offset }),
  fc.record({ type: fc.constant("reset" as const), stream: streamId, reason }),
  fc.record({ type: fc.constant("goaway" as const), reason }),
);

Deno.test("fuzz: session frames decode to what was encoded, however the bytes are cut", () => {
  fc.assert(
    fc.property(
      fc.array(anyFrame, { maxLength: 8 }),
      fc.array(fc.integer({ min: 0, max: 64 }), { maxLength: 20 }),
      (frames, sizes) => {
        const bytes = concatAll(frames.map(encodeFrame));
        // structuredClone: fast-check's records have no prototype.
        assert.deepEqual(decodeChunks(bytes, sizes), structuredClone(frames));
      },
    ),
    SETTINGS,
  );
});

Deno.test("fuzz: session frame decoder throws only FrameError and stays within one frame", () => {
  // Valid frames with bytes flipped, and plain noise.
  const mutated = fc.tuple(
    fc.array(anyFrame, { minLength: 1, maxLength: 4 }),
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
      maxLength: 4,
    }),
  ).map(([frames, flips]) => {
    const bytes = concatAll(frames.map(encodeFrame));
    for (const [at, value] of flips) bytes[at % bytes.length] = value;
    return bytes;
  });
  fc.assert(
    fc.property(
      fc.oneof(mutated, fc.uint8Array({ maxLength: 200 })),
      fc.array(fc.integer({ min: 1, max: 32 }), { maxLength: 10 }),
      (bytes, sizes) => {
        const decoder = new FrameDecoder();
        let at = 0;
        try {
          for (const size of [...sizes, bytes.length]) {
            decoder.push(bytes.subarray(at, at + size));
            at += size;
            assert.ok(decoder.buffered < HEADER_BYTES + MAX_FRAME_BODY);
          }
        } catch (error) {
          assert.ok(error instanceof FrameError, String(error));
        }
      },
    ),
    SETTINGS,
  );
});

Deno.test("session frame: a full frame trickled a byte at a time decodes, holding only its own bytes", () => {
  const big = encodeFrame({
    type: "data",
    stream: 1,
    offset: 0,
    payload: new Uint8Array(MAX_DATA_PAYLOAD).fill(3),
  });
  const decoder = new FrameDecoder();
  const frames: Frame[] = [];
  // Each byte alone, as a peer trickling its bytes sends them.
  for (let i = 0; i < big.length; i++) {
    frames.push(...decoder.push(big.subarray(i, i + 1)));
    assert.equal(decoder.buffered, (i + 1) % big.length);
  }
  assert.equal(frames.length, 1);
  assert.deepEqual(frames[0], new FrameDecoder().push(big)[0]);
});

Deno.test("session frames: DATA as parts is the same bytes; a payload views a chunk handed over and copies one that is not", () => {
  const payload = Uint8Array.from({ length: 1000 }, (_, i) => i & 0xff);
  const frame: Frame = { type: "data", stream: 3, offset: 2 ** 40, payload };
  const parts = encodeFrameParts(frame);
  assert.equal(parts.length, 2);
  assert.equal(parts[1], payload, "the payload itself, not a copy");
  const whole = encodeFrame(frame);
  assert.deepEqual(new Uint8Array([...parts[0], ...parts[1]]), whole);
  const close: Frame = { type: "eof", stream: 3, offset: 7 };
  assert.deepEqual(encodeFrameParts(close), [encodeFrame(close)]);

  const chunk = whole.slice();
  const [owned] = new FrameDecoder().push(chunk, true);
  const [copied] = new FrameDecoder().push(chunk);
  assert.deepEqual(owned, frame);
  assert.deepEqual(copied, frame);
  chunk.fill(0, HEADER_BYTES + 8);
  assert.equal((owned as { payload: Uint8Array }).payload[1], 0);
  assert.equal((copied as { payload: Uint8Array }).payload[1], 1);
});
