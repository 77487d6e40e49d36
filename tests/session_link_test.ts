/**
 * Two sessions, client and server, over an in-memory transport that can be
 * cut at any byte (frames in flight are lost, a frame may arrive half),
 * reconnected, and resumed through the server's SessionTable: byte-exact
 * delivery across cuts, fairness under a stalled reader, windows,
 * half-close, reset, refuse, expiry and hijack attempts.
 */
import assert from "node:assert/strict";
import { createHash, type Hash } from "node:crypto";
import fc from "npm:fast-check@4.3.0";
import { SessionError } from "../lib/session/errors.ts";
import {
  encodeFrame,
  type Frame,
  FrameDecoder,
  type HelloFrame,
  type WelcomeFrame,
} from "../lib/session/frame.ts";
import {
  EXPIRED_REASON,
  Session,
  type SessionEvent,
  type SessionOptions,
} from "../lib/session/session.ts";
import { DEFAULT_RECEIVE_WINDOW, EARLY_WINDOW } from "../lib/session/stream.ts";
import { type Attachment, SessionTable } from "../lib/session/table.ts";
import { pseudoRandomChunks, sha256Of } from "./_util/data.ts";

type Limits = Omit<SessionOptions, "role" | "now">;

/** Deterministic choices for a run (xorshift32). */
class Choices {
  #state: number;
  constructor(seed: number) {
    this.#state = seed >>> 0 || 1;
  }
  below(n: number): number {
    this.#state ^= this.#state << 13;
    this.#state ^= this.#state >>> 17;
    this.#state ^= this.#state << 5;
    return (this.#state >>> 0) % n;
  }
}

/** One direction of a transport: encoded frames in flight, then a decoder. */
class Wire {
  #flight: Uint8Array[] = [];
  #decoder = new FrameDecoder();

  send(frame: Frame): void {
    this.#flight.push(encodeFrame(frame));
  }

  get inFlight(): number {
    return this.#flight.reduce((n, chunk) => n + chunk.length, 0);
  }

  /** Delivers up to `max` bytes, possibly ending inside a frame. */
  deliver(max: number): Frame[] {
    const frames: Frame[] = [];
    while (max > 0 && this.#flight.length > 0) {
      const chunk = this.#flight[0];
      const n = Math.min(max, chunk.length);
      frames.push(...this.#decoder.push(chunk.subarray(0, n)));
      if (n === chunk.length) this.#flight.shift();
      else this.#flight[0] = chunk.subarray(n);
      max -= n;
    }
    return frames;
  }
}

/** A frame as it is after a trip over the wire. */
function overWire<F extends Frame>(frame: F): F {
  return new FrameDecoder().push(encodeFrame(frame))[0] as F;
}

/** A client session, the server's table, and the transport between them. */
class Link {
  time = 0;
  readonly table: SessionTable<number>;
  readonly client: Session;
  server!: Session;
  transport = 0;
  attachment!: Attachment<number>;
  up = new Wire();
  down = new Wire();
  live = false;
  /** Bytes in flight when the transport was cut. */
  lost = 0;
  readonly token: string;

  constructor(
    { client = {}, server = {}, token = "alice" }: {
      client?: Limits;
      server?: Limits;
      token?: string;
    } = {},
  ) {
    const now = () => this.time;
    let counter = 0;
    this.table = new SessionTable<number>({
      session: server,
      now,
      // Distinct ids without the system's randomness: the table only
      // needs them unpredictable in production.
      random: (bytes) => {
        counter++;
        bytes.fill(0);
        new DataView(bytes.buffer).setUint32(0, counter * 0x9e3779b1);
        bytes[15] = counter;
      },
    });
    this.client = new Session({ ...client, role: "client", now });
    this.token = token;
    this.connect();
  }

  /** A new transport: HELLO, WELCOME, and the sessions go on. */
  connect(): Attachment<number> {
    this.up = new Wire();
    this.down = new Wire();
    this.transport++;
    const hello = overWire(this.client.hello() as HelloFrame);
    this.attachment = this.table.hello(hello, this.token, this.transport);
    this.server = this.attachment.session;
    this.client.welcome(overWire(this.attachment.welcome));
    this.live = true;
    return this.attachment;
  }

  /** Cuts the transport: whatever is in flight is lost. */
  cut(): void {
    this.live = false;
    this.client.transportLost();
    this.table.detach(this.server, this.transport);
  }

  /**
   * Moves up to `frames` frames of each session onto the wire, then
   * delivers up to `bytes` bytes each way.
   *
   * @returns Whether anything moved.
   */
  pump(frames = 64, bytes = Infinity): boolean {
    if (!this.live) return false;
    let moved = false;
    for (let i = 0; i < frames; i++) {
      const up = this.client.nextFrame();
      const down = this.server.nextFrame();
      if (up) this.up.send(up);
      if (down) this.down.send(down);
      if (!up && !down) break;
      moved = true;
    }
    for (const frame of this.up.deliver(bytes)) {
      this.server.receive(frame);
      moved = true;
    }
    for (const frame of this.down.deliver(bytes)) {
      this.client.receive(frame);
      moved = true;
    }
    return moved;
  }
}

/** Writes a deterministic byte sequence into a stream as room allows. */
class Source {
  readonly expected: string;
  #chunks: Generator<Uint8Array>;
  #current: Uint8Array | undefined = new Uint8Array(0);
  #finished = false;

  constructor(seed: number, readonly total: number, chunk = 10_000) {
    this.expected = sha256Of(pseudoRandomChunks(seed, total, chunk));
    this.#chunks = pseudoRandomChunks(seed, total, chunk);
  }

