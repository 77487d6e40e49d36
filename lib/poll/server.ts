/**
 * The far end of the poll transport (./wire.ts): each poll is a
 * {@link ServerTransport} that {@link ServeSessions} runs a session over,
 * as it runs one over a WebSocket. `open` makes a poll bound to the
 * token's name; `send` bodies are handed to the session once each, by
 * their sequence number; a `receive` is answered with the frame bytes
 * queued, held up to {@link HOLD_MS} while none are; `close` ends the
 * session. A poll that sees no request for the idle limit is a lost
 * transport: its session waits for a resume, as after a dropped WebSocket.
 * A request naming an unknown poll, or another token's, gets the same
 * refusal, so ids cannot be probed.
 *
 * ```
 * FarEnd.handle ─ admitted ─▶ PollServer.handle ─┬─ open ─▶ PollTransport ─▶ ServeSessions.run
 *                                                ├─ send ─▶ transport.bytes (once per seq)
 *                                                ├─ receive ◀─ DownstreamQueue (held ≤ 10 s)
 *                                                └─ close ─▶ ended (clean)
 * ```
 *
 * @module
 */

import { concat } from "../net/bytes.ts";
import { formatDuration } from "../time/duration.ts";
import type { ServeSessions } from "../serve/sessions.ts";
import type {
  ServerTransport,
  TransportCloseReason,
  TransportHandlers,
} from "../serve/transport.ts";
import {
  DownstreamQueue,
  HOLD_MS,
  LENGTH_HEADER,
  MAX_POLLS,
  MAX_SEND_BYTES,
  newPollId,
  POLL_ID_HEADER,
  type PollRequest,
  readPollRequest,
  seqStanding,
} from "./wire.ts";

/** A poll request the server refuses: status, word and the one-line reason. */
export interface PollRefusal {
  /** The status, e.g. 404. */
  readonly status: number;
  /** The refusal header's word. */
  readonly word: "bad-request" | "busy" | "unknown-poll" | "too-large";
  /** Why, for the client and the log. */
  readonly reason: string;
}

/** Options of {@link PollServer}. */
export interface PollServerOptions {
  /** A poll without a request for this long is a lost transport. */
  readonly idleMs: number;
  /**
   * How long a `receive` is held with nothing to send.
   * @default HOLD_MS, or a third of `idleMs` when that is shorter
   */
  readonly holdMs?: number;
  /** The most polls at once. @default MAX_POLLS */
  readonly maxPolls?: number;
  /** Fills an array with random bytes, for poll ids. @default crypto.getRandomValues */
  readonly random?: (bytes: Uint8Array) => Uint8Array;
}

const UNKNOWN: PollRefusal = {
  status: 404,
  word: "unknown-poll",
  reason:
    "unknown poll: it ended or expired, or the server restarted; open a new one",
};

/** The polls of a far end. */
export class PollServer {
  readonly #sessions: ServeSessions;
  readonly #options: PollServerOptions;
  readonly #polls = new Map<string, PollTransport>();

  /**
   * @param sessions The sessions the polls carry.
   * @param options The idle limit, the hold time, the poll limit.
   */
  constructor(sessions: ServeSessions, options: PollServerOptions) {
    this.#sessions = sessions;
    this.#options = options;
  }

  /** Polls open now. */
  get size(): number {
    return this.#polls.size;
  }

  /**
   * Reads a request's kind before it is admitted: an `open` is admitted
   * like an upgrade (and refused while shutting down), the others belong
   * to a running session.
   *
   * @param request The request.
   * @returns The poll request, or a refusal for a malformed one.
   */
  read(request: Request): PollRequest | PollRefusal {
    const read = readPollRequest(
      request.method,
      (name) => request.headers.get(name),
    );
    return typeof read === "string"
      ? { status: 400, word: "bad-request", reason: read }
      : read;
  }

  /**
   * Answers an admitted poll request.
   *
   * @param request The HTTP request.
   * @param poll What {@link read} made of it.
   * @param token The name of the token that authenticated it.
   * @param client The client's address, for the log.
   * @returns The answer, or a refusal for the caller to answer and log.
   */
  async handle(
    request: Request,
    poll: PollRequest,
    token: string,
    client: string,
  ): Promise<Response | PollRefusal> {
    if (poll.kind === "open") return this.#open(token, client);
    const transport = this.#polls.get(poll.id);
    // Another token's poll is refused as an unknown one.
    if (transport === undefined || transport.token !== token) return UNKNOWN;
    transport.touch();
    try {
      switch (poll.kind) {
        case "close":
          this.#polls.delete(poll.id);
          transport.end({ clean: true, detail: "poll transport (closed)" });
          return empty();
        case "send":
          return await this.#send(request, transport, poll.seq);
        case "receive":
          return await this.#receive(request, transport, poll.seq);
      }
    } finally {
      transport.touch();
    }
  }

  #open(token: string, client: string): Response | PollRefusal {
    const max = this.#options.maxPolls ?? MAX_POLLS;
    if (this.#polls.size >= max) {
      return {
        status: 503,
        word: "busy",
        reason: `the server has ${max} polls open, its limit`,
      };
    }
    const id = newPollId(this.#options.random);
    const transport = new PollTransport(
      token,
      this.#options.idleMs,
      () => this.#polls.delete(id),
    );
    this.#polls.set(id, transport);
    this.#sessions.run(transport, token, client);
    return empty({ [POLL_ID_HEADER]: id });
  }

