/**
 * Loopback networking for the tests and the bench: free ports, waiting
 * (timeouts, polling, a port that starts listening), reading and writing
 * whole buffers, UTF-8 conversion, and small TCP servers (echo, banner,
 * any handler) with round trips through them.
 *
 * Imports nothing, so that the bench's load processes can use it too.
 *
 * @module
 */

import { concat } from "../../lib/net/bytes.ts";

// Ports handed out already: the kernel may give a port just closed to the
// next listen on port 0, and `[freePort(), freePort()]` would then name the
// same port twice.
const handedOut = new Set<number>();

/**
 * Returns a TCP port on 127.0.0.1 that was free a moment ago, never one it
 * returned before in this process.
 */
export function freePort(): number {
  while (true) {
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const { port } = listener.addr;
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

/** Resolves after `ms` milliseconds. */
export function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Rejects when `promise` has not settled after `ms`.
 *
 * @param promise What to wait for.
 * @param ms The limit.
 * @param what Names the wait in the error.
 */
export async function within<T>(
  promise: Promise<T>,
  ms: number,
  what: string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${what}: no result after ${ms} ms`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Polls `check` until it returns a value other than `undefined` or `false`.
 *
 * @param check The condition, evaluated every 20 ms.
 * @param ms The limit.
 * @param what Names the wait in the error.
 */
export async function eventually<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  ms: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + ms;
  while (true) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await pause(20);
  }
}

/**
 * Resolves once something accepts connections on 127.0.0.1:`port`, trying
 * every 25 ms.
 *
 * @param port The port to try.
 * @param ms The limit.
 * @param what Names what should listen, in the error.
 */
export async function waitPort(
  port: number,
  ms = 10_000,
  what = "a server",
): Promise<void> {
  const deadline = Date.now() + ms;
  while (true) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return;
    } catch (error) {
      if (Date.now() > deadline) {
        throw new Error(
          `${what} did not listen on port ${port} within ${ms} ms`,
          { cause: error },
        );
      }
      await pause(25);
    }
  }
}

/** Connects to 127.0.0.1:`port` (or another loopback address). */
export function connect(
  port: number,
  hostname = "127.0.0.1",
): Promise<Deno.TcpConn> {
  return Deno.connect({ hostname, port });
}

/** Reads until end of stream and returns everything. */
export async function readAll(
  conn: Pick<Deno.Conn, "read">,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(64 * 1024);
  while (true) {
    const n = await conn.read(buffer);
    if (n === null) break;
    chunks.push(buffer.slice(0, n));
  }
  return concat(...chunks);
}

/** Fills all of `buffer` from `conn`; rejects if the stream ends first. */
export async function readFull(
  conn: Pick<Deno.Conn, "read">,
  buffer: Uint8Array,
): Promise<void> {
  let offset = 0;
  while (offset < buffer.length) {
    const got = await conn.read(buffer.subarray(offset));
    if (got === null) {
      throw new Error(
        `stream ended after ${offset} of ${buffer.length} bytes`,
      );
    }
    offset += got;
  }
}

/** Reads exactly `n` bytes. */
export async function readExactly(
  conn: Pick<Deno.Conn, "read">,
  n: number,
): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  await readFull(conn, out);
  return out;
}

/** Writes all of `data`. */
export async function writeAll(
  conn: Deno.Conn,
  data: Uint8Array,
): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    offset += await conn.write(data.subarray(offset));
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** UTF-8 bytes of `text`. */
export function bytes(text: string): Uint8Array {
  return encoder.encode(text);
}

/** `bytes` decoded as UTF-8. */
export function text(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

/**
 * A TCP server on 127.0.0.1 that runs `handle` for each connection.
 * Disposing it again waits for the first disposal.
 */
export interface TestServer extends AsyncDisposable {
  /** The port it listens on. */
  readonly port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
}

/**
 * Starts a TCP server on 127.0.0.1. Disposing it stops accepting, closes
 * open connections and waits for the handlers.
 *
 * @param handle Runs for each accepted connection; the server closes it after.
 */
export function startServer(
  handle: (conn: Deno.TcpConn, index: number) => Promise<void>,
): TestServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<Deno.TcpConn>();
  const tasks = new Set<Promise<void>>();
  let accepted = 0;
  let stopped: Promise<void> | undefined;
  const loop = (async () => {
    for await (const conn of listener) {
      const index = accepted++;
      open.add(conn);
      const task = handle(conn, index).catch(() => {}).finally(() => {
        open.delete(conn);
        try {
          conn.close();
        } catch { /* closed by the handler */ }
      });
      tasks.add(task);
      task.finally(() => tasks.delete(task));
    }
  })().catch(() => {});
  return {
    port: listener.addr.port,
    get accepted() {
      return accepted;
    },
    [Symbol.asyncDispose]() {
      stopped ??= (async () => {
        listener.close();
        await loop;
        for (const conn of open) {
          try {
            conn.close();
          } catch { /* already closed */ }
        }
        await Promise.all(tasks);
      })();
      return stopped;
    },
  };
}

/** An echo server: writes back what it reads, half-closes after EOF. */
export function startEchoServer(): TestServer {
  return startServer(async (conn) => {
    const buffer = new Uint8Array(64 * 1024);
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      await writeAll(conn, buffer.subarray(0, n));
    }
    await conn.closeWrite();
  });
}

/** A server that greets first (like SSH), then echoes. */
export function startBannerServer(banner: string): TestServer {
  return startServer(async (conn) => {
    await writeAll(conn, bytes(banner));
    const buffer = new Uint8Array(64 * 1024);
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      await writeAll(conn, buffer.subarray(0, n));
    }
  });
}

/** Sends `message`, shuts down sending, and returns everything received. */
export async function echoRoundTrip(
  port: number,
  message: string,
): Promise<string> {
  using conn = await connect(port);
  await writeAll(conn, bytes(message));
  await conn.closeWrite();
  return text(await within(readAll(conn), 10_000, "echo through the tunnel"));
}

/**
 * Sends `message` and reads back as many bytes, without shutting down
 * first: squid and tinyproxy end a tunnel when one side shuts down.
 */
export async function echoExchange(
  port: number,
  message: string,
): Promise<string> {
  using conn = await connect(port);
  await writeAll(conn, bytes(message));
  return text(
    await within(
      readExactly(conn, bytes(message).length),
      10_000,
      "echo through the proxy",
    ),
  );
}