  /** @returns Whether bytes were taken. */
  pump(session: Session, id: number): boolean {
    let moved = false;
    while (this.#current) {
      if (this.#current.length === 0) {
        this.#current = this.#chunks.next().value ?? undefined;
        continue;
      }
      const n = session.write(id, this.#current);
      moved ||= n > 0;
      this.#current = this.#current.subarray(n);
      if (this.#current.length > 0) return moved;
    }
    if (!this.#finished) {
      session.finish(id);
      this.#finished = true;
      moved = true;
    }
    return moved;
  }
}

/** Reads a stream and hashes what arrives. */
class Sink {
  #hash: Hash = createHash("sha256");
  received = 0;

  /** @returns Whether bytes were read. */
  pump(session: Session, id: number): boolean {
    let moved = false;
    for (let bytes; (bytes = session.read(id)).length > 0;) {
      this.#hash.update(bytes);
      this.received += bytes.length;
      moved = true;
    }
    return moved;
  }

  digest(): string {
    return this.#hash.digest("hex");
  }
}

/** Both directions of one stream, as the applications at each end see it. */
interface Pair {
  up: Source;
  down: Source;
  atServer: Sink;
  atClient: Sink;
  clientClosed: boolean;
  serverClosed: boolean;
}

interface TransferOptions {
  streams: number;
  bytes: (i: number) => number;
  seed: number;
  /** Steps after which the transport is cut, with bytes in flight. */
  cuts?: number;
  /** Streams whose server side does not read. */
  stalled?: Set<number>;
  /**
   * Steps the server's application takes to accept a stream, while the
   * client's first bytes arrive and cuts may come.
   */
  acceptAfter?: number;
  maxSteps?: number;
  /** Called after every step, to check bounds while the transfer runs. */
  check?: (link: Link, pairs: Map<number, Pair>) => void;
}

/**
 * Opens streams from the client, sends each way a pseudo-random sequence,
 * and runs until every stream is closed at both ends (or only stalled
 * ones are left), cutting the transport `cuts` times at random points.
 */
function transfer(link: Link, options: TransferOptions): Map<number, Pair> {
  const choices = new Choices(options.seed);
  const pairs = new Map<number, Pair>();
  for (let i = 0; i < options.streams; i++) {
    const id = link.client.open("origin.test", 1000 + i);
    const size = options.bytes(i);
    pairs.set(id, {
      up: new Source(options.seed * 7919 + i, size),
      down: new Source(options.seed * 104729 + i, size),
      atServer: new Sink(),
      atClient: new Sink(),
      clientClosed: false,
      serverClosed: false,
    });
  }
  const accepted = new Set<number>();
  // Streams the server was asked for, by the step it accepts them at.
  const asked = new Map<number, number>();
  // Cuts at evenly spread points of the transfer's progress, so that each
  // lands while bytes flow.
  // A stalled stream's upload never arrives, so it is not counted.
  const total = [...pairs].reduce(
    (n, [id, p]) =>
      n + (options.stalled?.has(id) ? 0 : p.up.total) + p.down.total,
    0,
  );
  const cuts = options.cuts ?? 0;
  const cutAt = Array.from(
    { length: cuts },
    (_, c) => Math.floor(total * (c + 1) / (cuts + 1)),
  );
  const progress = () =>
    [...pairs.values()].reduce(
      (n, p) => n + p.atServer.received + p.atClient.received,
      0,
    );
  const maxSteps = options.maxSteps ?? 100_000;
  const finished = () =>
    [...pairs].every(([id, p]) =>
      options.stalled?.has(id) || (p.clientClosed && p.serverClosed)
    );
  let idle = 0;
  for (let step = 0; step < maxSteps && !finished(); step++) {
    let moved = false;
    for (const event of link.server.drainEvents()) {
      moved = true;
      if (event.kind === "open") {
        asked.set(event.stream, step + (options.acceptAfter ?? 0));
      } else if (event.kind === "closed") {
        pairs.get(event.stream)!.serverClosed = true;
      } else if (event.kind === "reset") {
        throw new Error(`server stream ${event.stream} reset: ${event.reason}`);
      }
    }
    for (const event of link.client.drainEvents()) {
      moved = true;
      if (event.kind === "closed") pairs.get(event.stream)!.clientClosed = true;
      else if (event.kind === "reset" || event.kind === "refused") {
        throw new Error(
          `client stream ${event.stream}: ${JSON.stringify(event)}`,
        );
      }
    }
    for (const [id, at] of asked) {
      if (at > step) continue;
      asked.delete(id);
      link.server.accept(id);
      accepted.add(id);
      moved = true;
    }
    for (const [id, pair] of pairs) {
      if (!pair.clientClosed) {
        moved = pair.up.pump(link.client, id) || moved;
        moved = pair.atClient.pump(link.client, id) || moved;
      }
      if (accepted.has(id) && !pair.serverClosed) {
        moved = pair.down.pump(link.server, id) || moved;
        if (!options.stalled?.has(id)) {
          moved = pair.atServer.pump(link.server, id) || moved;
        }
      }
    }
    if (link.live && cutAt.length > 0 && progress() >= cutAt[0]) {
      cutAt.shift();
      // Frames leave the sessions, part of their bytes arrives (a frame
      // may be cut in two), the rest is lost.
      link.pump(1 + choices.below(40), 0);
      for (
        const frame of link.up.deliver(choices.below(link.up.inFlight + 1))
      ) {
        link.server.receive(frame);
      }
      for (
        const frame of link.down.deliver(choices.below(link.down.inFlight + 1))
      ) {
        link.client.receive(frame);
      }
      link.lost += link.up.inFlight + link.down.inFlight;
      link.cut();
      moved = true;
    } else if (!link.live) {
      link.connect();
      moved = true;
    } else {
      moved = link.pump(1 + choices.below(64), 1 + choices.below(300_000)) ||
        moved;
    }
    options.check?.(link, pairs);
    if (asked.size > 0) moved = true;
    idle = moved ? 0 : idle + 1;
    if (idle > 3) break;
  }
  for (const [id, pair] of pairs) {
    if (options.stalled?.has(id)) continue;
    assert.ok(
      pair.clientClosed && pair.serverClosed,
      `stream ${id} did not finish: client closed ${pair.clientClosed}, server closed ${pair.serverClosed}, received ${pair.atServer.received}/${pair.up.total} up, ${pair.atClient.received}/${pair.down.total} down`,
    );
    assert.equal(pair.atServer.digest(), pair.up.expected, `stream ${id} up`);
    assert.equal(
      pair.atClient.digest(),
      pair.down.expected,
      `stream ${id} down`,
    );
  }
  return pairs;
}

/** Runs the link until nothing moves; returns the events of each side. */
function settle(
  link: Link,
): { client: SessionEvent[]; server: SessionEvent[] } {
  const client: SessionEvent[] = [];
  const server: SessionEvent[] = [];
  for (let i = 0; i < 1000; i++) {
    const moved = link.pump();
    const c = link.client.drainEvents();
    const s = link.server.drainEvents();
    client.push(...c);
    server.push(...s);
    if (!moved && c.length === 0 && s.length === 0) break;
  }
  return { client, server };
}

Deno.test("session link: large random streams arrive byte-exact both ways across several cuts", () => {
  const link = new Link({
    client: { maxPayload: 8192 },
    server: { maxPayload: 8192 },
  });
  transfer(link, {
    streams: 6,
    bytes: (i) => 1_500_000 + i * 77_777,
    seed: 1,
    cuts: 6,
  });
  assert.equal(link.transport, 7, "six cuts, six reconnects");
  assert.ok(link.lost > 0, "frames were lost in flight");
  assert.equal(link.client.streamCount, 0);
  assert.equal(link.server.streamCount, 0);
  assert.equal(link.client.buffered + link.server.buffered, 0);
});

Deno.test("session link: many seeds, many cuts, small streams: exactly the bytes sent", () => {
  let lost = 0;
  for (let seed = 2; seed < 12; seed++) {
    const link = new Link({
      client: {
        receiveWindow: EARLY_WINDOW + 8192,
        sendBufferBytes: 12_000,
        maxPayload: 3000,
      },
      server: {
        receiveWindow: EARLY_WINDOW,
        sendBufferBytes: 5000,
        maxPayload: 1000,
      },
    });
    transfer(link, {
      streams: 1 + (seed % 5),
      bytes: (i) => (seed * 13_001 + i * 4099) % 60_000,
      seed,
      cuts: 12,
      // Some streams' first bytes wait at the server across cuts.
      acceptAfter: (seed % 4) * 5,
    });
    assert.ok(link.transport > 1);
    lost += link.lost;
  }
  assert.ok(lost > 0, "frames were lost in flight");
});

Deno.test("session link: 200 streams, one stalled reader, the other 199 finish; memory stays bounded", () => {
  const receiveWindow = 64 * 1024;
  const sendBufferBytes = 128 * 1024;
  const sessionBufferBytes = 1024 * 1024;
  const limits = {
    receiveWindow,
    sendBufferBytes,
    sessionBufferBytes,
    maxStreams: 256,
  };
  const link = new Link({ client: limits, server: limits });
  const stalled = new Set([1]);
  let peakUnread = 0;
  let peakBuffered = 0;
  const pairs = transfer(link, {
    streams: 200,
    bytes: () => 300_000,
    seed: 99,
    stalled,
    check: (link) => {
      peakUnread = Math.max(peakUnread, link.server.unread);
      peakBuffered = Math.max(peakBuffered, link.client.buffered);
      assert.ok(link.client.buffered <= sessionBufferBytes);
      assert.ok(link.server.buffered <= sessionBufferBytes);
    },
  });
  // The stalled stream holds one window at the server and its send buffer
  // at the client, and nothing else is left.
  const stuck = pairs.get(1)!;
  assert.equal(stuck.atServer.received, 0);
  assert.equal(link.server.unread, receiveWindow);
  assert.equal(link.client.buffered, sendBufferBytes);
  assert.equal(link.client.streamCount, 1);
  assert.ok(peakBuffered <= sessionBufferBytes);
  // Received bytes wait only within each stream's window.
  assert.ok(peakUnread <= 200 * receiveWindow);
  // Once read, the stalled stream finishes too.
  const rest = new Sink();
  for (let i = 0; i < 10_000 && link.client.streamCount > 0; i++) {
    rest.pump(link.server, 1);
    stuck.up.pump(link.client, 1);
    stuck.down.pump(link.server, 1);
    stuck.atClient.pump(link.client, 1);
    link.pump();
    link.client.drainEvents();
    link.server.drainEvents();
  }
  assert.equal(link.client.streamCount + link.server.streamCount, 0);
  assert.equal(rest.digest(), stuck.up.expected);
  assert.equal(stuck.atClient.digest(), stuck.down.expected);
});

Deno.test("session link: a window closes a stream's flow until its reader reads; writes fall short and wake up", () => {
  const window = EARLY_WINDOW;
  const link = new Link({
    client: { sendBufferBytes: 40_000 },
    server: { receiveWindow: window },
  });
  const id = link.client.open("origin.test", 22);
  settle(link);
  link.server.accept(id);
  settle(link);
  const payload = new Uint8Array(200_000).fill(7);
  assert.equal(link.client.write(id, payload), 40_000);
  settle(link);
  assert.equal(link.server.unread, window, "exactly the window");
  // ACKs of received bytes free the sender's buffer; the window does not open.
  assert.equal(link.client.buffered, 40_000 - window);
  assert.equal(link.client.write(id, payload), window);
  const events = settle(link);
  assert.deepEqual(events.client, []);
  assert.equal(link.server.read(id, window / 4).length, window / 4);
  // A quarter window was read: the ACK goes out, a quarter window more
  // comes and is acknowledged, and the writer has room again.
  const woke = settle(link);
  assert.deepEqual(woke.client, [{ kind: "writable", stream: id }]);
  assert.deepEqual(woke.server, [{ kind: "readable", stream: id }]);
  assert.equal(link.server.unread, window);
});

Deno.test("session link: half-close: one direction ends, the other goes on until it ends too", () => {
  const link = new Link();
  const id = link.client.open("origin.test", 5432);
  settle(link);
  link.server.accept(id);
  link.client.write(id, new TextEncoder().encode("request"));
  link.client.finish(id);
  let { client, server } = settle(link);
  assert.deepEqual(client, [{ kind: "opened", stream: id }]);
  assert.deepEqual(server, [
    { kind: "readable", stream: id },
    { kind: "eof", stream: id },
  ]);
  assert.equal(new TextDecoder().decode(link.server.read(id)), "request");
  assert.equal(link.server.ended(id), true);
  assert.throws(() => link.client.write(id, Uint8Array.of(1)), SessionError);
  // The server answers after the client's EOF.
  for (let i = 0; i < 5; i++) {
    link.server.write(id, new Uint8Array(20_000).fill(i));
  }
  ({ client, server } = settle(link));
  assert.equal(link.client.read(id).length, 100_000);
  assert.equal(link.client.ended(id), false);
  link.server.finish(id);
  ({ client, server } = settle(link));
  // Everything before the EOF was read already: the stream closes at once.
  assert.deepEqual(client, [
    { kind: "eof", stream: id },
    { kind: "closed", stream: id },
  ]);
  assert.deepEqual(server, [{ kind: "closed", stream: id }]);
  assert.equal(link.client.streamCount + link.server.streamCount, 0);
});

Deno.test("session link: a reset ends one stream at both ends with its reason; the others go on", () => {
  const link = new Link();
  const a = link.client.open("origin.test", 1);
  const b = link.client.open("origin.test", 2);
  settle(link);
  link.server.accept(a);
  link.server.accept(b);
  link.client.write(a, new Uint8Array(1000));
  link.client.write(b, new Uint8Array(1000));
  settle(link);
  link.server.reset(a, "destination closed the connection");
  link.client.write(b, new Uint8Array(1000));
  const { client, server } = settle(link);
  assert.deepEqual(client, [{
    kind: "reset",
    stream: a,
    reason: "destination closed the connection",
  }]);
  assert.deepEqual(server, [{ kind: "readable", stream: b }]);
  assert.throws(
    () => link.client.write(a, Uint8Array.of(1)),
    (e) => e instanceof SessionError && e.problem === "state",
  );
  assert.equal(link.server.read(b).length, 2000);
  assert.equal(link.client.streamCount, 1);
});

Deno.test("session link: refusals carry their code and reason; the stream cap refuses with limit", () => {
  const link = new Link({
    server: { maxStreams: 2 },
    client: { maxStreams: 3 },
  });
  const ids = [1, 2, 3].map((i) => link.client.open("origin.test", i));
  assert.throws(
    () => link.client.open("origin.test", 4),
    (e) =>
      e instanceof SessionError && e.problem === "limit" &&
      /3 streams are open/.test(e.message),
  );
  const first = settle(link);
  assert.deepEqual(first.server.map((e) => e.kind), ["open", "open"]);
  assert.deepEqual(first.client, [{
    kind: "refused",
    stream: ids[2],
    code: "limit",
    reason: "2 streams are open, the session's limit",
  }]);
  link.server.refuse(
    ids[0],
    "unreachable",
    "origin.test:1: connection refused",
  );
  link.server.accept(ids[1]);
  const { client } = settle(link);
  assert.deepEqual(client, [
    {
      kind: "refused",
      stream: ids[0],
      code: "unreachable",
      reason: "origin.test:1: connection refused",
    },
    { kind: "opened", stream: ids[1] },
  ]);
  assert.equal(link.client.streamCount, 1);
  assert.throws(() => link.server.accept(ids[0]), SessionError);
});

Deno.test("session link: OPEN and OPENED lost in a cut are sent again; data follows", () => {
  const link = new Link();
  const lostOpen = link.client.open("origin.test", 1);
  link.pump(64, 0); // OPEN leaves, nothing arrives
  link.cut();
  link.connect();
  const first = settle(link);
  assert.deepEqual(first.server, [{
    kind: "open",
    stream: lostOpen,
    host: "origin.test",
    port: 1,
  }]);
  link.server.accept(lostOpen);
  link.pump(64, 0); // OPENED leaves, nothing arrives
  link.cut();
  link.connect();
  link.client.write(lostOpen, Uint8Array.of(1, 2, 3));
  const second = settle(link);
  assert.deepEqual(second.client, [{ kind: "opened", stream: lostOpen }]);
  assert.deepEqual(second.server, [{ kind: "readable", stream: lostOpen }]);
  assert.deepEqual([...link.server.read(lostOpen)], [1, 2, 3]);
});

Deno.test("session link: a session not resumed within the window expires; its streams reset with the reason", () => {
  const link = new Link({ server: { resumeWindowMs: 30_000 } });
  const id = link.client.open("origin.test", 1);
  settle(link);
  link.server.accept(id);
  link.client.write(id, new Uint8Array(100));
  settle(link);
  const server = link.server;
  link.cut();
  link.time += 29_999;
  assert.deepEqual(link.table.sweep(), []);
  link.time += 1;
  const [expired, ...more] = link.table.sweep();
  assert.equal(more.length, 0);
  assert.equal(expired.session, server);
  assert.equal(expired.reason, EXPIRED_REASON);
  assert.equal(expired.token, "alice");
  assert.match(expired.label, /^[0-9a-f]{8}…$/);
  assert.deepEqual(server.drainEvents(), [{
    kind: "reset",
    stream: id,
    reason: "resume window expired",
  }]);
  assert.equal(link.table.size, 0);
  // The client comes back too late: a new session, its stream reset.
  const oldId = link.client.id!.slice();
  const attachment = link.connect();
  assert.equal(attachment.outcome, "refused");
  assert.equal(attachment.refusal, "unknown");
  assert.notDeepEqual(link.client.id, oldId);
  assert.deepEqual(link.client.drainEvents(), [{
    kind: "reset",
    stream: id,
    reason:
      "the server did not resume the session (its resume window passed, or it restarted)",
  }]);
  // The new session works.
  const next = link.client.open("origin.test", 2);
  assert.deepEqual(settle(link).server, [{
    kind: "open",
    stream: next,
    host: "origin.test",
    port: 2,
  }]);
});

Deno.test("session link: a resume within the window keeps the session; a live transport is never swept", () => {
  const link = new Link({ server: { resumeWindowMs: 30_000 } });
  link.cut();
  link.time += 29_000;
  assert.equal(link.connect().outcome, "resumed");
  link.time += 1_000_000;
  assert.deepEqual(link.table.sweep(), []);
});

Deno.test("session link: a session id under another token is refused like an unknown one (hijack)", () => {
  const link = new Link({ token: "alice" });
  const id = link.client.open("origin.test", 1);
  settle(link);
  link.server.accept(id);
  settle(link);
  const stolen = link.client.id!;
  const alice = link.server;
  const hijack: HelloFrame = { type: "hello", session: stolen, streams: [] };
  const attempt = link.table.hello(overWire(hijack), "mallory", 99);
  assert.equal(attempt.outcome, "refused");
  assert.equal(attempt.refusal, "token");
  assert.equal(attempt.replaced, undefined);
  assert.notEqual(attempt.session, alice);
  assert.notDeepEqual(attempt.welcome.session, stolen);
  assert.deepEqual(attempt.welcome.streams, []);
  // Exactly what an unknown id gets, so ids cannot be probed.
  const unknown = link.table.hello(
    { type: "hello", session: new Uint8Array(16).fill(0xee), streams: [] },
    "mallory",
    100,
  );
  const shape = (w: WelcomeFrame) => ({ ...w, session: w.session.length });
  assert.deepEqual(shape(attempt.welcome), shape(unknown.welcome));
  // Alice's session and transport are untouched.
  link.client.write(id, Uint8Array.of(5));
  assert.deepEqual(settle(link).server, [{ kind: "readable", stream: id }]);
  assert.equal(link.server, alice);
});

Deno.test("session link: a second HELLO with the same token takes the session over; the old transport gets GOAWAY", () => {
  const link = new Link();
  const id = link.client.open("origin.test", 1);
  settle(link);
  link.server.accept(id);
  settle(link);
  const oldTransport = link.transport;
  // The client reconnects while the server still holds the old transport.
  link.client.transportLost();
  const attachment = link.connect();
  assert.equal(attachment.outcome, "resumed");
  assert.deepEqual(attachment.replaced, {
    transport: oldTransport,
    goaway: {
      type: "goaway",
      reason: "the session moved to a newer transport",
    },
  });
  // The old transport closing late does not take the session down.
  link.table.detach(link.server, oldTransport);
  assert.equal(link.server.connected, true);
  link.client.write(id, Uint8Array.of(9));
  assert.deepEqual(settle(link).server, [{ kind: "readable", stream: id }]);
  // GOAWAY reaches the application as an event.
  link.server.goaway("shutting down");
  assert.deepEqual(settle(link).client, [{
    kind: "goaway",
    reason: "shutting down",
  }]);
});

Deno.test("session link: the session table is bounded; expired and removed sessions make room", () => {
  let time = 0;
  const table = new SessionTable<number>({
    maxSessions: 2,
    now: () => time,
    session: { resumeWindowMs: 10 },
  });
  const first = table.hello({ type: "hello", streams: [] }, "a", 1);
  const second = table.hello({ type: "hello", streams: [] }, "a", 2);
  const full = () =>
    assert.throws(
      () => table.hello({ type: "hello", streams: [] }, "a", 3),
      (e) =>
        e instanceof SessionError && e.problem === "limit" &&
        /2 sessions are kept/.test(e.message),
    );
  full();
  table.remove(first.session);
  assert.equal(table.size, 1);
  const third = table.hello({ type: "hello", streams: [] }, "a", 3);
  full();
  // A session waiting past its resume window is swept to make room.
  table.detach(second.session, 2);
  time += 10;
  table.hello({ type: "hello", streams: [] }, "a", 4);
  assert.equal(table.size, 2);
  assert.equal(third.session.expired, false);
  // ...and reported by the next sweep, for the log.
  assert.deepEqual(
    table.sweep().map((e) => [e.session, e.reason]),
    [[second.session, "resume window expired"]],
  );
  assert.deepEqual(table.sweep(), []);
  // Ids come from the system's randomness by default, 16 bytes each.
  assert.notDeepEqual(first.welcome.session, third.welcome.session);
  assert.equal(first.welcome.session.length, 16);
});

Deno.test("session link: frames that break the session's rules are protocol errors", () => {
  const link = new Link();
  const protocol = (frame: Frame, message: RegExp) =>
    assert.throws(
      () => link.server.receive(frame),
      (e) =>
        e instanceof SessionError && e.problem === "protocol" &&
        message.test(e.message),
    );
  protocol(
    { type: "open", stream: 2, host: "h", port: 1, window: 1 },
    /not the peer's to open/,
  );
  protocol(
    { type: "data", stream: 7, offset: 0, payload: new Uint8Array(1) },
    /never opened/,
  );
  protocol({ type: "hello", streams: [] }, /in the middle of a session/);
  const id = link.client.open("origin.test", 1);
  settle(link);
  protocol(
    { type: "open", stream: id, host: "h", port: 1, window: 1 },
    /in use/,
  );
  protocol(
    { type: "opened", stream: id, window: 1 },
    /for a stream the peer opened/,
  );
  // Frames for a stream that was reset here are dropped quietly.
  link.server.reset(id, "no");
  link.server.receive({
    type: "data",
    stream: id,
    offset: 0,
    payload: new Uint8Array(1),
  });
});

Deno.test("session link: DATA of busy streams goes out in turn, one frame each", () => {
  const link = new Link({ client: { maxPayload: 1000 } });
  const ids = [1, 2, 3].map((i) => link.client.open("origin.test", i));
  settle(link);
  for (const id of ids) link.server.accept(id);
  settle(link);
  // The first stream has far more to send; it still gets one frame a turn.
  link.client.write(ids[0], new Uint8Array(200_000));
  link.client.write(ids[1], new Uint8Array(5000));
  link.client.write(ids[2], new Uint8Array(5000));
  const order: number[] = [];
  for (let i = 0; i < 9; i++) {
    const frame = link.client.nextFrame()!;
    assert.equal(frame.type, "data");
    order.push((frame as { stream: number }).stream);
  }
  assert.deepEqual(order, [1, 3, 5, 1, 3, 5, 1, 3, 5]);
});

Deno.test("session link: a DATA frame received twice is delivered once", () => {
  const link = new Link();
  const id = link.client.open("origin.test", 1);
  settle(link);
  link.server.accept(id);
  settle(link);
  link.client.write(id, Uint8Array.of(1, 2, 3));
  const frame = link.client.nextFrame()!;
  assert.equal(frame.type, "data");
  link.server.receive(overWire(frame));
  link.server.receive(overWire(frame));
  assert.deepEqual(link.server.drainEvents(), [{
    kind: "readable",
    stream: id,
  }]);
  assert.deepEqual([...link.server.read(id)], [1, 2, 3]);
  assert.equal(link.server.unread, 0);
});

Deno.test("session link: a peer that opens past the cap and reads no refusal is cut off", () => {
  const server = new Session({ role: "server", maxStreams: 1 });
  server.connect();
  assert.throws(() => {
    for (let id = 1; id < 1000; id += 2) {
      server.receive({
        type: "open",
        stream: id,
        host: "h",
        port: 1,
        window: EARLY_WINDOW,
      });
    }
  }, (e) =>
    e instanceof SessionError && e.problem === "limit" &&
    /without reading the refusals/.test(e.message));
});

Deno.test("session link: the client's session expires too; an expired session takes no more work", () => {
  const link = new Link({ client: { resumeWindowMs: 1000 } });
  const id = link.client.open("origin.test", 1);
  settle(link);
  link.cut();
  link.time += 999;
  assert.equal(link.client.expired, false);
  link.time += 1;
  assert.equal(link.client.expired, true);
  link.client.expire();
  assert.deepEqual(link.client.drainEvents(), [{
    kind: "reset",
    stream: id,
    reason: EXPIRED_REASON,
  }]);
  const dead = (fn: () => unknown) =>
    assert.throws(
      fn,
      (e) => e instanceof SessionError && e.problem === "state",
    );
  dead(() => link.client.open("origin.test", 2));
  dead(() => link.client.resume([]));
  dead(() =>
    link.client.welcome({
      type: "welcome",
      session: new Uint8Array(16),
      resume: "new",
      streams: [],
    })
  );
});

Deno.test("fuzz: session streams arrive byte-exact whatever the sizes, windows and cuts", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 2 ** 31 - 1 }),
      fc.array(fc.integer({ min: 0, max: 40_000 }), {
        minLength: 1,
        maxLength: 4,
      }),
      fc.integer({ min: 0, max: 8 }),
      fc.integer({ min: EARLY_WINDOW, max: 65_536 }),
      fc.integer({ min: 1024, max: 32_768 }),
      fc.integer({ min: 1, max: 20_000 }),
      fc.integer({ min: 0, max: 30 }),
      (
        seed,
        sizes,
        cuts,
        receiveWindow,
        sendBufferBytes,
        maxPayload,
        acceptAfter,
      ) => {
        const limits = {
          receiveWindow,
          sendBufferBytes,
          maxPayload: Math.min(maxPayload, 65_536),
        };
        const link = new Link({ client: limits, server: limits });
        transfer(link, {
          streams: sizes.length,
          bytes: (i) => sizes[i],
          seed,
          cuts,
          acceptAfter,
        });
        assert.equal(link.client.streamCount + link.server.streamCount, 0);
      },
    ),
    { numRuns: Number(Deno.env.get("FUZZ_RUNS") ?? 40), seed: 20261205 },
  );
});

