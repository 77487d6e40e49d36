/**
 * The first request on a TLS connection serve accepted itself, read here
 * (bounded in size and time) to pick who answers it. A WebSocket upgrade
 * for a v2 session on the tunnel path is answered by serve itself: the
 * same admission as every request (`FarEnd.answer`), then the 101 and the
 * session over ./ws_transport.ts on the connection, with no relay and no
 * `Deno.serve` on the way. Everything else (the site, poll requests, v1
 * upgrades, a head this strict reader does not take) goes to `Deno.serve`
 * with the bytes read replayed first, as if nothing had read them. A head
 * too large is answered 431 (or 414), one that does not arrive in time is
 * cut.
 *
 * ```
 * readFirstRequest ─┬─ v2 upgrade on the path ─▶ answerUpgrade ─ FarEnd.answer ─┬─ refusal written
 *                   │                                                           └─ 101 ─▶ WsConnection ─▶ session
 *                   ├─ anything else ─▶ replay ─▶ Deno.serve (the listener's relay)
 *                   └─ too large, too slow ─▶ cut
 * ```
 *
 * @module
 */

import {
  errorResponse,
  type HeaderField,
  HttpMessageError,
  readRequestHead,
  type RequestHead,
} from "../local/http1.ts";
import { formatHostPort } from "../net/address.ts";
import { BufferedDuplex } from "../net/buffered.ts";
import { concat } from "../net/bytes.ts";
import { closeQuietly, type Duplex, writeAll } from "../net/duplex.ts";
import { POLL_HEADER } from "../poll/wire.ts";
import { coarseTimers } from "../time/timers.ts";
import { formatDuration } from "../time/duration.ts";
import { buildUpgradeResponse, SUBPROTOCOL_V2 } from "../ws/handshake.ts";
import type { SessionUpgrader } from "./transport.ts";
import { WsConnection } from "./ws_transport.ts";

/** The largest first request head read before it is answered 431. */
export const MAX_FIRST_HEAD_BYTES = 64 * 1024;

/** Who answers the v2 upgrades serve takes itself: the far end. */
export interface DirectSessions {
  /** The tunnel path. */
  readonly path: string;
  /**
   * Admits a request and answers it (`FarEnd.answer`).
   *
   * @param request The request.
   * @param remote The client.
   * @param upgrade Turns an admitted v2 upgrade into its transport.
   * @returns A refusal, or the upgrader's answer.
   */
  answer<A>(
    request: Request,
    remote: Deno.NetAddr,
    upgrade: SessionUpgrader<A>,
  ): Promise<Response | A>;
}

/** The first request on a connection, as far as choosing who answers it goes. */
export type FirstRequest =
  | {
    /** A v2 upgrade on the tunnel path: serve answers it. */
    readonly kind: "upgrade";
    readonly request: Request;
    /** Bytes the client sent past the head. */
    readonly rest: Uint8Array;
  }
  | {
    /** Anything else: for `Deno.serve`. */
    readonly kind: "other";
    /** Every byte read from the connection, to be replayed first. */
    readonly replay: Uint8Array;
  }
  | {
    /** Too large (answered) or too slow: the connection is to be closed. */
    readonly kind: "cut";
    /** Why, for the log. */
    readonly why: string;
  };

/** Options of {@link readFirstRequest}. */
export interface ReadFirstRequestOptions {
  /** The tunnel path. */
  readonly path: string;
  /** How long the whole head may take to arrive. */
  readonly timeoutMs: number;
  /** The largest head. @default {@link MAX_FIRST_HEAD_BYTES} */
  readonly maxHeadBytes?: number;
}

/**
 * Reads the first request head on a connection and says who answers it.
 *
 * @param conn The decrypted connection.
 * @param options The tunnel path and the limits.
 * @returns The choice, or `undefined` when the client closed before
 *   sending anything.
 * @throws when reading fails, or the client leaves in the middle of its
 *   head; the connection is closed then.
 */
export async function readFirstRequest(
  conn: Duplex,
  options: ReadFirstRequestOptions,
): Promise<FirstRequest | undefined> {
  const seen: Uint8Array[] = [];
  const recording: Duplex = {
    read: async (buffer) => {
      const n = await conn.read(buffer);
      if (n !== null) seen.push(buffer.slice(0, n));
      return n;
    },
    write: (data) => conn.write(data),
    closeWrite: () => conn.closeWrite(),
    close: () => conn.close(),
  };
  const input = new BufferedDuplex(recording, {
    onEnd: () => new Error("the client left in the middle of its request"),
  });
  const maxHeadBytes = options.maxHeadBytes ?? MAX_FIRST_HEAD_BYTES;
  const choose = async (): Promise<FirstRequest | undefined> => {
    try {
      const head = await readRequestHead(input, { maxHeadBytes });
      if (head === undefined) return undefined;
      const request = upgradeRequest(head, options.path);
      if (request !== undefined) {
        return { kind: "upgrade", request, rest: input.buffered };
      }
    } catch (error) {
      if (!(error instanceof HttpMessageError)) throw error;
      if (error.status === 414 || error.status === 431) {
        await writeAll(conn, errorResponse(error.status, error.message))
          .catch(() => {});
        return {
          kind: "cut",
          why: `${error.message} (answered ${error.status})`,
        };
      }
      // Malformed for this strict reader: Deno.serve answers as it would.
    }
    return { kind: "other", replay: concat(...seen) };
  };
  // A read the limit ends may end as a close before any request, or as
  // an error: either way the limit is what is reported.
  let timedOut = false;
  const timer = coarseTimers.after(options.timeoutMs, () => {
    timedOut = true;
    closeQuietly(conn);
  });
  let result: FirstRequest | undefined;
  try {
    result = await choose();
  } catch (error) {
    if (!timedOut) throw error;
  } finally {
    timer.cancel();
  }
  if (!timedOut) return result;
  const limit = formatDuration(options.timeoutMs);
  return {
    kind: "cut",
    why: seen.length === 0
      ? `nothing moved for ${limit}`
      : `no whole request head within ${limit}`,
  };
}

