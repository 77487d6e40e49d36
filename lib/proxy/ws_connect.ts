/**
 * The connector for ws:// and wss:// hops: this tool's tunnel server
 * (`serve`) asked for the next address by a WebSocket upgrade carrying the
 * bearer token and the target (PROTOCOL-DRAFT.md). The 101 makes the
 * stream a {@link WsStream}; a refusal becomes a {@link WsRefusedError}
 * with the server's one-line reason. {@link wsSessionUpgrade} asks for a
 * session of protocol v2 instead (lib/route/session_pool.ts).
 *
 * @module
 */

import { ProxyProtocolError, WsRefusedError } from "../errors.ts";
import { formatHostPort, type HostPort } from "../net/address.ts";
import { BufferedDuplex } from "../net/buffered.ts";
import { closeQuietly, type Duplex, writeAll } from "../net/duplex.ts";
import type { Proxy } from "../route/types.ts";
import {
  buildUpgradeRequest,
  checkUpgradeResponse,
  newKey,
  SUBPROTOCOL,
  SUBPROTOCOL_V2,
} from "../ws/handshake.ts";
import { WsStream } from "../ws/stream.ts";
import type { Connector, ConnectRequest } from "./connector.ts";
import { withDeadline } from "./deadline.ts";
import {
  headerValue,
  printable,
  readResponseHead,
  type ResponseHead,
} from "./http_head.ts";

/** The most of a refusal's body read for its reason. */
const MAX_REASON_BYTES = 1024;

/**
 * Names a ws:// or wss:// server for messages: `host:port/path`.
 *
 * @param proxy The hop.
 * @returns e.g. `tunnel.example.org:443/t`.
 */
export function describeServer(proxy: Proxy): string {
  return `${formatHostPort(proxy)}${proxy.path ?? "/"}`;
}

/**
 * The server does not speak httptunneling.v2 (an older `serve`, or another
 * implementation of v1): it answered the session upgrade with 400 or 404,
 * or chose another subprotocol. The caller falls back to v1 tunnels.
 */
export class NoSessionProtocolError extends Error {
  /** @param server The server, for the log. */
  constructor(server: string) {
    super(`${server} does not speak ${SUBPROTOCOL_V2}`);
    this.name = "NoSessionProtocolError";
  }
}

/** Asks a tunnel server for a tunnel with a WebSocket upgrade. */
export const wsConnector: Connector = {
  connect(stream, target, request) {
    return upgrade(stream, target, request);
  },
};

/**
 * Asks a tunnel server for a session (protocol httptunneling.v2): the
 * upgrade carries the token and no target; the WebSocket then carries
 * session frames, whose streams do their own flow control.
 *
 * @param stream An open stream to the server (TLS done for wss://).
 * @param request The server, limits, token and heartbeat.
 * @returns The WebSocket connection as a stream of session frame bytes.
 * @throws {WsRefusedError} when the server refused;
 *   {@link NoSessionProtocolError} when it speaks v1 only.
 */
export function wsSessionUpgrade(
  stream: Duplex,
  request: ConnectRequest,
): Promise<WsStream> {
  return upgrade(stream, undefined, request);
}

function upgrade(
  stream: Duplex,
  target: HostPort | undefined,
  request: ConnectRequest,
): Promise<WsStream> {
  const { proxy, settings } = request;
  const server = describeServer(proxy);
  const authority = target === undefined ? "a session" : formatHostPort(target);
  const protocol = target === undefined ? SUBPROTOCOL_V2 : SUBPROTOCOL;
  const key = newKey();
  return withDeadline(
    () => stream,
    `WebSocket upgrade for ${authority} at ${server}`,
    request,
    async () => {
      await writeAll(
        stream,
        new TextEncoder().encode(buildUpgradeRequest({
          server: proxy,
          path: proxy.path ?? "/",
          key,
          target,
          protocol,
          token: settings?.token,
        })),
      );
      const input = new BufferedDuplex(stream);
      const head = await readResponseHead(
        input,
        () =>
          new ProxyProtocolError(
            `server ${server} closed the connection before answering the WebSocket upgrade for ${authority}`,
          ),
      );
      request.observer?.response(head);
      if (target === undefined && speaksV1Only(head)) {
        closeQuietly(stream);
        throw new NoSessionProtocolError(server);
      }
      const answer = checkUpgradeResponse(head, key, server, protocol);
      if (!answer.open) {
        throw new WsRefusedError(
          server,
          authority,
          answer.status,
          answer.refusal ?? "not-a-tunnel",
          await refusalReason(input, head),
        );
      }
      return new WsStream(input, {
        server,
        heartbeatMs: settings?.heartbeatMs,
        windowed: target !== undefined,
      });
    },
  );
}

// A v1-only server refuses the v2 upgrade as a request without a target
// (400) or as no tunnel request at all (404), or picks v1.
function speaksV1Only(head: ResponseHead): boolean {
  if (head.status === 400 || head.status === 404) return true;
  return head.status === 101 &&
    headerValue(head, "sec-websocket-protocol")?.trim() !== SUBPROTOCOL_V2;
}

// The first line of a refusal's body, bounded; empty when there is none.
async function refusalReason(
  input: BufferedDuplex,
  head: ResponseHead,
): Promise<string> {
  const length = Number(headerValue(head, "content-length") ?? "0");
  if (!Number.isSafeInteger(length) || length <= 0) return "";
  const want = Math.min(length, MAX_REASON_BYTES);
  try {
    const body = await input.take(want);
    return printable(new TextDecoder().decode(body).split(/\r?\n/)[0]);
  } catch {
    return "";
  }
}
