import assert from "node:assert/strict";
import {
  buildPollRequest,
  DownstreamQueue,
  MAX_RECEIVE_BYTES,
  newPollId,
  parseSeq,
  readPollRequest,
  seqStanding,
} from "../lib/poll/wire.ts";
import {
  retriesWebSocket,
  upgradeDidNotHappen,
  WS_RETRY_MS,
} from "../lib/route/transport_choice.ts";
import { NoSessionProtocolError } from "../lib/proxy/ws_connect.ts";
import { WsRefusedError } from "../lib/errors.ts";
import { ChunkQueue } from "../lib/net/chunk_queue.ts";

const ID = "0123456789abcdef0123456789abcdef";

function headers(values: Record<string, string>) {
  return (name: string) => values[name] ?? null;
}

Deno.test("poll wire: poll ids are 32 hex digits of 16 random bytes", () => {
  assert.equal(newPollId((bytes) => bytes.fill(0xab)), "ab".repeat(16));
  const ids = new Set(Array.from({ length: 100 }, () => newPollId()));
  assert.equal(ids.size, 100);
  for (const id of ids) assert.match(id, /^[0-9a-f]{32}$/);
});

Deno.test("poll wire: requests are read with their kind, id and sequence number", () => {
  assert.deepEqual(
    readPollRequest("POST", headers({ "x-httptunneling-poll": "open" })),
    { kind: "open" },
  );
  assert.deepEqual(
    readPollRequest(
      "GET",
      headers({
        "x-httptunneling-poll": "Receive",
        "x-httptunneling-poll-id": ID.toUpperCase(),
        "x-httptunneling-seq": "42",
      }),
    ),
    { kind: "receive", id: ID, seq: 42 },
  );
  assert.deepEqual(
    readPollRequest(
      "POST",
      headers({
        "x-httptunneling-poll": "close",
        "x-httptunneling-poll-id": ID,
      }),
    ),
    { kind: "close", id: ID },
  );
});

Deno.test("poll wire: malformed requests are refused with what to fix", () => {
  const cases: [string, Record<string, string>, RegExp][] = [
    ["POST", { "x-httptunneling-poll": "upgrade" }, /open, send, receive/],
    ["GET", { "x-httptunneling-poll": "open" }, /open poll request is a POST/],
    ["POST", { "x-httptunneling-poll": "send" }, /32 hex digits/],
    [
      "POST",
      { "x-httptunneling-poll": "send", "x-httptunneling-poll-id": "abc" },
      /32 hex digits/,
    ],
    [
      "POST",
      { "x-httptunneling-poll": "send", "x-httptunneling-poll-id": ID },
      /Seq must be a whole number/,
    ],
    [
      "GET",
      {
        "x-httptunneling-poll": "receive",
        "x-httptunneling-poll-id": ID,
        "x-httptunneling-seq": "-1",
      },
      /Seq must be a whole number/,
    ],
  ];
  for (const [method, values, message] of cases) {
    const read = readPollRequest(method, headers(values));
    assert.equal(typeof read, "string", JSON.stringify(values));
    assert.match(read as string, message);
  }
});

Deno.test("poll wire: sequence numbers are bounded, and a repeat is told from a gap", () => {
  assert.equal(parseSeq("0"), 0);
  assert.equal(parseSeq(" 9007199254740991 "), Number.MAX_SAFE_INTEGER);
  assert.equal(parseSeq("9007199254740992"), undefined);
  assert.equal(parseSeq("12345678901234567"), undefined);
  assert.equal(parseSeq("1e3"), undefined);
  assert.equal(parseSeq(null), undefined);
  assert.equal(seqStanding(0, 0), "next");
  assert.equal(seqStanding(5, 4), "repeat");
  assert.equal(seqStanding(5, 3), "gap");
  assert.equal(seqStanding(5, 6), "gap");
  assert.equal(seqStanding(0, -1), "gap");
});

