/**
 * What carries a v2 session at the far end: a byte pipe for session
 * frames, whatever it runs on. {@link ServeSessions} runs over this
 * interface only; a WebSocket of `Deno.serve` is one adapter
 * ({@link webSocketTransport}), serve's own WebSocket on a TLS connection
 * it accepted another (./ws_transport.ts), the poll transport
 * (lib/poll/server.ts) a third. How an admitted upgrade becomes a
 * transport is a {@link SessionUpgrader}: {@link upgradeWebSocket} for a
 * request of `Deno.serve`.
 *
 * @module
 */

import { concat } from "../net/bytes.ts";

/** Why the server closes a transport. */
export type TransportCloseReason =
  | "protocol"
  | "limit"
  | "replaced"
  | "shutdown";

/** How a transport ended. */
export interface TransportEnd {
  /** The client ended the session itself (WebSocket close 1000, poll close). */
  readonly clean: boolean;
  /** For the log: `WebSocket (1006)`, `poll transport (no request within 30 s)`. */
  readonly detail: string;
}

/** What a transport tells the session layer. */
export interface TransportHandlers {
  /**
   * Session frame bytes from the client, in order; handed over (the
   * transport keeps no reference), so frames may view them.
   */
  bytes(data: Uint8Array): void;
  /** The transport ended; nothing more comes. */
  ended(end: TransportEnd): void;
}

/** A transport of session frames between serve and one client. */
export interface ServerTransport {
  /** For the log: `WebSocket`, `poll transport`. */
  readonly name: string;
  /** Which kind it is, for /status. */
  readonly kind: "websocket" | "poll";
  /**
   * Sends encoded frames to the client, in order, as one message; the
   * pieces are copied (or sent) before this returns.
   */
  send(parts: readonly Uint8Array[]): void;
  /** Bytes given to {@link send} and not yet on their way. */
  readonly backlog: number;
  /** Starts delivering the client's bytes and the end to `handlers`. */
  start(handlers: TransportHandlers): void;
  /**
   * Closes the transport; {@link TransportHandlers.ended} follows unless it
   * was already told.
   *
   * @param why The kind of close.
   * @param reason A short text for the client.
   */
  close(why: TransportCloseReason, reason: string): void;
}

/**
 * The WebSocket close code of each kind of close (RFC 6455 §7.4): 1002
 * protocol error, 1013 try again later, 1001 going away, and 4000
 * (private use) for a session moved to a newer WebSocket.
 */
export const CLOSE_CODES: Readonly<Record<TransportCloseReason, number>> = {
  protocol: 1002,
  limit: 1013,
  replaced: 4000,
  shutdown: 1001,
};

/**
 * A WebSocket (protocol httptunneling.v2) as a {@link ServerTransport}:
 * binary messages carry frame bytes, a text message is a protocol error,
 * and close 1000 from the client is a clean end.
 *
 * @param socket The upgraded WebSocket.
 * @returns The transport.
 */
export function webSocketTransport(socket: WebSocket): ServerTransport {
  socket.binaryType = "arraybuffer";
  const close = (why: TransportCloseReason, reason: string) => {
    try {
      socket.close(CLOSE_CODES[why], reason);
    } catch {
      // Closing already.
    }
  };
  return {
    name: "WebSocket",
    kind: "websocket",
    send(parts) {
      if (socket.readyState !== WebSocket.OPEN) return;
      socket.send(parts.length === 1 ? parts[0] : concat(...parts));
    },
    get backlog() {
      return socket.bufferedAmount;
    },
    start(handlers) {
      socket.onmessage = (event: MessageEvent) => {
        if (!(event.data instanceof ArrayBuffer)) {
          return close("protocol", "text message in a v2 session");
        }
        handlers.bytes(new Uint8Array(event.data));
      };
      socket.onclose = (event: CloseEvent) => {
        handlers.ended({
          clean: event.code === 1000,
          detail: `WebSocket (${event.code}${
            event.reason ? ` ${event.reason}` : ""
          })`,
        });
      };
    },
    close,
  };
}

/** What a {@link SessionUpgrader} is asked for. */
export interface SessionUpgradeOptions {
  /** The subprotocol to answer with. */
  readonly protocol: string;
  /**
   * Seconds without anything from the client before it is pinged, and as
   * long again before the connection is closed (Deno's `idleTimeout`).
   */
  readonly idleTimeoutSeconds: number;
}

/** An upgrade done: the session's transport, and what answers the request. */
export interface SessionUpgrade<A> {
  /** Carries the session. */
  readonly transport: ServerTransport;
  /** The answer: a 101 response for `Deno.serve`, or the upgrader's own. */
  readonly answer: A;
}

/**
 * Turns an admitted upgrade request into a transport.
 *
 * @throws an Error saying what is wrong for a request that is not a valid
 *   upgrade; it is answered 400.
 */
export type SessionUpgrader<A> = (
  request: Request,
  options: SessionUpgradeOptions,
) => SessionUpgrade<A>;

/**
 * The upgrader of requests that `Deno.serve` took: `Deno.upgradeWebSocket`
 * and {@link webSocketTransport}.
 */
export const upgradeWebSocket: SessionUpgrader<Response> = (
  request,
  { protocol, idleTimeoutSeconds },
) => {
  const { socket, response } = Deno.upgradeWebSocket(request, {
    protocol,
    idleTimeout: idleTimeoutSeconds,
  });
  return { transport: webSocketTransport(socket), answer: response };
};
