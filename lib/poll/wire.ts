/**
 * The poll transport's wire format (httptunneling.v2 over plain HTTP/1.1,
 * for paths that strip `Upgrade` or buffer responses): the same session
 * frames as over a WebSocket, upstream as POST bodies and downstream as
 * the bodies of GET answers. Every request names its kind in
 * {@link POLL_HEADER} and carries the bearer token; a poll is named by an
 * id the server made (128 bits from the CSPRNG, bound to the token that
 * opened it), and `send` and `receive` requests carry a sequence number
 * each, so that a request repeated on a new connection after its answer
 * was lost is recognised: an upstream body is applied once, a downstream
 * answer is sent again byte for byte. Pure: headers and bytes in, values
 * out.
 *
 * ```
 * POST open              → 200, X-Httptunneling-Poll-Id
 * POST send    id seq n  → 200 (body: session frame bytes, applied once)
 * GET  receive id seq n  → 200, X-Httptunneling-Length, the frame bytes queued (held ≤ 10 s when none)
 * POST close   id        → 200 (the session ends, as a WebSocket close 1000)
 * ```
 *
 * @module
 */

import { formatHostPort, type HostPort } from "../net/address.ts";
import { concat } from "../net/bytes.ts";
import { ChunkQueue } from "../net/chunk_queue.ts";
import { USER_AGENT } from "../version.ts";

/** The header naming a poll request's kind. */
export const POLL_HEADER = "X-Httptunneling-Poll";
/** The header naming the poll (requests) or the new poll (the open's answer). */
export const POLL_ID_HEADER = "X-Httptunneling-Poll-Id";
/** The header carrying a `send` or `receive` request's sequence number. */
export const SEQ_HEADER = "X-Httptunneling-Seq";
/**
 * The header carrying a `receive` answer's body length, which a proxy that
 * re-frames the answer (chunked, or until it closes) passes on: the client
 * checks the body against it.
 */
export const LENGTH_HEADER = "X-Httptunneling-Length";

/** The most session bytes in one `send` body. */
export const MAX_SEND_BYTES = 1024 * 1024;
/** The most session bytes in one `receive` answer. */
export const MAX_RECEIVE_BYTES = 1024 * 1024;
/**
 * The longest the server holds a `receive` when it has nothing to send: an
 * idle session costs a request per hold, and every request is a line in
 * the proxy's log; proxies wait far longer than this for an answer.
 */
export const HOLD_MS = 10_000;
/** The most polls a server keeps at once, over all tokens. */
export const MAX_POLLS = 1024;

// Sequence numbers stay exact in a double.
const MAX_SEQ = Number.MAX_SAFE_INTEGER;

/** What a poll request asks. */
export type PollKind = "open" | "send" | "receive" | "close";

/** A poll request's method for each kind. */
export const POLL_METHODS: Readonly<Record<PollKind, "GET" | "POST">> = {
  open: "POST",
  send: "POST",
  receive: "GET",
  close: "POST",
};

/** A poll request as the server reads it. */
export type PollRequest =
  | { readonly kind: "open" }
  | {
    readonly kind: "send" | "receive";
    readonly id: string;
    readonly seq: number;
  }
  | { readonly kind: "close"; readonly id: string };

/**
 * A fresh poll id: 16 bytes from the CSPRNG, in lower-case hex.
 *
 * @param random Fills an array with random bytes. @default crypto.getRandomValues
 * @returns 32 hex digits.
 *
 * @example
 * ```ts
 * newPollId((bytes) => bytes.fill(0xab)); // "abab…ab" (32 digits)
 * ```
 */
export function newPollId(
  random: (bytes: Uint8Array) => Uint8Array = (bytes) =>
    crypto.getRandomValues(bytes),
): string {
  return Array.from(
    random(new Uint8Array(16)),
    (byte) => byte.toString(16).padStart(2, "0"),
  ).join("");
}

/**
 * Reads a poll request's kind, id and sequence number. Pure.
 *
 * @param method The request's method.
 * @param header Reads a request header (`Headers.get`).
 * @returns The request, or a message saying what is wrong with it.
 *
 * @example
 * ```ts
 * readPollRequest("GET", (name) => ({
 *   "x-httptunneling-poll": "receive",
 *   "x-httptunneling-poll-id": "00".repeat(16),
 *   "x-httptunneling-seq": "3",
 * })[name] ?? null); // { kind: "receive", id: "000…0", seq: 3 }
 * ```
 */
export function readPollRequest(
  method: string,
  header: (name: string) => string | null,
): PollRequest | string {
  const kind = header(POLL_HEADER.toLowerCase())?.trim().toLowerCase();
  if (kind === undefined || !(kind in POLL_METHODS)) {
    return `${POLL_HEADER} must be open, send, receive or close`;
  }
  const pollKind = kind as PollKind;
  if (method !== POLL_METHODS[pollKind]) {
    return `a ${pollKind} poll request is a ${POLL_METHODS[pollKind]}, not ${
      method.slice(0, 16)
    }`;
  }
  if (pollKind === "open") return { kind: "open" };
  const id = header(POLL_ID_HEADER.toLowerCase())?.trim().toLowerCase();
  if (id === undefined || !/^[0-9a-f]{32}$/.test(id)) {
    return `${POLL_ID_HEADER} must be the 32 hex digits the open answered`;
  }
  if (pollKind === "close") return { kind: "close", id };
  const seq = parseSeq(header(SEQ_HEADER.toLowerCase()));
  if (seq === undefined) {
    return `${SEQ_HEADER} must be a whole number from 0`;
  }
  return { kind: pollKind, id, seq };
}

