/**
 * The HTTP `CONNECT` handshake (RFC 9110 §9.3.6): the request, a streaming
 * reader for the proxy's response head, and the exchange over a stream.
 *
 * @module
 */

import { formatHostPort, type HostPort } from "../net/address.ts";
import {
  closeQuietly,
  type Duplex,
  PrefixedDuplex,
  writeAll,
} from "../net/duplex.ts";
import {
  ProxyAuthError,
  ProxyProtocolError,
  ProxyRefusedError,
} from "../errors.ts";
import { withDeadline } from "./deadline.ts";
import {
  AuthFailure,
  type Credentials,
  ProxyAuthenticator,
} from "./auth/authenticator.ts";
import { parseChallenges } from "./auth/challenge.ts";
import { USER_AGENT } from "../version.ts";

/** The largest response head accepted from a proxy. */
export const MAX_RESPONSE_HEAD_BYTES = 64 * 1024;

/** A proxy's status line and header fields. */
export interface ResponseHead {
  /** e.g. `HTTP/1.1` or `HTTP/1.0`. */
  readonly version: string;
  /** The status code, e.g. 200. */
  readonly status: number;
  /** The status line as received, printable characters only. */
  readonly statusLine: string;
  /** Header fields in order, names as received. */
  readonly headers: ReadonlyArray<readonly [name: string, value: string]>;
}

/**
 * Builds a `CONNECT` request for `target`.
 *
 * @param target The destination the proxy should connect to.
 * @param extraHeaders More header lines, e.g. `Proxy-Authorization`.
 * @returns The whole request head, ready for one write.
 *
 * @example
 * ```ts
 * buildConnectRequest({ host: "::1", port: 22 });
 * // "CONNECT [::1]:22 HTTP/1.1\r\nHost: [::1]:22\r\nUser-Agent: …\r\n\r\n"
 * ```
 */
export function buildConnectRequest(
  target: HostPort,
  extraHeaders: ReadonlyArray<readonly [string, string]> = [],
): string {
  const authority = formatHostPort(target);
  const lines = [
    `CONNECT ${authority} HTTP/1.1`,
    `Host: ${authority}`,
    `User-Agent: ${USER_AGENT}`,
    ...extraHeaders.map(([name, value]) => `${name}: ${value}`),
  ];
  return lines.join("\r\n") + "\r\n\r\n";
}

/**
 * Collects a response head from chunks as they arrive and stops exactly at
 * the blank line that ends it. Accepts CRLF or bare LF line ends.
 */
export class ResponseHeadReader {
  #buffer = new Uint8Array(0);
  #scanFrom = 0;
  #rest: Uint8Array | undefined;

