/**
 * One stream's state (lib/session/stream.ts) with plain values: the send
 * buffer's bound, the peer's window, cumulative ACKs, byte-exact delivery
 * of repeated and overlapping DATA, EOF rules, the rewind after a
 * reconnect, and early data (the window held before a stream is accepted,
 * the restart of a stream whose OPEN was lost).
 */
import assert from "node:assert/strict";
import { SessionError } from "../lib/session/errors.ts";
import type { DataFrame } from "../lib/session/frame.ts";
import { ACK_STEP_BYTES, EARLY_WINDOW, Stream } from "../lib/session/stream.ts";

const bytes = (from: number, length: number) =>
  Uint8Array.from({ length }, (_, i) => (from + i) & 0xff);

function data(offset: number, length: number): DataFrame {
  return { type: "data", stream: 1, offset, payload: bytes(offset, length) };
}

function broken(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (error) => {
    assert.ok(error instanceof SessionError, String(error));
    assert.equal(error.problem, "protocol");
    assert.match(error.message, message);
    return true;
  });
}

Deno.test("session stream: the send buffer is bounded; a full one is not writable", () => {
  const stream = new Stream(1, { sendBufferBytes: 100 });
  assert.equal(stream.write(bytes(0, 60)), 60);
  assert.ok(stream.writable);
  assert.equal(stream.write(bytes(60, 60)), 40);
  assert.equal(stream.buffered, 100);
  assert.equal(stream.writable, false);
  assert.equal(stream.write(bytes(100, 1)), 0);
  // The session's room limits a write too.
  const other = new Stream(3, { sendBufferBytes: 100 });
  assert.equal(other.write(bytes(0, 50), 7), 7);
});

Deno.test("session stream: DATA goes out within the peer's window; ACKs free the buffer", () => {
  const stream = new Stream(1, { sendBufferBytes: 1000 });
  stream.write(bytes(0, 1000));
  assert.equal(stream.hasData, false, "no window before OPENED");
  stream.grant(300);
  const first = stream.takeData(200)!;
  assert.deepEqual([first.offset, first.payload.length], [0, 200]);
  const second = stream.takeData(200)!;
  assert.deepEqual([second.offset, second.payload.length], [200, 100]);
  assert.deepEqual(second.payload, bytes(200, 100));
  assert.equal(stream.takeData(200), undefined);
  stream.onAck({
    type: "ack",
    stream: 1,
    offset: 250,
    window: 500,
    eof: false,
  });
  assert.equal(stream.buffered, 750);
  const third = stream.takeData(10_000)!;
  assert.deepEqual([third.offset, third.payload.length], [300, 450]);
  assert.deepEqual(third.payload, bytes(300, 450));
  broken(
    () =>
      stream.onAck({
        type: "ack",
        stream: 1,
        offset: 751,
        window: 0,
        eof: false,
      }),
    /ACK of offset 751, only 750 bytes were sent/,
  );
  broken(
    () =>
      stream.onAck({
        type: "ack",
        stream: 1,
        offset: 10,
        window: 0,
        eof: true,
      }),
    /ACK of an EOF that was not sent/,
  );
  // An older ACK neither rewinds the buffer nor shrinks the window.
  stream.onAck({ type: "ack", stream: 1, offset: 100, window: 0, eof: false });
  assert.equal(stream.buffered, 750);
});

Deno.test("session stream: many small writes are kept in blocks and sent byte-exact", () => {
  const stream = new Stream(1, { sendBufferBytes: 100_000 });
  for (let at = 0; at < 50_000; at += 7) {
    stream.write(bytes(at, Math.min(7, 50_000 - at)));
  }
  stream.grant(100_000);
  const out: number[] = [];
  for (let frame; (frame = stream.takeData(4096));) out.push(...frame.payload);
  assert.deepEqual(Uint8Array.from(out), bytes(0, 50_000));
  stream.onAck({
    type: "ack",
    stream: 1,
    offset: 20_001,
    window: 0,
    eof: false,
  });
  stream.rewind({ stream: 1, offset: 30_000, window: 100_000, eof: false });
  const again = stream.takeData(100_000)!;
  assert.deepEqual(again.payload, bytes(30_000, 20_000));
});

