import assert from "node:assert/strict";
import { BufferedDuplex } from "../lib/net/buffered.ts";
import {
  bytes,
  connect,
  pause,
  startServer,
  text,
  within,
  writeAll,
} from "./_util/net.ts";

/** A server that sends `parts` with a pause between them, then closes. */
function trickle(parts: string[]) {
  return startServer(async (conn) => {
    for (const part of parts) {
      await writeAll(conn, bytes(part));
      await pause(20);
    }
  });
}

const ended = () => new Error("ended early");
const tooLong = () => new Error("line too long");

Deno.test("exact reads, lines and skips across the chunks a socket delivers", async () => {
  await using server = trickle([
    "he",
    "llo\r",
    "\nsecond li",
    "ne\nxxxxx",
    "yyREST",
  ]);
  const input = new BufferedDuplex(await connect(server.port), {
    onEnd: ended,
    chunkBytes: 4,
  });
  try {
    await within(
      (async () => {
        assert.equal(await input.line(64, tooLong), "hello");
        assert.equal(await input.line(64, tooLong), "second line");
        await input.skip(5);
        assert.equal(text(await input.take(2)), "yy");
        assert.equal(input.consumed, 26);
        // What is left comes out of plain reads, then the stream's end.
        const buffer = new Uint8Array(16);
        let rest = "";
        for (let n; (n = await input.read(buffer)) !== null;) {
          rest += text(buffer.subarray(0, n));
        }
        assert.equal(rest, "REST");
      })(),
      5_000,
      "the reads",
    );
  } finally {
    input.close();
  }
});

Deno.test("a line longer than its bound and a stream that ends early are refused", async () => {
  await using server = trickle(["a".repeat(100), "\n", "short"]);
  const input = new BufferedDuplex(await connect(server.port), {
    onEnd: ended,
  });
  try {
    await within(
      (async () => {
        await assert.rejects(() => input.line(50, tooLong), /line too long/);
      })(),
      5_000,
      "the reads",
    );
  } finally {
    input.close();
  }
  await using second = trickle(["abc"]);
  const short = new BufferedDuplex(await connect(second.port), {
    onEnd: ended,
  });
  try {
    await within(
      (async () => {
        await assert.rejects(() => short.take(4), /ended early/);
      })(),
      5_000,
      "the reads",
    );
  } finally {
    short.close();
  }
});

Deno.test("bytes read ahead are returned first, and unwrap waits until they are gone", async () => {
  await using server = trickle(["later"]);
  const conn = await connect(server.port);
  const input = new BufferedDuplex(conn, { initial: bytes("early") });
  try {
    assert.equal(input.unwrap(), undefined);
    const buffer = new Uint8Array(3);
    assert.equal(text(buffer.subarray(0, (await input.read(buffer))!)), "ear");
    assert.equal(text(buffer.subarray(0, (await input.read(buffer))!)), "ly");
    assert.equal(input.unwrap(), conn);
  } finally {
    input.close();
  }
});