Deno.test("session link: a stalled reader across cuts keeps its bytes; the other streams finish", () => {
  const limits = { receiveWindow: 16_384, sendBufferBytes: 32_768 };
  const link = new Link({ client: limits, server: limits });
  const pairs = transfer(link, {
    streams: 20,
    bytes: (i) => 100_000 + i * 1000,
    seed: 77,
    cuts: 5,
    stalled: new Set([3]),
  });
  assert.equal(link.transport, 6);
  assert.equal(link.server.unread, 16_384, "one window, kept across cuts");
  const stuck = pairs.get(3)!;
  const sink = new Sink();
  for (let i = 0; i < 10_000 && link.client.streamCount > 0; i++) {
    sink.pump(link.server, 3);
    stuck.up.pump(link.client, 3);
    stuck.down.pump(link.server, 3);
    stuck.atClient.pump(link.client, 3);
    link.pump();
    link.client.drainEvents();
    link.server.drainEvents();
  }
  assert.equal(link.client.streamCount + link.server.streamCount, 0);
  assert.equal(sink.digest(), stuck.up.expected);
  assert.equal(stuck.atClient.digest(), stuck.down.expected);
});

/** Opens a stream from the client and has the server accept it. */
function openStream(link: Link, port = 1): number {
  const id = link.client.open("origin.test", port);
  settle(link);
  link.server.accept(id);
  settle(link);
  return id;
}

