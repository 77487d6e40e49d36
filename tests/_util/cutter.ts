/**
 * A TCP relay the test can cut in the middle of a transfer, and a
 * checksummed echo through a tunnel that is interrupted once a third has
 * come back (tests of resume and of the poll transport).
 *
 * @module
 */

import assert from "node:assert/strict";
import { pseudoRandomChunks, sha256Of } from "./data.ts";
import {
  connect,
  pause,
  startServer,
  type TestServer,
  within,
  writeAll,
} from "./net.ts";

/** A TCP relay to `port` whose connections the test can cut, and which can refuse. */
export function startCutter(port: number) {
  const open = new Set<Deno.Conn>();
  let refusing = false;
  const server: TestServer = startServer(async (conn) => {
    if (refusing) return;
    const far = await Deno.connect({ hostname: "127.0.0.1", port });
    open.add(conn);
    open.add(far);
    const pipe = async (from: Deno.Conn, to: Deno.Conn) => {
      const buffer = new Uint8Array(64 * 1024);
      try {
        while (true) {
          const n = await from.read(buffer);
          if (n === null) break;
          await writeAll(to, buffer.subarray(0, n));
        }
      } catch { /* cut */ }
      for (const each of [from, to]) {
        open.delete(each);
        try {
          each.close();
        } catch { /* closed */ }
      }
    };
    await Promise.all([pipe(conn, far), pipe(far, conn)]);
  });
  return {
    port: server.port,
    /** Closes every connection through the relay. */
    cut() {
      for (const each of open) {
        try {
          each.close();
        } catch { /* closed */ }
      }
      open.clear();
    },
    /** From now on connections are closed as soon as they come. */
    refuse() {
      refusing = true;
    },
    /** From now on connections are relayed again. */
    accept() {
      refusing = false;
    },
    [Symbol.asyncDispose]: () => server[Symbol.asyncDispose](),
  };
}

/**
 * Sends `total` checksummed bytes through `port` to the echo server in
 * chunks, calling `interrupt` once a third has been echoed, and checks
 * the echo byte for byte.
 */
export async function checksummedEcho(
  port: number,
  total: number,
  interrupt: () => Promise<void>,
): Promise<void> {
  using conn = await connect(port);
  const sent = [...pseudoRandomChunks(7, total, 32 * 1024)];
  let echoed = 0;
  let interrupted: Promise<void> | undefined;
  const received: Uint8Array[] = [];
  await within(
    Promise.all([
      (async () => {
        const buffer = new Uint8Array(64 * 1024);
        while (echoed < total) {
          const n = await conn.read(buffer);
          if (n === null) break;
          received.push(buffer.slice(0, n));
          echoed += n;
          if (echoed >= total / 3) interrupted ??= interrupt();
        }
      })(),
      (async () => {
        for (const chunk of sent) {
          await writeAll(conn, chunk);
          // Paced, so the interruption falls in the middle of the stream.
          await pause(5);
        }
      })(),
    ]),
    90_000,
    "the checksummed echo",
  );
  await interrupted;
  assert.equal(echoed, total);
  assert.equal(sha256Of(received), sha256Of(sent));
}