  /** Bytes that followed the head; set once {@link push} returned a head. */
  get rest(): Uint8Array {
    if (this.#rest === undefined) throw new Error("response head incomplete");
    return this.#rest;
  }

  /**
   * Adds received bytes.
   *
   * @param chunk The bytes just read.
   * @returns The head once complete, otherwise `undefined`.
   * @throws {ProxyProtocolError} when the head exceeds
   *   {@link MAX_RESPONSE_HEAD_BYTES} or is not an HTTP response.
   */
  push(chunk: Uint8Array): ResponseHead | undefined {
    const buffer = new Uint8Array(this.#buffer.length + chunk.length);
    buffer.set(this.#buffer);
    buffer.set(chunk, this.#buffer.length);
    this.#buffer = buffer;
    const end = this.#findEnd();
    if (end === undefined) {
      if (buffer.length > MAX_RESPONSE_HEAD_BYTES) {
        throw new ProxyProtocolError(
          `proxy response header exceeds ${MAX_RESPONSE_HEAD_BYTES / 1024} KiB`,
        );
      }
      if (buffer.length >= 5 && !startsWithHttp(buffer)) {
        throw notHttp(buffer);
      }
      return undefined;
    }
    if (end.headEnd > MAX_RESPONSE_HEAD_BYTES) {
      throw new ProxyProtocolError(
        `proxy response header exceeds ${MAX_RESPONSE_HEAD_BYTES / 1024} KiB`,
      );
    }
    this.#rest = buffer.slice(end.restStart);
    return parseHead(new TextDecoder().decode(buffer.subarray(0, end.headEnd)));
  }

  // Finds "\n\n" or "\n\r\n"; scanning resumes where the last call stopped.
  #findEnd(): { headEnd: number; restStart: number } | undefined {
    const b = this.#buffer;
    for (let i = this.#scanFrom; i < b.length; i++) {
      if (b[i] !== 0x0a) continue;
      if (b[i + 1] === 0x0a) return { headEnd: i, restStart: i + 2 };
      if (b[i + 1] === 0x0d && b[i + 2] === 0x0a) {
        return { headEnd: i, restStart: i + 3 };
      }
      if (i + 2 >= b.length) {
        this.#scanFrom = i;
        return undefined;
      }
    }
    this.#scanFrom = b.length;
    return undefined;
  }
}

function startsWithHttp(buffer: Uint8Array): boolean {
  return String.fromCharCode(...buffer.subarray(0, 5)) === "HTTP/";
}

function notHttp(buffer: Uint8Array): ProxyProtocolError {
  const start = printable(
    new TextDecoder().decode(buffer.subarray(0, 60)).split(/\r?\n/)[0],
  );
  return new ProxyProtocolError(
    `proxy did not answer with HTTP: got "${start}"`,
  );
}

function printable(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, "?").trim();
}

function parseHead(text: string): ResponseHead {
  const lines = text.split("\n").map((line) => line.replace(/\r$/, ""));
  const statusLine = printable(lines[0]);
  const match = /^(HTTP\/\d\.\d) +(\d{3})(?: .*)?$/.exec(statusLine);
  if (!statusLine.startsWith("HTTP/")) {
    throw new ProxyProtocolError(
      `proxy did not answer with HTTP: got "${statusLine.slice(0, 60)}"`,
    );
  }
  if (!match) {
    throw new ProxyProtocolError(
      `proxy sent a malformed status line: "${statusLine.slice(0, 80)}"`,
    );
  }
  const headers: [string, string][] = [];
  for (const line of lines.slice(1)) {
    const last = headers.at(-1);
    if (/^[ \t]/.test(line) && last) {
      last[1] = `${last[1]} ${line.trim()}`;
      continue;
    }
    const colon = line.indexOf(":");
    if (colon > 0) {
      headers.push([line.slice(0, colon).trim(), line.slice(colon + 1).trim()]);
    }
  }
  return {
    version: match[1],
    status: Number(match[2]),
    statusLine,
    headers,
  };
}

/**
 * The value of the first header field named `name` (case-insensitive).
 *
 * @param head A response head.
 * @param name The field name.
 * @returns The value, or `undefined`.
 */
function headerValue(
  head: ResponseHead,
  name: string,
): string | undefined {
  const lower = name.toLowerCase();
  return head.headers.find(([field]) => field.toLowerCase() === lower)?.[1];
}

/**
 * Tells whether the proxy keeps the connection open after `head`
 * (HTTP/1.1 unless it says close; HTTP/1.0 only if it says keep-alive).
 *
 * @param head A response head.
 * @returns `true` when another request may follow on the connection.
 */
function keepsAlive(head: ResponseHead): boolean {
  const connection = [
    headerValue(head, "proxy-connection"),
    headerValue(head, "connection"),
  ].join(",").toLowerCase();
  if (connection.includes("close")) return false;
  return head.version !== "HTTP/1.0" || connection.includes("keep-alive");
}

/** Options for {@link httpConnect}. */
export interface HttpConnectOptions {
  /** `host:port` of the proxy, for messages. */
  readonly proxyLabel: string;
  /** Limit for the whole exchange, authentication rounds included. */
  readonly timeoutMs: number;
  /** Gives up, closing the connection, when aborted. */
  readonly signal?: AbortSignal;
  /** Credentials for a proxy that answers 407. */
  readonly credentials?: Credentials;
  /** Send Basic credentials with the first request. */
  readonly preemptiveBasic?: boolean;
  /** Opens a new connection to the proxy, when it closed the last one. */
  readonly reconnect?: () => Promise<Duplex>;
  /** Told of every response and credential, e.g. by `probe`. */
  readonly observer?: ConnectObserver;
}

/** Watches a CONNECT exchange. */
export interface ConnectObserver {
  /** A response head arrived (a 407 challenge, or the final answer). */
  response(head: ResponseHead): void;
  /** Credentials of `scheme` are being sent. */
  authenticating(scheme: string): void;
}

const MAX_AUTH_ROUNDS = 4;
const MAX_SKIPPED_BODY_BYTES = 1024 * 1024;

/**
 * Asks the proxy at the other end of `stream` to open a tunnel to `target`,
 * answering 407 challenges when credentials are given. Nothing is read past
 * the final response head: bytes the destination sent right after the
 * proxy's `200` come out of the returned stream first.
 *
 * Takes ownership of `stream`: on failure, every connection it used is
 * closed.
 *
 * @param stream An open connection to the proxy.
 * @param target Where the tunnel should lead.
 * @param options The proxy's label, time limit, credentials.
 * @returns The tunnel, and the proxy's response head.
 * @throws {ProxyAuthError} when authentication is needed and fails.
 * @throws {ProxyRefusedError} when the status is not 2xx.
 * @throws {ProxyProtocolError} when the response is not HTTP or too large.
 * @throws {TimeoutError} when the exchange did not finish in time.
 */
export async function httpConnect(
  stream: Duplex,
  target: HostPort,
  options: HttpConnectOptions,
): Promise<{ tunnel: Duplex; head: ResponseHead }> {
  const authority = formatHostPort(target);
  let current = stream;
  const auth = new ProxyAuthenticator(options.credentials, authority, {
    preemptiveBasic: options.preemptiveBasic,
  });
  const what = `CONNECT ${authority} through proxy ${options.proxyLabel}`;
  return await withDeadline(() => current, what, options, async () => {
    let answer = auth.first;
    let pending: Uint8Array = new Uint8Array(0);
    for (let round = 0;; round++) {
      if (answer) options.observer?.authenticating(answer.scheme);
      const headers: [string, string][] = answer
        ? [["Proxy-Authorization", answer.authorization], [
          "Proxy-Connection",
          "Keep-Alive",
        ]]
        : [];
      await writeAll(
        current,
        new TextEncoder().encode(buildConnectRequest(target, headers)),
      );
      const { head, rest } = await readResponseHead(
        current,
        pending,
        options,
        authority,
      );
      options.observer?.response(head);
      if (head.status >= 200 && head.status <= 299) {
        return { tunnel: new PrefixedDuplex(current, rest), head };
      }
      if (head.status !== 407 || round >= MAX_AUTH_ROUNDS) {
        throw new ProxyRefusedError(
          options.proxyLabel,
          authority,
          head.status,
          head.statusLine,
        );
      }
      const challenges = parseChallenges(
        head.headers.filter(([name]) =>
          name.toLowerCase() === "proxy-authenticate"
        )
          .map(([, value]) => value),
      );
      try {
        answer = auth.answer(challenges);
      } catch (error) {
        if (!(error instanceof AuthFailure)) throw error;
        throw new ProxyAuthError(
          options.proxyLabel,
          authority,
          head.statusLine,
          error.failure,
          error.detail,
        );
      }
      const after = keepsAlive(head)
        ? await skipBody(current, head, rest)
        : undefined;
      if (after !== undefined) {
        pending = after;
        continue;
      }
      if (answer.sameConnection || !options.reconnect) {
        throw new ProxyAuthError(
          options.proxyLabel,
          authority,
          head.statusLine,
          "handshake-failed",
          `${answer.scheme} handshake by closing the connection`,
        );
      }
      closeQuietly(current);
      current = await options.reconnect();
      pending = new Uint8Array(0);
    }
  });
}

async function readResponseHead(
  stream: Duplex,
  pending: Uint8Array,
  options: HttpConnectOptions,
  authority: string,
): Promise<{ head: ResponseHead; rest: Uint8Array }> {
  const reader = new ResponseHeadReader();
  let head = pending.length > 0 ? reader.push(pending) : undefined;
  const buffer = new Uint8Array(16 * 1024);
  while (head === undefined) {
    const n = await stream.read(buffer);
    if (n === null) {
      throw new ProxyProtocolError(
        `proxy ${options.proxyLabel} closed the connection before answering CONNECT ${authority}`,
      );
    }
    head = reader.push(buffer.subarray(0, n));
  }
  return { head, rest: reader.rest };
}

/**
 * Reads past a response body framed by Content-Length or chunked encoding.
 * Returns the bytes after the body, or `undefined` when the body is not
 * framed (it ends with the connection) or too large to skip.
 */
async function skipBody(
  stream: Duplex,
  head: ResponseHead,
  rest: Uint8Array,
): Promise<Uint8Array | undefined> {
  const input = new ByteReader(stream, rest);
  if (/chunked/i.test(headerValue(head, "transfer-encoding") ?? "")) {
    while (true) {
      const size = parseInt(await input.line(), 16);
      if (Number.isNaN(size) || input.consumed > MAX_SKIPPED_BODY_BYTES) {
        return undefined;
      }
      if (size === 0) break;
      await input.skip(size);
      await input.line();
    }
    while ((await input.line()) !== "") { /* trailer fields */ }
    return input.remaining;
  }
  const length = headerValue(head, "content-length");
  if (length === undefined || !/^\d+$/.test(length)) return undefined;
  if (Number(length) > MAX_SKIPPED_BODY_BYTES) return undefined;
  await input.skip(Number(length));
  return input.remaining;
}

/** Line and byte reads over a stream, starting with bytes already read. */
class ByteReader {
  #stream: Duplex;
  #buffer: Uint8Array;
  consumed = 0;

  constructor(stream: Duplex, initial: Uint8Array) {
    this.#stream = stream;
    this.#buffer = initial;
  }

  get remaining(): Uint8Array {
    return this.#buffer;
  }

  async #fill(): Promise<void> {
    const chunk = new Uint8Array(16 * 1024);
    const n = await this.#stream.read(chunk);
    if (n === null) {
      throw new ProxyProtocolError("proxy closed the connection mid-response");
    }
    const joined = new Uint8Array(this.#buffer.length + n);
    joined.set(this.#buffer);
    joined.set(chunk.subarray(0, n), this.#buffer.length);
    this.#buffer = joined;
  }

  async line(): Promise<string> {
    let end: number;
    while ((end = this.#buffer.indexOf(0x0a)) < 0) {
      if (this.#buffer.length > 8192) {
        throw new ProxyProtocolError("proxy sent an overlong line");
      }
      await this.#fill();
    }
    const line = new TextDecoder().decode(this.#buffer.subarray(0, end));
    this.#buffer = this.#buffer.subarray(end + 1);
    this.consumed += end + 1;
    return line.replace(/\r$/, "");
  }

  async skip(n: number): Promise<void> {
    let left = n;
    while (left > 0) {
      if (this.#buffer.length === 0) await this.#fill();
      const take = Math.min(left, this.#buffer.length);
      this.#buffer = this.#buffer.subarray(take);
      left -= take;
      this.consumed += take;
    }
  }
}
