/**
 * serve's own WebSocket (lib/serve/ws_transport.ts) on a real TCP pair,
 * the test as the client: what it writes (the head, then unmasked
 * frames), how it reads fragments, control frames and closes, its size
 * limit, its backlog, and a close the client never answers.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { TransportEnd } from "../lib/serve/transport.ts";
import { CLOSE_ANSWER_MS, WsConnection } from "../lib/serve/ws_transport.ts";
import {
  closePayload,
  encodeFrame,
  FrameDecoder,
  OPCODE,
  type WsEvent,
} from "../lib/ws/frame.ts";
import { bytes, readExactly, text, within, writeAll } from "./_util/net.ts";

const HEAD = "HTTP/1.1 101 Switching Protocols\r\n\r\n";
const MASK = Uint8Array.of(9, 8, 7, 6);

/** A client frame: masked, as RFC 6455 wants. */
function client(
  opcode: number,
  payload: Uint8Array,
  fin = true,
): Uint8Array {
  return encodeFrame(opcode, payload, { mask: MASK, fin });
}

/** A WsConnection on one end of a TCP pair; the other end is the client. */
async function pair(options: {
  initial?: Uint8Array;
  maxMessageBytes?: number;
  idleTimeoutMs?: number;
} = {}) {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [conn, accepted] = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
    listener.accept(),
  ]);
  const received: Uint8Array[] = [];
  let end: TransportEnd | undefined;
  const ended = Promise.withResolvers<TransportEnd>();
  const ws = new WsConnection(accepted, {
    head: bytes(HEAD),
    initial: options.initial,
    idleTimeoutMs: options.idleTimeoutMs ?? 60_000,
    peer: "test",
    maxMessageBytes: options.maxMessageBytes,
  });
  ws.start({
    bytes: (data) => received.push(data),
    ended: (each) => {
      assert.equal(end, undefined, "ended twice");
      end = each;
      ended.resolve(each);
    },
  });
  assert.equal(text(await readExactly(conn, HEAD.length)), HEAD);
  const decoder = new FrameDecoder({ masked: false });
  const pending: WsEvent[] = [];
  return {
    conn,
    ws,
    received,
    ended: ended.promise,
    /** The server's next frame, or `undefined` at the end of the connection. */
    async next(): Promise<WsEvent | undefined> {
      const chunk = new Uint8Array(64 * 1024);
      while (pending.length === 0) {
        const n = await within(
          conn.read(chunk).catch(() => null),
          10_000,
          "a frame",
        );
        if (n === null) return undefined;
        pending.push(...decoder.push(chunk.subarray(0, n)));
      }
      return pending.shift();
    },
    [Symbol.dispose]() {
      try {
        conn.close();
      } catch { /* closed */ }
    },
  };
}

Deno.test("WsConnection: unmasked binary messages out; a fragmented message joined around a ping, which is answered; close 1000 answered 1000, a clean end", async () => {
  using peer = await pair();
  peer.ws.send([bytes("WEL"), bytes("COME")]);
  assert.deepEqual(await peer.next(), {
    kind: "binary",
    data: bytes("WELCOME"),
  });
  await writeAll(
    peer.conn,
    new Uint8Array([
      ...client(OPCODE.binary, bytes("frag-one "), false),
      ...client(OPCODE.ping, bytes("p")),
      ...client(OPCODE.continuation, bytes("frag-two"), true),
    ]),
  );
  assert.deepEqual(await peer.next(), { kind: "pong", data: bytes("p") });
  await writeAll(peer.conn, client(OPCODE.close, closePayload(1000, "bye")));
  assert.deepEqual(await peer.next(), {
    kind: "close",
    code: 1000,
    reason: "",
  });
  assert.equal(await peer.next(), undefined);
  assert.deepEqual(await peer.ended, {
    clean: true,
    detail: "WebSocket (1000 bye)",
  });
  assert.deepEqual(peer.received.map(text), ["frag-one frag-two"]);
  await within(peer.ws.done, 5_000, "the connection's end");
});

Deno.test("WsConnection: bytes read with the head come first; a close without a code is answered without one (1005); a message over the limit is closed 1009", async () => {
  {
    using peer = await pair({
      initial: client(OPCODE.binary, bytes("early")),
    });
    await writeAll(peer.conn, client(OPCODE.close, new Uint8Array(0)));
    assert.deepEqual(await peer.next(), { kind: "close", reason: "" });
    assert.deepEqual(await peer.ended, {
      clean: false,
      detail: "WebSocket (1005)",
    });
    assert.deepEqual(peer.received.map(text), ["early"]);
  }
  {
    using peer = await pair({ maxMessageBytes: 1024 });
    await writeAll(peer.conn, client(OPCODE.binary, new Uint8Array(1025)));
    assert.deepEqual(await peer.next(), {
      kind: "close",
      code: 1009,
      reason: "a message larger than 1024 bytes",
    });
    assert.equal(await peer.next(), undefined);
    assert.equal((await peer.ended).clean, false);
    assert.equal(peer.received.length, 0);
  }
});

Deno.test("WsConnection: the backlog counts what is not written yet; a close the client never answers ends the connection after its limit", async () => {
  using peer = await pair();
  // The client reads nothing: writes pile up past the socket buffers.
  const message = new Uint8Array(1024 * 1024);
  for (let i = 0; i < 16; i++) peer.ws.send([message]);
  assert.ok(peer.ws.backlog > 8 * 1024 * 1024, `${peer.ws.backlog}`);
  const started = performance.now();
  peer.ws.close("shutdown", "server shutting down");
  const end = await within(peer.ended, 10_000, "the end");
  const ms = performance.now() - started;
  assert.ok(ms >= CLOSE_ANSWER_MS - 100, `ended after ${ms} ms`);
  assert.deepEqual(end, {
    clean: false,
    detail: "WebSocket (1001 the client did not answer the close)",
  });
  await within(peer.ws.done, 5_000, "the connection's end");
  assert.equal(peer.ws.backlog, 0);
});
