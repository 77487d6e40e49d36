/**
 * Adapters between our {@link Duplex} and Node streams, for `node:tls`,
 * which Deno's own TLS cannot stand in for where the peer's certificate
 * must be seen (pinning) or the socket's options set (serve's TLS, which
 * needs TCP_NODELAY on accepted connections).
 *
 * @module
 */

import { Duplex as NodeDuplex } from "node:stream";
import type { TLSSocket } from "node:tls";
import { closeQuietly, type Duplex, writeAll } from "./duplex.ts";

const READ_CHUNK_BYTES = 64 * 1024;

/**
 * Our stream as a Node stream, for node:tls to run over.
 *
 * @param stream The stream underneath (a TCP connection, or a tunnel).
 * @returns A Node duplex that reads and writes `stream`.
 */
export function toNodeStream(stream: Duplex): NodeDuplex {
  return new NodeDuplex({
    read() {
      const buffer = new Uint8Array(READ_CHUNK_BYTES);
      stream.read(buffer).then(
        (n) => this.push(n === null ? null : buffer.subarray(0, n)),
        (error) => this.destroy(error),
      );
    },
    write(chunk: Uint8Array, _encoding, done) {
      writeAll(stream, chunk).then(() => done(), done);
    },
    final(done) {
      stream.closeWrite().then(() => done(), done);
    },
    destroy(error, done) {
      closeQuietly(stream);
      done(error);
    },
  });
}

/**
 * A Node TLS socket as our stream.
 *
 * @param socket The socket, connected or still in its handshake.
 * @returns The stream; `closeWrite` ends the socket, `close` destroys it.
 */
export function fromNodeStream(socket: TLSSocket): Duplex {
  let failure: Error | undefined;
  let ended = false;
  let closed = false;
  let wake: (() => void) | undefined;
  // Writes and a closeWrite waiting for their callbacks: a destroyed
  // socket may never call them, so its close settles them.
  const pending = new Set<(error?: Error) => void>();
  const notify = () => {
    const waiting = wake;
    wake = undefined;
    waiting?.();
  };
  socket.on("readable", notify);
  socket.on("end", () => {
    ended = true;
    notify();
  });
  const settleAll = (error: Error) => {
    for (const settle of [...pending]) settle(error);
  };
  socket.on("error", (error) => {
    failure = error;
    notify();
    settleAll(error);
  });
  socket.on("close", () => {
    ended = true;
    closed = true;
    notify();
    settleAll(failure ?? new Error("connection closed"));
  });
  const settled = (
    start: (settle: (error?: Error | null) => void) => void,
    onError: (error: Error) => void,
    onDone: () => void,
  ) => {
    const settle = (error?: Error | null) => {
      if (!pending.delete(settle)) return;
      if (error) onError(error);
      else onDone();
    };
    pending.add(settle);
    start(settle);
  };
  return {
    async read(buffer) {
      while (true) {
        const chunk: Uint8Array | null = socket.read();
        if (chunk !== null) {
          const n = Math.min(buffer.length, chunk.length);
          buffer.set(chunk.subarray(0, n));
          if (n < chunk.length) socket.unshift(chunk.subarray(n));
          return n;
        }
        if (failure) throw failure;
        if (ended) return null;
        await new Promise<void>((resolve) => wake = resolve);
      }
    },
    write(data) {
      if (failure) return Promise.reject(failure);
      if (closed) return Promise.reject(new Error("connection closed"));
      return new Promise((resolve, reject) =>
        settled(
          (settle) => socket.write(data, settle),
          reject,
          () => resolve(data.length),
        )
      );
    },
    closeWrite() {
      if (closed || failure) return Promise.resolve();
      return new Promise((resolve) =>
        settled(
          (settle) => socket.end(() => settle()),
          () => resolve(),
          resolve,
        )
      );
    },
    close() {
      socket.destroy();
    },
  };
}