/**
 * The request of a head that serve answers itself: a `GET` over HTTP/1.1
 * to the tunnel path with `Upgrade: websocket`, offering
 * httptunneling.v2, without a body or the poll transport's header. The
 * rest of the upgrade (Connection, key, version) is checked once the
 * request is admitted, as `Deno.upgradeWebSocket` does. Pure.
 *
 * @param head The request head.
 * @param path The tunnel path.
 * @returns The request, or `undefined` when the head is anything else.
 *
 * @example
 * ```ts
 * upgradeRequest({
 *   method: "GET", target: "/t", version: "HTTP/1.1",
 *   headers: [["Host", "h"], ["Upgrade", "websocket"],
 *     ["Sec-WebSocket-Protocol", "httptunneling.v2"]],
 * }, "/t"); // a Request for https://h/t
 * ```
 */
export function upgradeRequest(
  head: RequestHead,
  path: string,
): Request | undefined {
  if (
    head.method !== "GET" || head.version !== "HTTP/1.1" ||
    !head.target.startsWith("/")
  ) return undefined;
  const field = (name: string) => fieldValue(head.headers, name);
  if (
    field("upgrade")?.toLowerCase() !== "websocket" ||
    field(POLL_HEADER) !== undefined ||
    field("content-length") !== undefined ||
    field("transfer-encoding") !== undefined
  ) return undefined;
  const protocols = field("sec-websocket-protocol")?.split(",") ?? [];
  if (!protocols.some((each) => each.trim() === SUBPROTOCOL_V2)) {
    return undefined;
  }
  const host = field("host");
  if (host === undefined) return undefined;
  try {
    const url = new URL(`https://${host}${head.target}`);
    if (url.pathname !== path) return undefined;
    return new Request(url, { headers: head.headers.map(([n, v]) => [n, v]) });
  } catch {
    // A Host or target URL cannot take: Deno.serve answers it.
    return undefined;
  }
}

// A field's values joined as `Headers.get` joins them.
function fieldValue(
  headers: readonly HeaderField[],
  name: string,
): string | undefined {
  const lower = name.toLowerCase();
  const values = headers
    .filter(([each]) => each.toLowerCase() === lower)
    .map(([, value]) => value);
  return values.length === 0 ? undefined : values.join(", ");
}

/**
 * Answers a v2 upgrade serve took itself: admitted by `sessions`, then
 * either its refusal written, or the 101 and the session carried on the
 * connection until it ends.
 *
 * @param conn The decrypted connection; the caller closes it after.
 * @param upgrade The request and the bytes past its head.
 * @param remote The client.
 * @param sessions The far end.
 * @param onError Answers a request whose handling failed (500).
 */
export async function answerUpgrade(
  conn: Duplex,
  upgrade: { readonly request: Request; readonly rest: Uint8Array },
  remote: Deno.NetAddr,
  sessions: DirectSessions,
  onError: (error: unknown) => Response,
): Promise<void> {
  const peer = formatHostPort({ host: remote.hostname, port: remote.port });
  const upgrader: SessionUpgrader<WsConnection> = (
    request,
    { protocol, idleTimeoutSeconds },
  ) => {
    const key = upgradeKey(request.headers);
    const connection = new WsConnection(conn, {
      head: new TextEncoder().encode(buildUpgradeResponse(key, protocol)),
      initial: upgrade.rest,
      idleTimeoutMs: idleTimeoutSeconds * 1000,
      peer,
    });
    return { transport: connection, answer: connection };
  };
  let answer: Response | WsConnection;
  try {
    answer = await sessions.answer(upgrade.request, remote, upgrader);
  } catch (error) {
    answer = onError(error);
  }
  if (answer instanceof WsConnection) return await answer.done;
  await writeAll(conn, await responseBytes(answer));
}

/**
 * The key of a valid upgrade request (RFC 6455 §4.2.1), checked as
 * `Deno.upgradeWebSocket` checks it.
 *
 * @throws an Error naming what is missing.
 */
function upgradeKey(headers: Headers): string {
  const connection = headers.get("connection") ?? "";
  if (
    !connection.split(",").some((each) =>
      each.trim().toLowerCase() === "upgrade"
    )
  ) {
    throw new Error("Connection does not name Upgrade");
  }
  if (headers.get("sec-websocket-version") !== "13") {
    throw new Error("Sec-WebSocket-Version is not 13");
  }
  const key = headers.get("sec-websocket-key");
  if (!key) throw new Error("no Sec-WebSocket-Key");
  return key;
}

// A plain-text answer of the far end (a refusal, a 500) as HTTP/1.1
// bytes, after which the connection is closed.
async function responseBytes(response: Response): Promise<Uint8Array> {
  const body = await response.text();
  const fields: HeaderField[] = [...response.headers].filter(([name]) =>
    name !== "content-type" && name !== "content-length"
  );
  return errorResponse(
    response.status,
    body.endsWith("\n") ? body.slice(0, -1) : body,
    fields,
  );
}