Deno.test("session stream: repeated and overlapping DATA deliver each byte once", () => {
  const stream = new Stream(1, { receiveWindow: 1000 });
  assert.equal(stream.onData(data(0, 100)), 100);
  assert.equal(stream.onData(data(0, 100)), 0, "a whole repeat");
  assert.equal(stream.onData(data(50, 30)), 0, "inside what was received");
  assert.equal(
    stream.onData(data(60, 100)),
    60,
    "an overlap delivers its tail",
  );
  assert.equal(stream.onData(data(160, 0)), 0);
  assert.deepEqual(stream.read(), bytes(0, 160));
  broken(
    () => stream.onData(data(161, 1)),
    /offset 161, expected 160 \(bytes missing\)/,
  );
});

Deno.test("session stream: DATA past the window or past EOF is refused; reading opens the window", () => {
  const stream = new Stream(1, { receiveWindow: 100 });
  stream.onData(data(0, 100));
  broken(
    () => stream.onData(data(100, 1)),
    /overruns the window, which ends at 100/,
  );
  assert.deepEqual(stream.read(30), bytes(0, 30));
  assert.equal(stream.onData(data(100, 30)), 30);
  stream.onEof({ type: "eof", stream: 1, offset: 130 });
  stream.onEof({ type: "eof", stream: 1, offset: 130 }); // repeated: fine
  broken(() => stream.onData(data(130, 1)), /past the EOF at 130/);
  broken(
    () => stream.onEof({ type: "eof", stream: 1, offset: 131 }),
    /EOF was at 130/,
  );
  assert.equal(stream.ended, false);
  assert.equal(stream.read().length, 100);
  assert.equal(stream.ended, true);
  const early = new Stream(3);
  broken(
    () => early.onEof({ type: "eof", stream: 3, offset: 5 }),
    /EOF at 5, but 0 bytes/,
  );
});

Deno.test("session stream: ACKs are due after a quarter window, or any progress when idle", () => {
  const stream = new Stream(1, { receiveWindow: 400 });
  assert.equal(stream.ackDue(true), false);
  stream.onData(data(0, 99));
  assert.equal(stream.ackDue(false), false);
  assert.equal(stream.ackDue(true), true);
  stream.onData(data(99, 1));
  assert.equal(stream.ackDue(false), true);
  assert.deepEqual(stream.takeAck(), {
    type: "ack",
    stream: 1,
    offset: 100,
    window: 300,
    eof: false,
  });
  assert.equal(stream.ackDue(true), false);
  stream.read(100); // the window moved by 100: a quarter
  assert.deepEqual(stream.takeAck(), {
    type: "ack",
    stream: 1,
    offset: 100,
    window: 400,
    eof: false,
  });
  stream.onEof({ type: "eof", stream: 1, offset: 100 });
  assert.equal(stream.ackDue(false), true, "an EOF is acknowledged at once");
  assert.equal(stream.takeAck().eof, true);
});

Deno.test("session stream: in a large window an ACK is due after ACK_STEP_BYTES, not a quarter window", () => {
  const stream = new Stream(1, { receiveWindow: 4 << 20 });
  stream.onData(data(0, ACK_STEP_BYTES - 1));
  assert.equal(stream.ackDue(false), false);
  stream.onData(data(ACK_STEP_BYTES - 1, 1));
  assert.equal(stream.ackDue(false), true);
  assert.equal(stream.takeAck().offset, ACK_STEP_BYTES);
  stream.read(ACK_STEP_BYTES);
  assert.equal(stream.ackDue(false), true, "the window moved by a step");
  assert.equal(stream.takeAck().window, 4 << 20);
});