  async #send(
    request: Request,
    transport: PollTransport,
    seq: number,
  ): Promise<Response | PollRefusal> {
    const body = await readBounded(request, MAX_SEND_BYTES);
    if (body === undefined) {
      return {
        status: 413,
        word: "too-large",
        reason: `a send body holds at most ${MAX_SEND_BYTES} bytes`,
      };
    }
    // Looked at once the body is in: a repeat sent on a new connection
    // may overtake the first copy, which is then the repeat.
    const standing = seqStanding(transport.upstream, seq);
    if (standing === "gap") return this.#gap(transport, "send", seq);
    if (standing === "next") {
      transport.upstream++;
      transport.deliver(body);
    }
    return empty();
  }

  async #receive(
    request: Request,
    transport: PollTransport,
    seq: number,
  ): Promise<Response | PollRefusal> {
    if (
      seqStanding(transport.queue.expected, seq) === "next" &&
      transport.queue.backlog === 0
    ) {
      await transport.hold(
        // Held well within the idle limit, which the request started.
        this.#options.holdMs ?? Math.min(HOLD_MS, this.#options.idleMs / 3),
        request.signal,
      );
    }
    const body = transport.queue.answer(seq);
    if (body === undefined) return this.#gap(transport, "receive", seq);
    // Frame bytes are always in an ArrayBuffer (never shared memory).
    return new Response(body as Uint8Array<ArrayBuffer>, {
      headers: {
        "content-type": "application/octet-stream",
        "cache-control": "no-store",
        [LENGTH_HEADER]: String(body.length),
      },
    });
  }

  #gap(transport: PollTransport, kind: string, seq: number): PollRefusal {
    transport.close("protocol", `${kind} ${seq} out of sequence`);
    return {
      status: 409,
      word: "bad-request",
      reason: `${kind} ${seq} is out of sequence; the poll is closed`,
    };
  }
}

// One poll: the transport its session runs over.
class PollTransport implements ServerTransport {
  readonly name = "poll transport";
  readonly kind = "poll";
  readonly token: string;
  readonly queue = new DownstreamQueue();
  /** The sequence number of the next new `send`. */
  upstream = 0;
  readonly #idleMs: number;
  readonly #forget: () => void;
  #handlers: TransportHandlers | undefined;
  #ended = false;
  #idle: ReturnType<typeof setTimeout> | undefined;
  #wake: (() => void) | undefined;

  constructor(token: string, idleMs: number, forget: () => void) {
    this.token = token;
    this.#idleMs = idleMs;
    this.#forget = forget;
    this.touch();
  }

  get backlog(): number {
    return this.queue.backlog;
  }

  send(parts: readonly Uint8Array[]): void {
    if (this.#ended) return;
    this.queue.push(concat(...parts));
    this.#wakeHeld();
  }

  start(handlers: TransportHandlers): void {
    this.#handlers = handlers;
  }

  close(why: TransportCloseReason, reason: string): void {
    this.end({ clean: false, detail: `poll transport (${why}: ${reason})` });
  }

  /** Ends the poll once; its session is told. */
  end(end: { clean: boolean; detail: string }): void {
    if (this.#ended) return;
    this.#ended = true;
    clearTimeout(this.#idle);
    this.#forget();
    this.#wakeHeld();
    this.#handlers?.ended(end);
  }

  /** A request came or was answered: the idle limit starts again. */
  touch(): void {
    if (this.#ended) return;
    clearTimeout(this.#idle);
    this.#idle = setTimeout(() => {
      this.end({
        clean: false,
        detail: `poll transport (no request within ${
          formatDuration(this.#idleMs)
        })`,
      });
    }, this.#idleMs);
  }

  /** The client's bytes, in order. */
  deliver(bytes: Uint8Array): void {
    if (!this.#ended) this.#handlers?.bytes(bytes);
  }

  /**
   * Waits until bytes are queued, `ms` passed, the request was abandoned,
   * another `receive` came, or the poll ended.
   */
  hold(ms: number, signal: AbortSignal): Promise<void> {
    // A newer receive (the client reconnected) answers the older at once.
    this.#wakeHeld();
    if (this.#ended) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        if (this.#wake === done) this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener("abort", done, { once: true });
      this.#wake = done;
    });
  }

  #wakeHeld(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

function empty(headers: Record<string, string> = {}): Response {
  return new Response(null, {
    headers: { "cache-control": "no-store", ...headers },
  });
}

// The request's body, or undefined when it is longer than `max` bytes.
async function readBounded(
  request: Request,
  max: number,
): Promise<Uint8Array | undefined> {
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (!Number.isSafeInteger(declared) || declared > max) return undefined;
  if (request.body === null) return new Uint8Array(0);
  const parts: Uint8Array[] = [];
  let size = 0;
  for await (const part of request.body) {
    size += part.length;
    if (size > max) return undefined;
    parts.push(part);
  }
  return parts.length === 1 ? parts[0] : concat(...parts);
}