Deno.test("session link: a RESET lost in a cut arrives after the resume, with its reason", () => {
  const link = new Link();
  const id = openStream(link);
  link.client.write(id, new Uint8Array(5000));
  settle(link);
  link.server.reset(id, "destination unreachable: host down");
  link.pump(64, 0); // the RESET leaves and is lost
  link.cut();
  link.connect();
  const { client, server } = settle(link);
  assert.deepEqual(client, [{
    kind: "reset",
    stream: id,
    reason: "destination unreachable: host down",
  }]);
  assert.deepEqual(server, []);
  assert.equal(link.client.streamCount + link.server.streamCount, 0);
});

Deno.test("session link: a reset made while the transport is down, before or after HELLO, reaches the peer", () => {
  const link = new Link();
  const before = openStream(link, 1);
  const after = openStream(link, 2);
  link.cut();
  link.client.reset(before, "client gave up (before HELLO)");
  // The reconnect by hand, to reset between HELLO and WELCOME.
  link.up = new Wire();
  link.down = new Wire();
  link.transport++;
  const hello = overWire(link.client.hello() as HelloFrame);
  link.client.reset(after, "client gave up (after HELLO)");
  const attachment = link.table.hello(hello, link.token, link.transport);
  assert.equal(attachment.outcome, "resumed");
  link.client.welcome(overWire(attachment.welcome));
  link.live = true;
  const { server } = settle(link);
  assert.deepEqual(server, [
    { kind: "reset", stream: before, reason: "client gave up (before HELLO)" },
    { kind: "reset", stream: after, reason: "client gave up (after HELLO)" },
  ]);
  assert.equal(link.server.streamCount, 0);
});