/**
 * Reads a sequence number: decimal digits, 0 to 2^53 − 1.
 *
 * @param text The header's value, or `null`.
 * @returns The number, or `undefined`.
 */
export function parseSeq(text: string | null): number | undefined {
  if (text === null || !/^\d{1,16}$/.test(text.trim())) return undefined;
  const seq = Number(text.trim());
  return seq <= MAX_SEQ ? seq : undefined;
}

/**
 * Where a request's sequence number stands against the one expected:
 * `next` is new and applied, `repeat` is the one before (its answer was
 * lost; it is answered again and not applied twice), `gap` anything else
 * (a protocol error).
 *
 * @param expected The number the next new request carries.
 * @param seq The request's number.
 * @returns How to treat it.
 *
 * @example
 * ```ts
 * seqStanding(5, 5); // "next"
 * seqStanding(5, 4); // "repeat"
 * seqStanding(5, 7); // "gap"
 * ```
 */
export function seqStanding(
  expected: number,
  seq: number,
): "next" | "repeat" | "gap" {
  if (seq === expected) return "next";
  return seq >= 0 && seq === expected - 1 ? "repeat" : "gap";
}

/** What a client's poll request carries. */
export interface PollRequestHead {
  /** The server, for `Host`. */
  readonly server: HostPort;
  /** The tunnel path. */
  readonly path: string;
  /** The bearer token; no `Authorization` without one. */
  readonly token?: string;
  /** Its kind. */
  readonly kind: PollKind;
  /** The poll, except for `open`. */
  readonly id?: string;
  /** The sequence number of a `send` or `receive`. */
  readonly seq?: number;
  /** The body's length (a `send`'s bytes). @default 0 */
  readonly bodyBytes?: number;
}

/**
 * Builds a poll request's head. Every request carries a `Content-Length`
 * (none for the GET) and `Cache-Control: no-store`, so a proxy on the way
 * neither caches nor re-frames it.
 *
 * @param request The server, path, token, kind, poll and sequence number.
 * @returns The head, ready for one write before the body.
 *
 * @example
 * ```ts
 * buildPollRequest({ server: { host: "far", port: 80 }, path: "/t", kind: "open" });
 * // "POST /t HTTP/1.1\r\nHost: far:80\r\n…X-Httptunneling-Poll: open\r\nContent-Length: 0\r\n\r\n"
 * ```
 */
export function buildPollRequest(request: PollRequestHead): string {
  const method = POLL_METHODS[request.kind];
  const lines = [
    `${method} ${request.path} HTTP/1.1`,
    `Host: ${formatHostPort(request.server)}`,
    `User-Agent: ${USER_AGENT}`,
    "Cache-Control: no-store",
    ...(request.token === undefined
      ? []
      : [`Authorization: Bearer ${request.token}`]),
    `${POLL_HEADER}: ${request.kind}`,
    ...(request.id === undefined ? [] : [`${POLL_ID_HEADER}: ${request.id}`]),
    ...(request.seq === undefined ? [] : [`${SEQ_HEADER}: ${request.seq}`]),
    ...(method === "POST"
      ? [
        "Content-Type: application/octet-stream",
        `Content-Length: ${request.bodyBytes ?? 0}`,
      ]
      : []),
  ];
  return lines.join("\r\n") + "\r\n\r\n";
}

/**
 * The server's downstream bytes of one poll: frame bytes queued until a
 * `receive` takes them (at most {@link MAX_RECEIVE_BYTES} at a time), and
 * the last answer, kept until the next `receive` so that a repeat gets the
 * same bytes. Pure.
 */
export class DownstreamQueue {
  readonly #cap: number;
  readonly #queued = new ChunkQueue();
  #last: { seq: number; body: Uint8Array } | undefined;

  /** @param cap The most bytes in one answer. @default MAX_RECEIVE_BYTES */
  constructor(cap: number = MAX_RECEIVE_BYTES) {
    this.#cap = cap;
  }

  /** Queued bytes no `receive` has taken yet. */
  get backlog(): number {
    return this.#queued.bytes;
  }

  /** The sequence number the next new `receive` carries. */
  get expected(): number {
    return this.#last === undefined ? 0 : this.#last.seq + 1;
  }

  /**
   * Queues frame bytes for the client.
   *
   * @param bytes Encoded frames (the queue keeps them).
   */
  push(bytes: Uint8Array): void {
    this.#queued.push(bytes);
  }

  /**
   * The answer to `receive` number `seq`: the last answer again for a
   * repeat, otherwise up to the cap of what is queued (possibly nothing).
   *
   * @param seq The request's sequence number.
   * @returns The body, or `undefined` for a gap in the numbers.
   */
  answer(seq: number): Uint8Array | undefined {
    const standing = seqStanding(this.expected, seq);
    if (standing === "gap") return undefined;
    if (standing === "repeat") return this.#last!.body;
    const parts = this.#queued.take(this.#cap);
    const body = parts.length === 1 ? parts[0] : concat(...parts);
    this.#last = { seq, body };
    return body;
  }
}