Deno.test("session stream: half-close, EOF after the data, done when both sides are acknowledged", () => {
  const stream = new Stream(1);
  stream.grant(1000);
  stream.write(bytes(0, 10));
  stream.finish();
  assert.throws(() => stream.write(bytes(0, 1)), SessionError);
  assert.equal(stream.eofDue, false, "data first");
  stream.takeData(100);
  assert.deepEqual(stream.takeEof(), { type: "eof", stream: 1, offset: 10 });
  assert.equal(stream.takeEof(), undefined);
  // The other direction goes on after this side's EOF.
  stream.onData(data(0, 5));
  stream.onAck({ type: "ack", stream: 1, offset: 10, window: 1000, eof: true });
  assert.equal(stream.done, false);
  stream.onEof({ type: "eof", stream: 1, offset: 5 });
  stream.read();
  assert.equal(stream.done, false, "the peer does not know yet its EOF came");
  stream.takeAck();
  assert.equal(stream.done, true);
});

Deno.test("session stream: rewind resends from the peer's offset, and the EOF it lacks", () => {
  const stream = new Stream(1);
  stream.grant(1000);
  stream.write(bytes(0, 500));
  stream.finish();
  stream.takeData(1000);
  stream.takeEof();
  stream.onAck({
    type: "ack",
    stream: 1,
    offset: 100,
    window: 1000,
    eof: false,
  });
  broken(
    () => stream.rewind({ stream: 1, offset: 99, window: 0, eof: false }),
    /outside the 100–500/,
  );
  broken(
    () => stream.rewind({ stream: 1, offset: 501, window: 0, eof: false }),
    /outside the 100–500/,
  );
  stream.rewind({ stream: 1, offset: 320, window: 100, eof: false });
  assert.equal(stream.buffered, 180);
  const frame = stream.takeData(1000)!;
  assert.deepEqual([frame.offset, frame.payload], [320, bytes(320, 100)]);
  assert.equal(stream.eofDue, false);
  stream.onAck({
    type: "ack",
    stream: 1,
    offset: 420,
    window: 1000,
    eof: false,
  });
  assert.deepEqual(stream.takeData(1000)!.payload, bytes(420, 80));
  assert.deepEqual(stream.takeEof(), { type: "eof", stream: 1, offset: 500 });
  const unsent = new Stream(3);
  broken(
    () => unsent.rewind({ stream: 3, offset: 0, window: 0, eof: true }),
    /EOF that was not sent/,
  );
});

Deno.test("session stream: before it is accepted, a stream holds the early window and grants no more", () => {
  const stream = new Stream(2, { receiveWindow: 64 * 1024 });
  stream.grant(64 * 1024);
  stream.holdEarly();
  assert.equal(stream.onData(data(0, EARLY_WINDOW - 10)), EARLY_WINDOW - 10);
  broken(
    () => stream.onData(data(EARLY_WINDOW - 10, 11)),
    /DATA up to 16385 before the stream was accepted overruns the early window of 16384 bytes/,
  );
  // Its receive state (for a resume) grants the early window only.
  assert.deepEqual(stream.resumeEntry(), {
    stream: 2,
    offset: EARLY_WINDOW - 10,
    window: 10,
    eof: false,
  });
  stream.accepted();
  assert.equal(stream.onData(data(EARLY_WINDOW - 10, 11)), 11);
  assert.equal(stream.takeAck().window, 64 * 1024 - EARLY_WINDOW - 1);
});

Deno.test("session stream: restart sends everything again from offset 0 within the early window, unless bytes were acknowledged", () => {
  const stream = new Stream(1);
  stream.grant(EARLY_WINDOW);
  stream.write(bytes(0, 20_000));
  stream.finish();
  assert.equal(stream.takeData(100_000)!.payload.length, EARLY_WINDOW);
  assert.equal(stream.hasData, false, "the early window is used up");
  assert.equal(stream.restart(), true);
  const again = stream.takeData(100_000)!;
  assert.deepEqual([again.offset, again.payload], [0, bytes(0, EARLY_WINDOW)]);
  // OPENED's window replaces the assumed one: the rest and the EOF go.
  stream.grant(256 * 1024);
  assert.deepEqual(
    stream.takeData(100_000)!.payload,
    bytes(EARLY_WINDOW, 20_000 - EARLY_WINDOW),
  );
  assert.deepEqual(stream.takeEof(), {
    type: "eof",
    stream: 1,
    offset: 20_000,
  });
  stream.onAck({ type: "ack", stream: 1, offset: 1, window: 1000, eof: false });
  assert.equal(stream.restart(), false, "byte 0 is no longer kept");
});