Deno.test("session link: a stream the peer finished before a cut can still be read to its end after the resume", () => {
  const link = new Link();
  const id = openStream(link);
  link.client.write(id, new Uint8Array(3000).fill(1));
  link.client.finish(id);
  link.server.write(id, new Uint8Array(7000).fill(2));
  link.server.finish(id);
  // The server reads everything; the client reads nothing yet.
  for (let i = 0; i < 20; i++) {
    link.server.read(id);
    link.pump(1);
  }
  const events = link.server.drainEvents();
  assert.ok(events.some((e) => e.kind === "closed"), JSON.stringify(events));
  assert.equal(link.server.streamCount, 0);
  // The client's last ACK is lost in the cut.
  link.pump(64, 0);
  link.cut();
  link.connect();
  settle(link);
  assert.equal(link.client.read(id).length, 7000);
  assert.equal(link.client.ended(id), true);
  assert.deepEqual(link.client.drainEvents().at(-1), {
    kind: "closed",
    stream: id,
  });
  assert.equal(link.client.streamCount, 0);
});

Deno.test("session link: frames are refused while no transport carries the session", () => {
  const link = new Link();
  const id = openStream(link);
  link.cut();
  assert.throws(
    () =>
      link.client.receive({
        type: "data",
        stream: id,
        offset: 0,
        payload: new Uint8Array(1),
      }),
    (e) =>
      e instanceof SessionError && e.problem === "state" &&
      /without a transport/.test(e.message),
  );
  assert.equal(link.client.nextFrame(), undefined);
});

