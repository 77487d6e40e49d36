/**
 * The opening handshake of a tunnel over WebSocket (RFC 6455 §4.1 and the
 * protocol of PROTOCOL-DRAFT.md): the client's upgrade request, and the
 * checks on the server's answer — a 101 that accepts our key and our
 * subprotocol, or a refusal named by `X-Httptunneling-Refusal`; and the
 * 101 that serve writes itself on the TLS connections it accepted. Pure.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { ProxyProtocolError } from "../errors.ts";
import { formatHostPort, type HostPort } from "../net/address.ts";
import { toBase64 } from "../net/bytes.ts";
import {
  headerValue,
  printable,
  type ResponseHead,
} from "../proxy/http_head.ts";
import { USER_AGENT } from "../version.ts";

/** The subprotocol of this tool's tunnel protocol, version 1. */
export const SUBPROTOCOL = "httptunneling.v1";

/**
 * The subprotocol of version 2: one WebSocket connection carries a session
 * (lib/session/) of many streams, resumable on another connection.
 */
export const SUBPROTOCOL_V2 = "httptunneling.v2";

/** The header naming the tunnel's target. */
export const TARGET_HEADER = "X-Httptunneling-Target";

/** The header naming why the server refused. */
export const REFUSAL_HEADER = "X-Httptunneling-Refusal";

// RFC 6455 §1.3: appended to the key before hashing.
const ACCEPT_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** The refusals a server may name in its refusal header. */
export const WS_REFUSALS = [
  "bad-request",
  "auth",
  "certificate",
  "not-allowed",
  "rate-limited",
  "busy",
  "refused",
  "unreachable",
  "timeout",
  "no-upgrade",
] as const;

/** Why the server refused a tunnel, as its refusal header names it. */
export type WsRefusal = typeof WS_REFUSALS[number];

/**
 * The `Sec-WebSocket-Accept` value a server must answer `key` with.
 *
 * @param key The request's `Sec-WebSocket-Key`.
 * @returns base64 of SHA-1 of the key and the RFC's GUID.
 *
 * @example
 * ```ts
 * acceptFor("dGhlIHNhbXBsZSBub25jZQ=="); // "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
 * ```
 */
export function acceptFor(key: string): string {
  return createHash("sha1").update(key + ACCEPT_GUID).digest("base64");
}

/**
 * A fresh `Sec-WebSocket-Key`.
 *
 * @param random Fills an array with random bytes. @default crypto.getRandomValues
 * @returns base64 of 16 random bytes.
 */
export function newKey(
  random: (bytes: Uint8Array) => Uint8Array = (bytes) =>
    crypto.getRandomValues(bytes),
): string {
  return toBase64(random(new Uint8Array(16)));
}

/** What the upgrade request says. */
export interface UpgradeRequest {
  /** The server: `Host` names it. */
  readonly server: HostPort;
  /** The path of the ws:// URL, from `/`. */
  readonly path: string;
  /** The request's `Sec-WebSocket-Key`. */
  readonly key: string;
  /** Where the server should connect; none for a v2 session. */
  readonly target?: HostPort;
  /** The subprotocol asked for. @default {@link SUBPROTOCOL} */
  readonly protocol?: string;
  /** The bearer token; no `Authorization` without one. */
  readonly token?: string;
}

/**
 * Builds the upgrade request.
 *
 * @param request Server, path, key, target and token.
 * @returns The whole request head, ready for one write.
 *
 * @example
 * ```ts
 * buildUpgradeRequest({
 *   server: { host: "tunnel.example.org", port: 443 }, path: "/t",
 *   key: "dGhlIHNhbXBsZSBub25jZQ==", target: { host: "git.internal", port: 22 },
 * });
 * // "GET /t HTTP/1.1\r\nHost: tunnel.example.org:443\r\nUpgrade: websocket\r\n…"
 * ```
 */
