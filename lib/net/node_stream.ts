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

const READ_CHUNK_BYTES = 16 * 1024;

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
  let wake: (() => void) | undefined;
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
  socket.on("error", (error) => {
    failure = error;
    notify();
  });
  socket.on("close", () => {
    ended = true;
    notify();
  });
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
      return new Promise((resolve, reject) =>
        socket.write(
          data,
          (error) => error ? reject(error) : resolve(data.length),
        )
      );
    },
    closeWrite() {
      return new Promise((resolve) => socket.end(resolve));
    },
    close() {
      socket.destroy();
    },
  };
}
