import assert from "node:assert/strict";
import type { Duplex } from "../lib/net/duplex.ts";
import { relay } from "../lib/relay.ts";
import { bytes, readAll, text, within, writeAll } from "./_util/net.ts";

/** Two connected TCP sockets on loopback. */
async function tcpPair(): Promise<[Deno.TcpConn, Deno.TcpConn]> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [a, b] = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
    listener.accept(),
  ]);
  return [a, b];
}

/**
 * client <-> [clientLeg | relay | destinationLeg] <-> server, all real sockets.
 */
async function relayed() {
  const [client, clientLeg] = await tcpPair();
  const [destinationLeg, server] = await tcpPair();
  const done = relay(clientLeg, destinationLeg);
  return { client, server, done };
}

Deno.test("client sends, shuts down, and still reads the reply", async () => {
  const { client, server, done } = await relayed();
  await writeAll(client, bytes("request"));
  await client.closeWrite();
  assert.equal(
    text(await within(readAll(server), 5_000, "server read")),
    "request",
  );
  await writeAll(server, bytes("reply after EOF"));
  server.close();
  assert.equal(
    text(await within(readAll(client), 5_000, "client read")),
    "reply after EOF",
  );
  client.close();
  const result = await within(done, 5_000, "relay");
  assert.equal(result.firstClosed, "client");
  assert.equal(result.bytesUp, 7);
  assert.equal(result.bytesDown, 15);
  assert.equal(result.error, undefined);
});

Deno.test("destination shuts down first and the client may still send", async () => {
  const { client, server, done } = await relayed();
  await writeAll(server, bytes("banner"));
  await server.closeWrite();
  assert.equal(
    text(await within(readAll(client), 5_000, "client read")),
    "banner",
  );
  await writeAll(client, bytes("late data"));
  await client.closeWrite();
  assert.equal(
    text(await within(readAll(server), 5_000, "server read")),
    "late data",
  );
  client.close();
  server.close();
  const result = await within(done, 5_000, "relay");
  assert.equal(result.firstClosed, "destination");
  assert.deepEqual([result.bytesUp, result.bytesDown], [9, 6]);
});

/** A Duplex that reads from a script and accepts at most `maxWrite` bytes a call. */
class ScriptedDuplex implements Duplex {
  written: number[] = [];
  closed = false;
  writeClosed = false;
  constructor(
    private reads: Array<Uint8Array | Error | null>,
    private maxWrite = Infinity,
  ) {}
  read(buffer: Uint8Array): Promise<number | null> {
    const next = this.reads.shift() ?? null;
    if (next instanceof Error) return Promise.reject(next);
    if (next === null) return Promise.resolve(null);
    // Like a socket, a read returns at most what fits in the buffer.
    const n = Math.min(next.length, buffer.length);
    buffer.set(next.subarray(0, n));
    if (n < next.length) this.reads.unshift(next.subarray(n));
    return Promise.resolve(n);
  }
  write(data: Uint8Array): Promise<number> {
    const n = Math.min(data.length, this.maxWrite);
    this.written.push(...data.subarray(0, n));
    return Promise.resolve(n);
  }
  closeWrite(): Promise<void> {
    this.writeClosed = true;
    return Promise.resolve();
  }
  close(): void {
    this.closed = true;
  }
}

Deno.test("partial writes are completed in order", async () => {
  const data = Uint8Array.from({ length: 1000 }, (_, i) => i % 251);
  const client = new ScriptedDuplex([
    data.subarray(0, 600),
    data.subarray(600),
    null,
  ]);
  const destination = new ScriptedDuplex([null], 7);
  const result = await relay(client, destination);
  assert.deepEqual(destination.written, [...data]);
  assert.equal(result.bytesUp, 1000);
  // Streams other than plain TCP sockets (TLS, for its close_notify) are
  // shut down before they are closed, whichever side finished first.
  assert.ok(destination.writeClosed && client.writeClosed);
  assert.ok(client.closed && destination.closed);
});

Deno.test("an error on one side closes both and is reported with its side", async () => {
  const [client, clientLeg] = await tcpPair();
  const failing = new ScriptedDuplex([
    bytes("partial"),
    new Error("connection reset"),
  ]);
  const result = await within(relay(clientLeg, failing), 5_000, "relay");
  assert.equal(result.firstClosed, "destination");
  assert.equal(result.error?.message, "connection reset");
  assert.ok(failing.closed);
  // The client gets what arrived before the error, then end of stream.
  assert.equal(
    text(await within(readAll(client), 5_000, "client read")),
    "partial",
  );
  client.close();
});

Deno.test("a failing write is blamed on the side written to", async () => {
  const client = new ScriptedDuplex([bytes("x")]);
  const destination = new ScriptedDuplex([]);
  destination.write = () => Promise.reject(new Error("broken pipe"));
  const result = await relay(client, destination);
  assert.equal(result.firstClosed, "destination");
  assert.equal(result.error?.message, "broken pipe");
});

Deno.test("stopping the relay closes both sides at once", async () => {
  const [client, clientLeg] = await tcpPair();
  const [destinationLeg, server] = await tcpPair();
  let stop = () => {};
  const done = relay(clientLeg, destinationLeg, {
    onStart: (stopRelay) => stop = stopRelay,
  });
  stop();
  const result = await within(done, 5_000, "aborted relay");
  assert.equal(result.aborted, true);
  assert.equal(result.error, undefined);
  assert.equal((await readAll(client)).length, 0);
  assert.equal((await readAll(server)).length, 0);
  client.close();
  server.close();
});