export function buildUpgradeRequest(request: UpgradeRequest): string {
  const lines = [
    `GET ${request.path} HTTP/1.1`,
    `Host: ${formatHostPort(request.server)}`,
    `User-Agent: ${USER_AGENT}`,
    "Upgrade: websocket",
    "Connection: Upgrade",
    `Sec-WebSocket-Key: ${request.key}`,
    "Sec-WebSocket-Version: 13",
    `Sec-WebSocket-Protocol: ${request.protocol ?? SUBPROTOCOL}`,
    ...(request.token === undefined
      ? []
      : [`Authorization: Bearer ${request.token}`]),
    ...(request.target === undefined
      ? []
      : [`${TARGET_HEADER}: ${formatHostPort(request.target)}`]),
  ];
  return lines.join("\r\n") + "\r\n\r\n";
}

/**
 * Builds a server's 101 answer to an upgrade request (RFC 6455 §4.2.2).
 *
 * @param key The request's `Sec-WebSocket-Key`.
 * @param protocol The subprotocol chosen.
 * @returns The whole response head, ready for one write.
 *
 * @example
 * ```ts
 * buildUpgradeResponse("dGhlIHNhbXBsZSBub25jZQ==", "httptunneling.v2");
 * // "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n…
 * //  Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n…"
 * ```
 */
export function buildUpgradeResponse(key: string, protocol: string): string {
  return [
    "HTTP/1.1 101 Switching Protocols",
    "Upgrade: websocket",
    "Connection: Upgrade",
    `Sec-WebSocket-Accept: ${acceptFor(key)}`,
    `Sec-WebSocket-Protocol: ${protocol}`,
    "",
    "",
  ].join("\r\n");
}

/** The server's answer: the tunnel is open, or refused. */
export type UpgradeAnswer =
  | { readonly open: true }
  | {
    readonly open: false;
    /** The status code, e.g. 403. */
    readonly status: number;
    /** The refusal the server named; absent when it named none (not our server). */
    readonly refusal?: WsRefusal;
  };

/**
 * Checks the server's answer to the upgrade request.
 *
 * @param head The response head.
 * @param key The request's `Sec-WebSocket-Key`.
 * @param server `host:port` of the server, for messages.
 * @param subprotocol The subprotocol asked for.
 * @returns Open, or the refusal.
 * @throws {ProxyProtocolError} for a 101 that does not accept the key, the
 *   upgrade or the subprotocol.
 */
export function checkUpgradeResponse(
  head: ResponseHead,
  key: string,
  server: string,
  subprotocol: string = SUBPROTOCOL,
): UpgradeAnswer {
  if (head.status !== 101) {
    const named = headerValue(head, REFUSAL_HEADER)?.trim().toLowerCase();
    const refusal = WS_REFUSALS.find((each) => each === named);
    return { open: false, status: head.status, refusal };
  }
  const broken = (what: string) =>
    new ProxyProtocolError(
      `server ${server} answered the WebSocket upgrade with 101 but ${what}`,
    );
  if (headerValue(head, "upgrade")?.trim().toLowerCase() !== "websocket") {
    throw broken("without Upgrade: websocket");
  }
  const connection = headerValue(head, "connection")?.toLowerCase() ?? "";
  if (!connection.split(",").some((token) => token.trim() === "upgrade")) {
    throw broken("without Connection: Upgrade");
  }
  if (headerValue(head, "sec-websocket-accept")?.trim() !== acceptFor(key)) {
    throw broken("with a Sec-WebSocket-Accept that does not match our key");
  }
  const protocol = headerValue(head, "sec-websocket-protocol")?.trim();
  if (protocol !== subprotocol) {
    throw broken(
      protocol === undefined
        ? `without choosing the subprotocol ${subprotocol}`
        : `with subprotocol "${printable(protocol)}" instead of ${subprotocol}`,
    );
  }
  if (headerValue(head, "sec-websocket-extensions") !== undefined) {
    throw broken("with an extension this tool did not ask for");
  }
  return { open: true };
}
