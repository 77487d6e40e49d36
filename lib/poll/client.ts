/**
 * The client of the poll transport (./wire.ts): a v2 session's frame bytes
 * over plain HTTP/1.1 requests, for paths that strip `Upgrade` or buffer
 * responses. Two keep-alive connections to `serve`, each dialed as the
 * WebSocket's is (the hops before it, their authentication, TLS): one
 * carries `send` POSTs, the other `receive` GETs. Together they are one
 * {@link Duplex} of frame bytes, the interface the session pool runs a
 * session over.
 *
 * A request whose connection fails or closes is sent once more, with the
 * same sequence number, on a new connection (a proxy ends keep-alive
 * connections when it likes); when that fails too, the stream fails, and
 * the session pool takes it as a lost transport and resumes the session.
 *
 * ```
 * write() ─▶ outbox ─▶ send pump ─ POST send seq ─▶ up lane ───┐
 * read()  ◀─ inbox  ◀─ receive loop ◀─ GET receive seq ◀─ down lane ◀─ serve
 * ```
 *
 * @module
 */

import { ProxyProtocolError, WsRefusedError } from "../errors.ts";
import { HttpMessageError, responseFraming } from "../local/http1.ts";
import { readBody } from "../local/http1_body.ts";
import type { HostPort } from "../net/address.ts";
import { BufferedDuplex } from "../net/buffered.ts";
import { concat } from "../net/bytes.ts";
import { ChunkQueue } from "../net/chunk_queue.ts";
import { Inbox } from "../net/inbox.ts";
import { closeQuietly, type Duplex, writeAll } from "../net/duplex.ts";
import { withDeadline } from "../proxy/deadline.ts";
import {
  headerValue,
  keepsAlive,
  printable,
  readResponseHead,
  type ResponseHead,
} from "../proxy/http_head.ts";
import { refusalReason } from "../proxy/ws_connect.ts";
import { REFUSAL_HEADER, WS_REFUSALS } from "../ws/handshake.ts";
import {
  buildPollRequest,
  HOLD_MS,
  LENGTH_HEADER,
  MAX_RECEIVE_BYTES,
  MAX_SEND_BYTES,
  POLL_ID_HEADER,
  POLL_METHODS,
  type PollKind,
} from "./wire.ts";

// Received frame bytes held for read(): past this no receive is sent, so
// that a session that reads slowly slows the server.
const INBOX_LIMIT_BYTES = 256 * 1024;
// How long close() waits for the close request's answer.
const CLOSE_LIMIT_MS = 1_000;

/**
 * The server does not answer poll requests (an older `serve`, or not a
 * tunnel server at that path).
 */
export class NoPollTransportError extends Error {
  /**
   * @param server The server, for the log.
   * @param status The status it answered the open with.
   */
  constructor(server: string, status: number) {
    super(
      `${server} does not answer poll requests (status ${status} to an open)`,
    );
    this.name = "NoPollTransportError";
  }
}

/** What a poll needs besides its connections. */
export interface PollOptions {
  /** The server's address, for `Host`. */
  readonly server: HostPort;
  /** The tunnel path. */
  readonly path: string;
  /** `host:port/path`, for messages. */
  readonly name: string;
  /** The bearer token. Never logged. */
  readonly token?: string;
  /** Limit for a request's answer (a `receive` gets the hold time more). */
  readonly timeoutMs: number;
  /** Gives up opening when aborted. */
  readonly signal?: AbortSignal;
}

/**
 * Opens a poll: the `open` request on `stream`, then a second connection
 * for `receive` requests.
 *
 * @param stream An open stream to the server (TLS done for wss://).
 * @param dial Opens another stream to the server the same way.
 * @param options The server, path, token and limits.
 * @returns The poll as a stream of session frame bytes.
 * @throws {WsRefusedError} when the server refused (token, rate limit,
 *   shutting down); {@link NoPollTransportError} when it answered the open
 *   with another status and no refusal of serve's; what the dial throws.
 */
