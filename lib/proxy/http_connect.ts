/**
 * The HTTP `CONNECT` handshake (RFC 9110 §9.3.6): the request, a streaming
 * reader for the proxy's response head, and the exchange over a stream.
 *
 * @module
 */

import { formatHostPort, type HostPort } from "../address.ts";
import {
  closeQuietly,
  type Duplex,
  PrefixedDuplex,
  writeAll,
} from "../duplex.ts";
import {
  ProxyProtocolError,
  ProxyRefusedError,
  TimeoutError,
} from "../errors.ts";
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

/** Options for {@link httpConnect}. */
export interface HttpConnectOptions {
  /** `host:port` of the proxy, for messages. */
  readonly proxyLabel: string;
  /** Limit for sending the request and reading the whole response head. */
  readonly timeoutMs: number;
  /** Gives up, closing `stream`, when aborted. */
  readonly signal?: AbortSignal;
}

/**
 * Asks the proxy at the other end of `stream` to open a tunnel to `target`.
 * Nothing is read past the response head: bytes the destination sent right
 * after the proxy's `200` come out of the returned stream first.
 *
 * On failure the caller still owns `stream` and must close it.
 *
 * @param stream An open connection to the proxy.
 * @param target Where the tunnel should lead.
 * @param options The proxy's label and the time limit.
 * @returns The tunnel, and the proxy's response head.
 * @throws {ProxyRefusedError} when the status is not 2xx.
 * @throws {ProxyProtocolError} when the response is not HTTP or too large.
 * @throws {TimeoutError} when the whole head did not arrive in time.
 */
export async function httpConnect(
  stream: Duplex,
  target: HostPort,
  options: HttpConnectOptions,
): Promise<{ tunnel: Duplex; head: ResponseHead }> {
  const authority = formatHostPort(target);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    closeQuietly(stream);
  }, options.timeoutMs);
  const onAbort = () => closeQuietly(stream);
  options.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    options.signal?.throwIfAborted();
    await writeAll(
      stream,
      new TextEncoder().encode(buildConnectRequest(target)),
    );
    const reader = new ResponseHeadReader();
    const buffer = new Uint8Array(16 * 1024);
    let head: ResponseHead | undefined;
    while (head === undefined) {
      const n = await stream.read(buffer);
      if (n === null) {
        throw new ProxyProtocolError(
          `proxy ${options.proxyLabel} closed the connection before answering CONNECT ${authority}`,
        );
      }
      head = reader.push(buffer.subarray(0, n));
    }
    if (head.status < 200 || head.status > 299) {
      throw new ProxyRefusedError(
        options.proxyLabel,
        authority,
        head.status,
        head.statusLine,
      );
    }
    return { tunnel: new PrefixedDuplex(stream, reader.rest), head };
  } catch (error) {
    if (timedOut) {
      throw new TimeoutError(
        `CONNECT ${authority} through proxy ${options.proxyLabel}`,
        options.timeoutMs,
      );
    }
    throw error;
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
  }
}
