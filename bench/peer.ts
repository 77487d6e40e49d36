/**
 * The load side of the benchmarks, run as its own process so that it does
 * not share a core's event loop with what is measured:
 *
 *   echo PORT...                  echo server on each PORT (prints "ready")
 *   pingpong PORT COUNT           64-byte round trips; prints {meanUs, p99Us}
 *   setups PORT SECONDS WORKERS   connect, 1-byte echo, close; prints {perSecond}
 *   idle PORT COUNT               opens COUNT echoed connections, prints "ready",
 *                                 holds them until stdin closes
 *   stream PORT BYTES [TARGET]    sends BYTES to a sink behind PORT (after
 *                                 CONNECT TARGET when given); prints {gbps}
 *   sink PORT                     reads and drops everything (prints "ready")
 */

import { connect, readFull, writeAll } from "../tests/_util/net.ts";

const [mode, ...args] = Deno.args;
const enc = new TextEncoder();
const out = (value: unknown) => console.log(JSON.stringify(value));

function serve(port: number, handle: (conn: Deno.Conn) => Promise<void>) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  console.log("ready");
  (async () => {
    while (true) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch {
        // Out of descriptors for a moment: keep serving.
        await new Promise((resolve) => setTimeout(resolve, 10));
        continue;
      }
      (conn as Deno.TcpConn).setNoDelay(true);
      handle(conn).catch(() => {}).finally(() => {
        try {
          conn.close();
        } catch { /* closed */ }
      });
    }
  })();
}

switch (mode) {
  case "echo":
    for (const port of args) {
      serve(Number(port), async (conn) => {
        const buffer = new Uint8Array(65536);
        while (true) {
          const n = await conn.read(buffer);
          if (n === null) break;
          await writeAll(conn, buffer.subarray(0, n));
        }
      });
    }
    break;
  case "sink":
    serve(Number(args[0]), async (conn) => {
      const buffer = new Uint8Array(262144);
      while (await conn.read(buffer) !== null) { /* drop */ }
    });
    break;
  case "pingpong": {
    const conn = await connect(Number(args[0]));
    conn.setNoDelay(true);
    const message = new Uint8Array(64).fill(7);
    const reply = new Uint8Array(64);
    const times: number[] = [];
    for (let i = 0; i < Number(args[1]) + 100; i++) {
      const start = performance.now();
      await writeAll(conn, message);
      await readFull(conn, reply);
      if (i >= 100) times.push((performance.now() - start) * 1000);
    }
    conn.close();
    times.sort((a, b) => a - b);
    out({
      meanUs: times.reduce((a, b) => a + b, 0) / times.length,
      p99Us: times[Math.floor(times.length * 0.99)],
    });
    break;
  }
  case "setups": {
    const deadline = performance.now() + Number(args[1]) * 1000;
    let count = 0;
    const one = new Uint8Array([1]);
    const worker = async () => {
      const reply = new Uint8Array(1);
      while (performance.now() < deadline) {
        const conn = await connect(Number(args[0]));
        await writeAll(conn, one);
        await readFull(conn, reply);
        conn.close();
        count++;
      }
    };
    const started = performance.now();
    await Promise.all(Array.from({ length: Number(args[2]) }, worker));
    out({ perSecond: count / ((performance.now() - started) / 1000) });
    break;
  }
  case "idle": {
    const conns: Deno.Conn[] = [];
    const one = new Uint8Array([1]);
    const reply = new Uint8Array(1);
    for (let i = 0; i < Number(args[1]); i++) {
      const conn = await connect(Number(args[0]));
      await writeAll(conn, one);
      await readFull(conn, reply);
      conns.push(conn);
    }
    console.log("ready");
    for await (const _ of Deno.stdin.readable) { /* until stdin closes */ }
    for (const conn of conns) conn.close();
    break;
  }
  case "stream": {
    const conn = await connect(Number(args[0]));
    if (args[2]) {
      await writeAll(
        conn,
        enc.encode(`CONNECT ${args[2]} HTTP/1.1\r\nHost: ${args[2]}\r\n\r\n`),
      );
      let head = "";
      const byte = new Uint8Array(1);
      while (!head.endsWith("\r\n\r\n")) {
        await readFull(conn, byte);
        head += String.fromCharCode(byte[0]);
      }
      if (!/^HTTP\/1\.\d 2/.test(head)) throw new Error(head);
    }
    const chunk = new Uint8Array(262144);
    const total = Number(args[1]);
    const started = performance.now();
    for (let sent = 0; sent < total; sent += chunk.length) {
      await writeAll(conn, chunk);
    }
    await conn.closeWrite();
    await conn.read(new Uint8Array(1)).catch(() => null);
    const seconds = (performance.now() - started) / 1000;
    conn.close();
    out({ gbps: (total * 8) / seconds / 1e9 });
    break;
  }
  default:
    throw new Error(`unknown mode ${mode}`);
}