/** The frames a session has to send now, without sending them anywhere. */
function drainFrames(session: Session): Frame[] {
  const frames: Frame[] = [];
  for (let frame; (frame = session.nextFrame());) frames.push(frame);
  return frames;
}

Deno.test("session link: early data: the first bytes and the EOF go right behind OPEN, wait at the server unacknowledged, and are read once it accepts", () => {
  const link = new Link();
  const id = link.client.open("origin.test", 80);
  link.client.write(id, new TextEncoder().encode("GET / HTTP/1.0\r\n\r\n"));
  link.client.finish(id);
  const sent = drainFrames(link.client);
  assert.deepEqual(sent.map((f) => f.type), ["open", "data", "eof"]);
  for (const frame of sent) link.server.receive(overWire(frame));
  assert.deepEqual(link.server.drainEvents(), [
    { kind: "open", stream: id, host: "origin.test", port: 80 },
    { kind: "readable", stream: id },
    { kind: "eof", stream: id },
  ]);
  // Nothing goes back before the application answers: no ACK, which
  // would grant the whole window before OPENED.
  assert.deepEqual(drainFrames(link.server), []);
  link.server.accept(id);
  const answer = drainFrames(link.server);
  assert.deepEqual(answer.map((f) => f.type), ["opened", "ack"]);
  assert.deepEqual(answer[1], {
    type: "ack",
    stream: id,
    offset: 18,
    window: DEFAULT_RECEIVE_WINDOW - 18,
    eof: true,
  });
  assert.equal(
    new TextDecoder().decode(link.server.read(id)),
    "GET / HTTP/1.0\r\n\r\n",
  );
  assert.equal(link.server.ended(id), true);
  for (const frame of answer) link.client.receive(overWire(frame));
  assert.deepEqual(link.client.drainEvents(), [{ kind: "opened", stream: id }]);
  assert.equal(link.client.buffered, 0, "the early bytes were acknowledged");
});

