/**
 * One tunnel of `serve`: a WebSocket (protocol httptunneling.v1) joined to
 * the TCP connection to its target. Binary messages carry bytes; `eof`
 * half-closes; the server acknowledges what it wrote to the target with
 * `ack <n>` so the client keeps at most a window in flight (Deno's server
 * WebSocket cannot stop reading, so the client must); toward the client,
 * reading the target pauses while the socket's send buffer is full, so a
 * slow client slows the target through TCP.
 *
 * @module
 */

import { closeQuietly, writeAll } from "../net/duplex.ts";

/** Largest binary message accepted from a client (protocol: close 1009 above). */
export const MAX_MESSAGE_BYTES = 1024 * 1024;

/** Largest message the server sends. */
export const CHUNK_BYTES = 64 * 1024;

/** The client's window of sent-but-unacknowledged bytes. */
export const WINDOW_BYTES = 1024 * 1024;

/** An ack goes out at least this often, in bytes written to the target. */
export const ACK_EVERY_BYTES = 256 * 1024;

/** Reading the target pauses while the WebSocket holds more than this unsent. */
export const HIGH_WATER_BYTES = 1024 * 1024;

/**
 * Most bytes waiting for the target: a client keeping to the window never
 * has more than the window pending, so more is a broken client and the
 * tunnel is closed rather than grow without bound.
 */
export const MAX_PENDING_BYTES = WINDOW_BYTES + MAX_MESSAGE_BYTES;

const DRAIN_POLL_MS = 5;

/** Bytes moved so far; `up` is client → target. */
export interface TunnelCounters {
  bytesUp: number;
  bytesDown: number;
}

/** How a tunnel ended. */
export interface TunnelEnd extends TunnelCounters {
  /** Why, for the log: `done`, `client closed (1000)`, `target reset`, … */
  readonly reason: string;
}

/** A running tunnel. */
export interface WsTunnel {
  /** Bytes so far. */
  readonly counters: TunnelCounters;
  /** Resolves once both sockets are closed. */
  readonly done: Promise<TunnelEnd>;
  /** Ends the tunnel now (shutdown): close 1001 with `reason`. */
  close(reason: string): void;
}

/**
 * Joins `socket` (just upgraded, maybe not open yet) and `target` until
 * either ends.
 *
 * @param socket The WebSocket from `Deno.upgradeWebSocket`.
 * @param target The connection to the target, already open.
 * @returns The running tunnel.
 */
export function startTunnel(
  socket: WebSocket,
  target: Deno.TcpConn,
): WsTunnel {
  socket.binaryType = "arraybuffer";
  const counters: TunnelCounters = { bytesUp: 0, bytesDown: 0 };
  const queue: Uint8Array[] = [];
  let pending = 0;
  let acked = 0;
  let eofIn = false;
  let eofWritten = false;
  let eofOut = false;
  let closed = false;
  let reason: string | undefined;
  let wake: (() => void) | undefined;
  const nudge = () => {
    wake?.();
    wake = undefined;
  };
  const end = (why: string, code?: number) => {
    reason ??= why;
    if (code !== undefined && !closed) {
      try {
        socket.close(code, why);
      } catch {
        // Closing already.
      }
    }
    closeQuietly(target);
    nudge();
  };
  const send = (data: string | Uint8Array): boolean => {
    if (closed || socket.readyState !== WebSocket.OPEN) return false;
    socket.send(data);
    return true;
  };
  const finishIfDone = () => {
    if (eofIn && eofWritten && eofOut) end("done", 1000);
  };
  const sendAck = () => {
    if (counters.bytesUp > acked && send(`ack ${counters.bytesUp}`)) {
      acked = counters.bytesUp;
    }
  };

  const socketClosed = new Promise<void>((resolve) => {
    socket.onclose = (event) => {
      closed = true;
      end(
        // Deno's own words when idleTimeout passed without a pong.
        event.reason === "No response from ping frame."
          ? "no pong within the heartbeat"
          : `client closed (${event.code}${
            event.reason ? ` ${event.reason}` : ""
          })`,
      );
      resolve();
    };
  });
  const opened = new Promise<boolean>((resolve) => {
    socket.onopen = () => resolve(true);
    socketClosed.then(() => resolve(false));
  });
  socket.onmessage = (event: MessageEvent) => {
    if (reason !== undefined) return;
    const data = event.data;
    if (data instanceof ArrayBuffer) {
      if (data.byteLength > MAX_MESSAGE_BYTES) {
        return end(`message over ${MAX_MESSAGE_BYTES} bytes`, 1009);
      }
      if (eofIn) return end("data after eof", 1002);
      pending += data.byteLength;
      if (pending > MAX_PENDING_BYTES) {
        return end("client ignored the flow-control window", 1008);
      }
      queue.push(new Uint8Array(data));
      nudge();
    } else if (data === "eof" && !eofIn) {
      eofIn = true;
      nudge();
    } else {
      end("unexpected text message", 1002);
    }
  };

  const writer = async () => {
    while (reason === undefined) {
      const chunk = queue.shift();
      if (chunk !== undefined) {
        try {
          await writeAll(target, chunk);
        } catch {
          return end("target reset", 1011);
        }
        pending -= chunk.length;
        counters.bytesUp += chunk.length;
        if (counters.bytesUp - acked >= ACK_EVERY_BYTES) sendAck();
        continue;
      }
      // Drained: everything written is acknowledged.
      sendAck();
      if (eofIn && !eofWritten) {
        eofWritten = true;
        await target.closeWrite().catch(() => {});
        finishIfDone();
        continue;
      }
      await new Promise<void>((resolve) => wake = resolve);
    }
  };

  const reader = async () => {
    if (!await opened) return;
    const buffer = new Uint8Array(CHUNK_BYTES);
    while (reason === undefined) {
      let n: number | null;
      try {
        n = await target.read(buffer);
      } catch {
        return end("target reset", 1011);
      }
      if (n === null) {
        if (send("eof")) eofOut = true;
        return finishIfDone();
      }
      if (!send(buffer.slice(0, n))) return;
      counters.bytesDown += n;
      while (socket.bufferedAmount > HIGH_WATER_BYTES && !closed) {
        await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
      }
    }
  };

  const done = Promise.all([writer(), reader(), socketClosed]).then(() => ({
    ...counters,
    reason: reason ?? "closed",
  }));
  return {
    counters,
    done,
    close: (why) => end(why, 1001),
  };
}