export async function openPoll(
  stream: Duplex,
  dial: () => Promise<Duplex>,
  options: PollOptions,
): Promise<PollStream> {
  const up = new HttpLane(stream, dial, options);
  let down: HttpLane | undefined;
  try {
    const answer = await up.exchange(
      { kind: "open" },
      options.timeoutMs,
      0,
      false,
    );
    const id = headerValue(answer.head, POLL_ID_HEADER)?.trim();
    if (id === undefined || !/^[0-9a-f]{32}$/.test(id)) {
      throw new ProxyProtocolError(
        `server ${options.name} answered the poll open without a poll id`,
      );
    }
    down = new HttpLane(await dial(), dial, options);
    return new PollStream(up, down, id, options);
  } catch (error) {
    up.close();
    down?.close();
    throw error;
  }
}

/** A poll: session frame bytes both ways over HTTP requests. */
export class PollStream implements Duplex {
  readonly #up: HttpLane;
  readonly #down: HttpLane;
  readonly #id: string;
  readonly #options: PollOptions;
  // Received frame bytes not yet read; done once the poll closed.
  readonly #inbox = new Inbox(INBOX_LIMIT_BYTES, () => {
    if (this.#failure) throw this.#failure;
    return !this.#closed;
  });
  readonly #outbox = new ChunkQueue();
  #sendSeq = 0;
  #receiveSeq = 0;
  #pumping: Promise<void> | undefined;
  #failure: Error | undefined;
  #closed = false;
  // write() waiting for room in the outbox.
  #wakeWriter: (() => void) | undefined;

  /**
   * Starts the receive loop.
   *
   * @param up The lane of `send` requests.
   * @param down The lane of `receive` requests.
   * @param id The poll's id.
   * @param options The server, path, token and limits.
   */
  constructor(
    up: HttpLane,
    down: HttpLane,
    id: string,
    options: PollOptions,
  ) {
    this.#up = up;
    this.#down = down;
    this.#id = id;
    this.#options = options;
    // Never rejects: every failure ends the poll through #fail.
    this.#receiveLoop();
  }

  /** Returns received frame bytes; `null` once closed. */
  read(buffer: Uint8Array): Promise<number | null> {
    return this.#inbox.read(buffer);
  }

  /**
   * Returns the next received bytes as they came (an answer's body, or
   * what a {@link read} left of it), handed over: no copy.
   *
   * @returns The bytes; `null` once closed.
   */
  readChunk(): Promise<Uint8Array | null> {
    return this.#inbox.readChunk();
  }

  /**
   * Queues a batch of frame bytes for the next `send`, copied before this
   * returns.
   *
   * @param parts The bytes, in pieces.
   * @returns Settles once they are queued (it waits while a full body is).
   */
  async sendMessage(parts: readonly Uint8Array[]): Promise<void> {
    await this.write(concat(...parts));
  }

  /**
   * Queues frame bytes for the next `send`; waits while a full body is
   * already waiting.
   */
  async write(data: Uint8Array): Promise<number> {
    this.#check();
    this.#outbox.push(data.slice());
    this.#pumping ??= this.#pump();
    while (this.#outbox.bytes >= MAX_SEND_BYTES) {
      this.#check();
      await new Promise<void>((resolve) => this.#wakeWriter = resolve);
    }
    this.#check();
    return data.length;
  }

  /** A session never half-closes its transport. */
  closeWrite(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * Ends the session: after the bytes queued, a `close` request (within a
   * short limit), then both connections close. After a failure the
   * connections just close: the session waits for a resume.
   *
   * @returns Settles when both connections are closed.
   */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    const failed = this.#failure !== undefined;
    this.#closed = true;
    this.#wakeAll();
    this.#down.close();
    if (failed) {
      this.#up.close();
      return Promise.resolve();
    }
    const pumped = this.#pumping ?? Promise.resolve();
    return pumped.then(() =>
      this.#up.exchange(
        { kind: "close", id: this.#id },
        CLOSE_LIMIT_MS,
        0,
        false,
      )
    ).then(() => {}, () => {}).finally(() => this.#up.close());
  }

  #check(): void {
    if (this.#failure) throw this.#failure;
    if (this.#closed) throw new Deno.errors.BadResource("poll closed");
  }

  async #pump(): Promise<void> {
    try {
      while (this.#outbox.bytes > 0) {
        const body = concat(...this.#outbox.take(MAX_SEND_BYTES));
        await this.#up.exchange(
          { kind: "send", id: this.#id, seq: this.#sendSeq },
          this.#options.timeoutMs,
          0,
          true,
          body,
        );
        this.#sendSeq++;
        this.#resumeWriter();
      }
    } catch (error) {
      this.#fail(error);
    } finally {
      this.#pumping = undefined;
    }
  }

  async #receiveLoop(): Promise<void> {
    try {
      while (!this.#closed) {
        while (this.#inbox.full && !this.#closed) await this.#inbox.room();
        if (this.#closed) return;
        const { body } = await this.#down.exchange(
          { kind: "receive", id: this.#id, seq: this.#receiveSeq },
          HOLD_MS + this.#options.timeoutMs,
          MAX_RECEIVE_BYTES,
          true,
        );
        this.#receiveSeq++;
        if (body.length === 0) continue;
        this.#inbox.push(body);
      }
    } catch (error) {
      if (!this.#closed) this.#fail(error);
    }
  }

  #fail(error: unknown): void {
    if (this.#closed || this.#failure) return;
    this.#failure = error instanceof Error ? error : new Error(String(error));
    this.#up.close();
    this.#down.close();
    this.#wakeAll();
  }

  #wakeAll(): void {
    this.#inbox.wake();
    this.#resumeWriter();
  }

  #resumeWriter(): void {
    const wake = this.#wakeWriter;
    this.#wakeWriter = undefined;
    wake?.();
  }
}

/** A request of one lane: its kind, poll and sequence number. */
interface LaneRequest {
  readonly kind: PollKind;
  readonly id?: string;
  readonly seq?: number;
}

/**
 * One keep-alive connection to the server, re-dialed when it closes: a
 * request at a time, each answer's body read as a proxy framed it.
 */
class HttpLane {
  readonly #dial: () => Promise<Duplex>;
  readonly #options: PollOptions;
  #conn: BufferedDuplex | undefined;
  #closed = false;

  constructor(
    conn: Duplex,
    dial: () => Promise<Duplex>,
    options: PollOptions,
  ) {
    this.#dial = dial;
    this.#options = options;
    this.#conn = this.#buffered(conn);
  }

  /**
   * Sends a request and reads its answer. A failure on the connection is
   * followed by one more try on a new one when `retry` is set (the
   * sequence number makes a repeat harmless).
   *
   * @returns The answer's head and body (at most `maxBody` bytes).
   * @throws {WsRefusedError} for a refusal the server named;
   *   {@link NoPollTransportError} for an open's other answers;
   *   {@link ProxyProtocolError} for another answer; the connection's errors.
   */
  async exchange(
    request: LaneRequest,
    timeoutMs: number,
    maxBody: number,
    retry: boolean,
    body?: Uint8Array,
  ): Promise<{ head: ResponseHead; body: Uint8Array }> {
    try {
      return await this.#attempt(request, timeoutMs, maxBody, body);
    } catch (error) {
      if (!retry || this.#closed || !isConnectionFailure(error)) throw error;
      return await this.#attempt(request, timeoutMs, maxBody, body);
    }
  }

  /** Closes the connection; no request is sent any more. */
  close(): void {
    this.#closed = true;
    this.#drop();
  }

  async #attempt(
    request: LaneRequest,
    timeoutMs: number,
    maxBody: number,
    body: Uint8Array | undefined,
  ): Promise<{ head: ResponseHead; body: Uint8Array }> {
    if (this.#closed) throw new Deno.errors.BadResource("poll closed");
    const conn = this.#conn ??= this.#buffered(await this.#dial());
    if (this.#closed) {
      closeQuietly(conn);
      throw new Deno.errors.BadResource("poll closed");
    }
    const { name } = this.#options;
    try {
      return await withDeadline(
        () => conn,
        `poll ${request.kind} at ${name}`,
        {
          timeoutMs,
          signal: request.kind === "open" ? this.#options.signal : undefined,
        },
        async () => {
          const head = new TextEncoder().encode(buildPollRequest({
            ...this.#options,
            ...request,
            bodyBytes: body?.length,
          }));
          await writeAll(
            conn,
            body === undefined || body.length > 16 * 1024
              ? head
              : concat(head, body),
          );
          if (body !== undefined && body.length > 16 * 1024) {
            await writeAll(conn, body);
          }
          const answer = await readResponseHead(
            conn,
            () =>
              new PollConnectionError(
                `server ${name} closed the connection before answering a poll ${request.kind}`,
              ),
          );
          if (answer.status !== 200) {
            throw await refusal(conn, answer, name, request.kind);
          }
          const { body: received, closes } = await readAnswerBody(
            conn,
            answer,
            request,
            maxBody,
            name,
          );
          if (closes || !keepsAlive(answer)) this.#drop();
          return { head: answer, body: received };
        },
      );
    } catch (error) {
      this.#drop();
      throw error;
    }
  }

  // An early end anywhere in an answer is a connection failure, which a
  // new connection may cure.
  #buffered(conn: Duplex): BufferedDuplex {
    return new BufferedDuplex(conn, {
      onEnd: () =>
        new PollConnectionError(
          `server ${this.#options.name} closed the connection in the middle of a poll answer`,
        ),
    });
  }

  #drop(): void {
    const conn = this.#conn;
    this.#conn = undefined;
    if (conn !== undefined) closeQuietly(conn);
  }
}

/** The connection under a poll request ended before its answer did. */
class PollConnectionError extends Error {
  /** @param message What ended, naming the server. */
  constructor(message: string) {
    super(message);
    this.name = "PollConnectionError";
  }
}

// What a fresh connection may cure: the old one closed, reset or broke.
function isConnectionFailure(error: unknown): boolean {
  return error instanceof PollConnectionError ||
    error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.UnexpectedEof ||
    error instanceof Deno.errors.BadResource;
}

// The error for an answer other than 200.
async function refusal(
  conn: BufferedDuplex,
  head: ResponseHead,
  server: string,
  kind: PollKind,
): Promise<Error> {
  const named = headerValue(head, REFUSAL_HEADER)?.trim().toLowerCase();
  const word = WS_REFUSALS.find((each) => each === named);
  const reason = await refusalReason(conn, head);
  if (word !== undefined) {
    return new WsRefusedError(server, "a session", head.status, word, reason);
  }
  if (kind === "open" && named === undefined) {
    return new NoPollTransportError(server, head.status);
  }
  return new ProxyProtocolError(
    `server ${server} answered a poll ${kind} with "${
      printable(head.statusLine)
    }"${reason === "" ? "" : `: ${reason}`}`,
  );
}

// A 200's body, however a proxy on the way framed it: its Content-Length,
// chunked, or until the connection closes (then only with the server's
// length beside it, the one way to tell a whole answer from a cut one). At
// most `max` bytes; a body shorter than the server's length is a connection
// failure, so the request is sent again and answered again.
async function readAnswerBody(
  conn: BufferedDuplex,
  head: ResponseHead,
  request: LaneRequest,
  max: number,
  server: string,
): Promise<{ body: Uint8Array; closes: boolean }> {
  const what = `server ${server} answered a poll ${request.kind}`;
  try {
    const framing = responseFraming(head, POLL_METHODS[request.kind]);
    const declared = headerValue(head, LENGTH_HEADER);
    const length = declared === undefined ? undefined : Number(declared.trim());
    if (length !== undefined && !Number.isSafeInteger(length)) {
      throw new ProxyProtocolError(
        `${what} with ${LENGTH_HEADER} "${printable(declared!).slice(0, 20)}"`,
      );
    }
    if (framing.kind === "close" && max > 0 && length === undefined) {
      throw new ProxyProtocolError(
        `${what} with neither Content-Length nor chunked and no ${LENGTH_HEADER}, so a cut answer cannot be told from a whole one`,
      );
    }
    const body = await readBody(
      conn,
      framing,
      max,
      () =>
        new ProxyProtocolError(
          `${what} with a body larger than the ${max} bytes a poll answer holds`,
        ),
    );
    if (length !== undefined && body.length !== length) {
      throw new PollConnectionError(
        `${what} with ${body.length} of its ${length} bytes (the connection ended early)`,
      );
    }
    return { body, closes: framing.kind === "close" };
  } catch (error) {
    if (!(error instanceof HttpMessageError)) throw error;
    throw new ProxyProtocolError(`${what} badly framed: ${error.message}`);
  }
}