Deno.test("session link: early data: the opener sends the early window before OPENED, the rest after it, byte-exact", () => {
  const link = new Link();
  const id = link.client.open("origin.test", 80);
  const payload = new Uint8Array(100_000).map((_, i) => i * 7);
  assert.equal(link.client.write(id, payload), payload.length);
  const early = drainFrames(link.client);
  assert.equal(
    early.reduce((n, f) => n + (f.type === "data" ? f.payload.length : 0), 0),
    EARLY_WINDOW,
    "exactly the early window before OPENED",
  );
  // Those frames are in flight; the server has not accepted yet.
  for (const frame of early) link.up.send(frame);
  settle(link);
  assert.equal(link.server.unread, EARLY_WINDOW);
  link.server.accept(id);
  const received: Uint8Array[] = [];
  for (let i = 0; i < 100 && link.client.buffered > 0; i++) {
    received.push(link.server.read(id));
    settle(link);
  }
  received.push(link.server.read(id));
  const joined = new Uint8Array(payload.length);
  let at = 0;
  for (const part of received) {
    joined.set(part, at);
    at += part.length;
  }
  assert.equal(at, payload.length);
  assert.deepEqual(joined, payload);
});

Deno.test("session link: early data past the early window, before the stream is accepted, is a protocol error", () => {
  const server = new Session({ role: "server" });
  server.connect();
  server.receive({
    type: "open",
    stream: 1,
    host: "h",
    port: 1,
    window: EARLY_WINDOW,
  });
  server.receive({
    type: "data",
    stream: 1,
    offset: 0,
    payload: new Uint8Array(EARLY_WINDOW),
  });
  assert.throws(
    () =>
      server.receive({
        type: "data",
        stream: 1,
        offset: EARLY_WINDOW,
        payload: new Uint8Array(1),
      }),
    (e) =>
      e instanceof SessionError && e.problem === "protocol" &&
      /before the stream was accepted overruns the early window of 16384/.test(
        e.message,
      ),
  );
});

