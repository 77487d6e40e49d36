/**
 * The connector for ws:// and wss:// hops: this tool's tunnel server
 * (`serve`) asked for the next address by a WebSocket upgrade carrying the
 * bearer token and the target (PROTOCOL-DRAFT.md). The 101 makes the
 * stream a {@link WsStream}; a refusal becomes a {@link WsRefusedError}
 * with the server's one-line reason.
 *
 * @module
 */

import { ProxyProtocolError, WsRefusedError } from "../errors.ts";
import { formatHostPort } from "../net/address.ts";
import { BufferedDuplex } from "../net/buffered.ts";
import { writeAll } from "../net/duplex.ts";
import type { Proxy } from "../route/types.ts";
import {
  buildUpgradeRequest,
  checkUpgradeResponse,
  newKey,
} from "../ws/handshake.ts";
import { WsStream } from "../ws/stream.ts";
import type { Connector } from "./connector.ts";
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

/** Asks a tunnel server for a tunnel with a WebSocket upgrade. */
export const wsConnector: Connector = {
  connect(stream, target, request) {
    const { proxy, settings } = request;
    const server = describeServer(proxy);
    const authority = formatHostPort(target);
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
        const answer = checkUpgradeResponse(head, key, server);
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
        });
      },
    );
  },
};

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
