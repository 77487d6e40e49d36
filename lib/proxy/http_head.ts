/**
 * HTTP response heads as proxies send them: a streaming reader that stops
 * exactly at the blank line, its use on a stream, and the header questions
 * the handshake asks (challenges, keep-alive). Pure but for
 * {@link readResponseHead}: bytes in, values out.
 *
 * @module
 */

import { ProxyProtocolError } from "../errors.ts";
import type { BufferedDuplex } from "../net/buffered.ts";
import { type Challenge, parseChallenges } from "./auth/challenge.ts";

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

/**
 * Reads one response head from `input`, 1xx heads included, and leaves the
 * bytes after it (the body, or what a tunnel's destination sent) buffered
 * in `input`.
 *
 * @param input The stream, with any bytes already read ahead.
 * @param closed Makes the error for a stream that ends before the head does.
 * @returns The head.
 * @throws `closed()` at an early end; {@link ProxyProtocolError} as
 *   {@link ResponseHeadReader.push} does.
 */
export async function readResponseHead(
  input: BufferedDuplex,
  closed: () => Error,
): Promise<ResponseHead> {
  const reader = new ResponseHeadReader();
  while (true) {
    if (input.buffered.length === 0 && !(await input.fill())) throw closed();
    const chunk = input.buffered;
    const head = reader.push(chunk);
    await input.skip(chunk.length - (head ? reader.rest.length : 0));
    if (head) return head;
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

/**
 * Makes text safe to show: anything but printable ASCII becomes `?`.
 *
 * @param text Text received from the network.
 * @returns The text with control and non-ASCII characters replaced, trimmed.
 */
export function printable(text: string): string {
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
export function headerValue(
  head: Pick<ResponseHead, "headers">,
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
export function keepsAlive(head: ResponseHead): boolean {
  const connection = [
    headerValue(head, "proxy-connection"),
    headerValue(head, "connection"),
  ].join(",").toLowerCase();
  if (connection.includes("close")) return false;
  return head.version !== "HTTP/1.0" || connection.includes("keep-alive");
}

/**
 * The authentication challenges in a response's `Proxy-Authenticate` fields.
 *
 * @param head A response head, usually a 407.
 * @returns The challenges, in the order offered.
 */
export function proxyChallenges(head: ResponseHead): Challenge[] {
  return parseChallenges(
    head.headers.filter(([name]) => name.toLowerCase() === "proxy-authenticate")
      .map(([, value]) => value),
  );
}

/**
 * Whether a response offers an authentication scheme.
 *
 * @param head A response head, usually a 407.
 * @param scheme The scheme, lower case, e.g. `negotiate`.
 * @returns `true` when a `Proxy-Authenticate` challenge names it.
 */
export function offersScheme(head: ResponseHead, scheme: string): boolean {
  return proxyChallenges(head).some((challenge) => challenge.scheme === scheme);
}