Deno.test("session link: early data of a refused stream is dropped with it; late frames for it are ignored", () => {
  const link = new Link();
  const id = link.client.open("origin.test", 25);
  link.client.write(id, new Uint8Array(40_000).fill(3));
  // The OPEN and the first DATA frame arrive; the rest is still to come.
  const [open, first, ...rest] = drainFrames(link.client);
  link.server.receive(overWire(open));
  link.server.receive(overWire(first));
  assert.equal(link.server.unread, first.type === "data" ? 16_384 : -1);
  link.server.drainEvents();
  link.server.refuse(id, "not-allowed", "origin.test:25 is not allowed");
  assert.equal(link.server.unread, 0, "the held bytes are gone");
  assert.equal(link.server.streamCount, 0);
  for (const frame of rest) link.server.receive(overWire(frame));
  assert.deepEqual(link.server.drainEvents(), []);
  const { client } = settle(link);
  assert.deepEqual(client, [{
    kind: "refused",
    stream: id,
    code: "not-allowed",
    reason: "origin.test:25 is not allowed",
  }]);
  assert.equal(link.client.buffered, 0, "nothing is kept for a refused stream");
  assert.equal(link.client.streamCount, 0);
});

Deno.test("session link: a lost OPEN is sent again with its early bytes from offset 0, byte-exact, then the rest", () => {
  const link = new Link();
  const id = link.client.open("origin.test", 1);
  const payload = new Uint8Array(30_000).map((_, i) => i * 31 + 5);
  link.client.write(id, payload);
  link.client.finish(id);
  link.pump(64, 0); // OPEN and the early DATA leave; nothing arrives
  link.cut();
  link.connect();
  const resent = drainFrames(link.client);
  assert.deepEqual(
    resent.map((f) => [f.type, f.type === "data" ? f.offset : -1]),
    [["open", -1], ["data", 0]],
    "OPEN again, then DATA from 0 up to the early window",
  );
  for (const frame of resent) link.up.send(frame);
  const first = settle(link);
  assert.deepEqual(first.server.map((e) => e.kind), ["open", "readable"]);
  link.server.accept(id);
  const got: number[] = [];
  for (let i = 0; i < 20 && !link.server.ended(id); i++) {
    got.push(...link.server.read(id));
    settle(link);
  }
  assert.deepEqual(new Uint8Array(got), payload);
});

Deno.test("session link: a cut after part of the early bytes arrived resumes from the server's offset, still within the early window", () => {
  const link = new Link({ client: { maxPayload: 2000 } });
  const id = link.client.open("origin.test", 1);
  const payload = new Uint8Array(50_000).map((_, i) => i % 251);
  link.client.write(id, payload);
  link.pump(64, 0);
  // The OPEN and some of the early bytes arrive, cut inside a frame.
  for (const frame of link.up.deliver(5000)) link.server.receive(frame);
  const held = link.server.unread;
  assert.ok(held > 0 && held < EARLY_WINDOW, `${held} bytes held`);
  link.cut();
  link.connect();
  // The client goes on from what the server has, up to the early window
  // and no further (more would be a protocol error at the server).
  settle(link);
  assert.equal(link.server.unread, EARLY_WINDOW);
  link.server.accept(id);
  const got: number[] = [];
  for (let i = 0; i < 20 && got.length < payload.length; i++) {
    got.push(...link.server.read(id));
    settle(link);
  }
  assert.deepEqual(new Uint8Array(got), payload);
});

Deno.test("session link: receive windows below the early window are refused, configured or announced", () => {
  assert.throws(
    () => new Session({ role: "client", receiveWindow: EARLY_WINDOW - 1 }),
    (e) => e instanceof RangeError && /at least 16384/.test(e.message),
  );
  const link = new Link();
  const protocol = (receiver: Session, frame: Frame) =>
    assert.throws(
      () => receiver.receive(frame),
      (e) =>
        e instanceof SessionError && e.problem === "protocol" &&
        /window of 4096 bytes, below the early window of 16384/.test(
          e.message,
        ),
    );
  protocol(link.server, {
    type: "open",
    stream: 1,
    host: "h",
    port: 1,
    window: 4096,
  });
  const id = link.client.open("origin.test", 1);
  settle(link);
  protocol(link.client, { type: "opened", stream: id, window: 4096 });
});

Deno.test("session link: windows larger than the sender's buffer keep a bulk transfer flowing on ACKs of full steps alone", () => {
  // The endpoint sends ACKs of small progress only after ACK_DELAY_MS;
  // here no such ACK ever goes (nextFrame(false)), as in a bulk transfer
  // where the timer is what would have to unstick it.
  // The sender keeps 256 KiB unacknowledged (an older client's default).
  for (const receiveWindow of [2 << 20, 4 << 20]) {
    const link = new Link({
      client: { receiveWindow, sendBufferBytes: 256 * 1024 },
      server: { receiveWindow },
    });
    const id = link.client.open("origin.test", 9);
    settle(link);
    link.server.accept(id);
    settle(link);
    const total = 16 << 20;
    const source = new Source(receiveWindow, total, 256 * 1024);
    const sink = new Sink();
    for (let step = 0; step < 10_000 && sink.received < total; step++) {
      source.pump(link.client, id);
      for (let f; (f = link.client.nextFrame(false));) {
        link.server.receive(overWire(f));
      }
      sink.pump(link.server, id);
      for (let f; (f = link.server.nextFrame(false));) {
        link.client.receive(overWire(f));
      }
      link.client.drainEvents();
      link.server.drainEvents();
    }
    assert.equal(
      sink.received,
      total,
      `window ${receiveWindow}: ${sink.received} of ${total} bytes arrived`,
    );
    assert.equal(sink.digest(), source.expected);
  }
});
