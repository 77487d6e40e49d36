/**
 * The dialer seam: how a byte stream to an address is opened (TCP), and how
 * a stream that already reaches a hop is made ready for it (TLS for an
 * https:// proxy). A new transport is a new {@link Dialer} in its own file,
 * registered for its scheme in `route/transport.ts`.
 *
 * @module
 */

import type { HostPort } from "./address.ts";
import type { Duplex } from "./duplex.ts";

/** The limits and trust a dial works with. */
export interface DialOptions {
  /** Limit for a TCP connect, in milliseconds. */
  readonly connectTimeoutMs: number;
  /** Limit for a handshake (TLS, a proxy's answer), in milliseconds. */
  readonly handshakeTimeoutMs: number;
  /** Whether to send TCP keepalive probes. */
  readonly keepAlive: boolean;
  /** Extra trusted CA certificates, PEM, for TLS. @default the system's */
  readonly caCerts?: readonly string[];
  /** The bearer token for ws:// and wss:// hops. @default none */
  readonly token?: string;
  /** Time between a ws:// or wss:// tunnel's pings. @default 30 s */
  readonly heartbeatMs?: number;
  /** SHA-256 of the certificate a wss:// server must present. @default no pinning */
  readonly fingerprint?: Uint8Array;
  /** PEM client certificate for a wss:// server that asks for one. @default none */
  readonly clientCert?: string;
  /** PEM private key of the client certificate. @default none */
  readonly clientKey?: string;
  /** ws:// and wss:// tunnels share a session per server. @default true */
  readonly mux?: boolean;
  /** A lost session is reconnected and resumed. @default true */
  readonly resume?: boolean;
  /** How long a session may be without its transport. @default 10 min */
  readonly resumeWindowMs?: number;
  /** Streams per session before another one is opened. @default 100 */
  readonly maxStreams?: number;
  /**
   * What carries a session: WebSocket, the poll transport, or WebSocket
   * falling back to polling. @default "auto"
   */
  readonly transport?: "auto" | "ws" | "poll";
}

/** Opens byte streams to one kind of hop. */
export interface Dialer {
  /**
   * Names the handshake for logs and `probe` (e.g. `TLS`); `undefined` when
   * {@link handshake} passes the stream through.
   */
  readonly handshakeName?: string;
  /**
   * Opens a stream to `target` from this machine, handshake included.
   *
   * @param target Where to connect.
   * @param options Limits and trust.
   * @param signal Gives up when aborted.
   * @returns The ready stream.
   */
  dial(
    target: HostPort,
    options: DialOptions,
    signal?: AbortSignal,
  ): Promise<Duplex>;
  /**
   * Makes a stream that already reaches `target` (over TCP, or through the
   * hops before it) ready for this transport. Takes ownership of `stream`.
   *
   * @param stream A stream to `target`.
   * @param target The hop, e.g. whose certificate TLS checks.
   * @param options Limits and trust.
   * @returns The ready stream.
   */
  handshake(
    stream: Duplex,
    target: HostPort,
    options: DialOptions,
  ): Promise<Duplex>;
}
