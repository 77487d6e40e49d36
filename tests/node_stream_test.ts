/**
 * The Node TLS socket adapter under serve's TLS front: closing the stream
 * settles every pending call, so a relay over it ends (serve's shutdown
 * waits for its relays).
 *
 * @module
 */

import assert from "node:assert/strict";
import { createSecureContext, TLSSocket } from "node:tls";
import { fromNodeStream, toNodeStream } from "../lib/net/node_stream.ts";
import { makeCertificates } from "./_util/certs.ts";
import { bytes, within } from "./_util/net.ts";

Deno.test("fromNodeStream: close() settles a pending write and closeWrite; later calls fail or return at once", async () => {
  const dir = await Deno.makeTempDir({ prefix: "httptunneling-tls-" });
  try {
    await makeCertificates(dir);
    const secureContext = createSecureContext({
      cert: await Deno.readTextFile(`${dir}/server.pem`),
      key: await Deno.readTextFile(`${dir}/server.key`),
    });
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    // A client that never starts its handshake.
    using _client = await Deno.connect({
      hostname: "127.0.0.1",
      port: listener.addr.port,
    });
    const conn = await listener.accept();
    const socket = new TLSSocket(toNodeStream(conn), {
      isServer: true,
      secureContext,
    });
    const stream = fromNodeStream(socket);
    // Both wait for the handshake, which never comes.
    const write = stream.write(bytes("never sent"));
    const closeWrite = stream.closeWrite();
    const read = stream.read(new Uint8Array(16));
    stream.close();
    await assert.rejects(within(write, 10_000, "the write"));
    await within(closeWrite, 10_000, "closeWrite");
    assert.equal(await within(read, 10_000, "the read"), null);
    await assert.rejects(stream.write(bytes("too late")));
    await within(stream.closeWrite(), 10_000, "a second closeWrite");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fromNodeStream: close() settles a write held by a peer that reads nothing, and the closeWrite behind it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "httptunneling-tls-" });
  try {
    const { caPem } = await makeCertificates(dir);
    const secureContext = createSecureContext({
      cert: await Deno.readTextFile(`${dir}/server.pem`),
      key: await Deno.readTextFile(`${dir}/server.key`),
    });
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const client = Deno.connectTls({
      hostname: "127.0.0.1",
      port: listener.addr.port,
      caCerts: [caPem],
    });
    const conn = await listener.accept();
    const socket = new TLSSocket(toNodeStream(conn), {
      isServer: true,
      secureContext,
    });
    const stream = fromNodeStream(socket);
    using _client = await client;
    // The client reads nothing: sooner or later a write waits.
    const chunk = new Uint8Array(256 * 1024);
    let held: Promise<number> | undefined;
    for (let i = 0; i < 4096 && held === undefined; i++) {
      const write = stream.write(chunk);
      const done = await Promise.race([
        write.then(() => true),
        new Promise((resolve) => setTimeout(resolve, 200, false)),
      ]);
      if (!done) held = write;
    }
    assert.ok(held !== undefined, "no write was held");
    // What a relay does when the other side has finished.
    const closeWrite = stream.closeWrite();
    stream.close();
    await assert.rejects(within(held, 10_000, "the held write"));
    await within(closeWrite, 10_000, "closeWrite");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