Deno.test("poll wire: a request head carries the token, kind, id, sequence and length", () => {
  const head = buildPollRequest({
    server: { host: "tunnel.example.org", port: 443 },
    path: "/t",
    token: "secret-token",
    kind: "send",
    id: ID,
    seq: 7,
    bodyBytes: 1234,
  });
  assert.ok(
    head.startsWith("POST /t HTTP/1.1\r\nHost: tunnel.example.org:443\r\n"),
  );
  assert.ok(head.endsWith("\r\n\r\n"));
  for (
    const line of [
      "Authorization: Bearer secret-token",
      "X-Httptunneling-Poll: send",
      `X-Httptunneling-Poll-Id: ${ID}`,
      "X-Httptunneling-Seq: 7",
      "Content-Length: 1234",
      "Cache-Control: no-store",
    ]
  ) assert.ok(head.includes(`\r\n${line}\r\n`), line);
  const receive = buildPollRequest({
    server: { host: "::1", port: 8080 },
    path: "/",
    kind: "receive",
    id: ID,
    seq: 0,
  });
  assert.ok(receive.startsWith("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n"));
  assert.ok(!receive.includes("Content-Length"));
  assert.ok(!receive.includes("Authorization"));
});

Deno.test("poll wire: the downstream queue caps an answer, and repeats the last one byte for byte", () => {
  const queue = new DownstreamQueue(10);
  assert.deepEqual([...queue.answer(0)!], []);
  queue.push(Uint8Array.of(1, 2, 3, 4, 5, 6));
  queue.push(Uint8Array.of(7, 8, 9, 10, 11, 12));
  queue.push(new Uint8Array(0));
  assert.equal(queue.backlog, 12);
  assert.equal(queue.expected, 1);
  const first = queue.answer(1)!;
  assert.deepEqual([...first], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.equal(queue.backlog, 2);
  // The answer was lost: the same request gets the same bytes.
  assert.deepEqual([...queue.answer(1)!], [...first]);
  assert.equal(queue.answer(0), undefined);
  assert.equal(queue.answer(3), undefined);
  queue.push(Uint8Array.of(13));
  assert.deepEqual([...queue.answer(2)!], [11, 12, 13]);
  assert.equal(queue.backlog, 0);
  assert.equal(new DownstreamQueue().answer(0)!.length, 0);
  const big = new DownstreamQueue();
  big.push(new Uint8Array(MAX_RECEIVE_BYTES + 5));
  assert.equal(big.answer(0)!.length, MAX_RECEIVE_BYTES);
  assert.equal(big.answer(1)!.length, 5);
});

Deno.test("transport=auto falls back when the upgrade did not happen, never on serve's own refusals", () => {
  const refused = (word: ConstructorParameters<typeof WsRefusedError>[3]) =>
    new WsRefusedError("far:443/t", "a session", 400, word, "");
  assert.ok(upgradeDidNotHappen(new NoSessionProtocolError("far:443/t")));
  assert.ok(upgradeDidNotHappen(refused("no-upgrade")));
  assert.ok(upgradeDidNotHappen(refused("not-a-tunnel")));
  for (const word of ["auth", "rate-limited", "busy", "not-allowed"] as const) {
    assert.ok(!upgradeDidNotHappen(refused(word)), word);
  }
  assert.ok(!upgradeDidNotHappen(new Error("connection refused")));
});

Deno.test("ChunkQueue takes up to a count of bytes from the front, cutting the last chunk", () => {
  const queue = new ChunkQueue();
  for (const chunk of [[1, 2], [3, 4, 5], [], [6]]) {
    queue.push(Uint8Array.from(chunk));
  }
  assert.equal(queue.bytes, 6);
  assert.deepEqual(queue.take(3).map((part) => [...part]), [[1, 2], [3]]);
  assert.equal(queue.bytes, 3);
  const buffer = new Uint8Array(2);
  assert.equal(queue.readInto(buffer), 2);
  assert.deepEqual([...buffer], [4, 5]);
  assert.deepEqual(queue.take(10).map((part) => [...part]), [[6]]);
  assert.equal(queue.bytes, 0);
  assert.deepEqual(queue.take(10), []);
  assert.equal(queue.readInto(buffer), 0);
});

Deno.test("transport=auto that fell back tries the WebSocket again only as a session reconnects, at most once per interval", () => {
  const everyMs = WS_RETRY_MS;
  const at = (now: number, reconnect = true) =>
    retriesWebSocket({ reconnect, triedAt: 1_000_000, now, everyMs });
  assert.equal(everyMs, 5 * 60_000);
  assert.ok(at(1_000_000 + everyMs));
  assert.ok(at(1_000_000 + 3 * everyMs));
  assert.ok(!at(1_000_000 + everyMs - 1));
  assert.ok(!at(1_000_000));
  // A new session (no transport lost) keeps polling, however long after.
  assert.ok(!at(1_000_000 + 10 * everyMs, false));
});
