/**
 * HTTP/1.1 messages as the local proxy sees them (RFC 9112): the strict
 * reading of a client's request head, the body framing of requests and
 * responses (where request smuggling is refused), hop-by-hop fields and
 * persistence, request targets, and the heads this tool writes. Pure but
 * for {@link readRequestHead}; bodies are copied by `http1_body.ts`, and
 * response heads are read by `readResponseHead` in `proxy/http_head.ts`.
 *
 * Strict where a lenient reading lets two parsers disagree about where a
 * message ends: a bare CR, obs-fold, whitespace before a colon,
 * Content-Length beside Transfer-Encoding, Content-Length values that
 * differ. A bare LF ends a line (RFC 9112 §2.2): nothing read is passed on
 * as received, every head and chunk line is written anew with CRLF.
 *
 * @module
 */

import {
  type HostPort,
  isHostName,
  isIPv6,
  parsePort,
} from "../net/address.ts";
import type { BufferedDuplex } from "../net/buffered.ts";
import { concat } from "../net/bytes.ts";
import { writeAll } from "../net/duplex.ts";
import { withDeadline } from "../proxy/deadline.ts";
import type { ResponseHead } from "../proxy/http_head.ts";

/** A header field: its name as sent, and its value without surrounding whitespace. */
export type HeaderField = readonly [name: string, value: string];

/** A client's request line and header fields. */
export interface RequestHead {
  /** e.g. `GET` or `CONNECT`; case-sensitive. */
  readonly method: string;
  /** As sent: `http://host/path` (absolute form) or `host:port` (CONNECT). */
  readonly target: string;
  /** `HTTP/1.0`, `HTTP/1.1` or a later `HTTP/1.x`. */
  readonly version: string;
  /** Header fields in order. */
  readonly headers: readonly HeaderField[];
}

/** The statuses this layer answers with. */
export type HttpErrorStatus = 400 | 414 | 431 | 501 | 502 | 505;

/**
 * A message that breaks HTTP/1.1's rules or this tool's limits. The
 * message is short enough for a response body and never holds a header
 * value or a request target, which may carry secrets.
 */
export class HttpMessageError extends Error {
  /**
   * The status to answer the client with: 4xx, 501 or 505 for what the
   * client sent, 502 for what the upstream sent.
   */
  readonly status: HttpErrorStatus;

  /**
   * @param status The status to answer with.
   * @param message What is wrong with the message.
   * @param options The underlying cause, if any.
   */
  constructor(
    status: HttpErrorStatus,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "HttpMessageError";
    this.status = status;
  }
}

/** Options for {@link readRequestHead}. */
export interface ReadRequestHeadOptions {
  /**
   * The largest request head in bytes, request line and line ends
   * included; past it a request line gets 414, the header fields 431.
   * @default 65536
   */
  readonly maxHeadBytes?: number;
  /** The most header fields; one more gets 431. @default 100 */
  readonly maxHeaders?: number;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// A character outside field values (RFC 9110 §5.5): a control but HTAB. A
// CR or LF in a value would end the line on the way out.
const CONTROL = /[^\t\x20-\x7e\x80-\uffff]/;
const encoder = new TextEncoder();

/**
 * Reads a request head, stopping at its blank line: what follows stays
 * buffered in `input`. Empty lines before the request line are skipped
 * (RFC 9112 §2.2). Time is bounded by the caller, by closing the stream.
 *
 * @param input The client's connection.
 * @param options The size and count limits.
 * @returns The head, or `undefined` when the client closed the connection
 *   before starting a request (the end of a persistent connection).
 * @throws {HttpMessageError} for a malformed head (400), an HTTP version
 *   other than 1.x (505), a request line too long (414), a head too large
 *   or too many header fields (431); the error `input` makes for an early
 *   end when the client closes in the middle of the head.
 *
 * @example
 * ```ts
 * const head = await readRequestHead(new BufferedDuplex(conn));
 * // { method: "GET", target: "http://example.com/", version: "HTTP/1.1",
 * //   headers: [["Host", "example.com"]] }
 * ```
 */
export async function readRequestHead(
  input: BufferedDuplex,
  options: ReadRequestHeadOptions = {},
): Promise<RequestHead | undefined> {
  const maxHeadBytes = options.maxHeadBytes ?? 64 * 1024;
  const maxHeaders = options.maxHeaders ?? 100;
  const start = input.consumed;
  // Each line may take what the head has left, its LF included.
  const line = (tooLong: () => HttpMessageError) =>
    input.line(maxHeadBytes - (input.consumed - start) - 1, tooLong);
  let requestLine = "";
  while (requestLine === "") {
    if (input.buffered.length === 0 && !(await input.fill())) return undefined;
    requestLine = await line(() =>
      new HttpMessageError(
        414,
        `the request line is longer than ${maxHeadBytes} bytes`,
      )
    );
  }
  const { method, target, version } = parseRequestLine(requestLine);
  const headers: HeaderField[] = [];
  while (true) {
    const fieldLine = await line(() =>
      new HttpMessageError(
        431,
        `the request head is larger than ${maxHeadBytes} bytes`,
      )
    );
    if (fieldLine === "") break;
    if (headers.length === maxHeaders) {
      throw new HttpMessageError(
        431,
        `the request has more than ${maxHeaders} header fields`,
      );
    }
    headers.push(parseFieldLine(fieldLine, headers.length + 1));
  }
  if (fieldCount(headers, "host") > 1) {
    throw new HttpMessageError(400, "the request has more than one Host field");
  }
  return { method, target, version, headers };
}

function parseRequestLine(
  line: string,
): Omit<RequestHead, "headers"> {
  rejectBareCr(line);
  const parts = line.split(" ");
  if (parts.length !== 3) {
    throw new HttpMessageError(
      400,
      "the request line is not METHOD SP target SP HTTP/1.1",
    );
  }
  const [method, target, version] = parts;
  if (!TOKEN.test(method)) {
    throw new HttpMessageError(400, "the request method is not a token");
  }
  if (!/^[\x21-\x7e]+$/.test(target)) {
    throw new HttpMessageError(
      400,
      "the request target holds characters other than visible ASCII",
    );
  }
  const major = /^HTTP\/(\d)\.\d$/.exec(version)?.[1];
  if (major === undefined) {
    throw new HttpMessageError(400, "the request line ends in no HTTP version");
  }
  if (major !== "1") {
    throw new HttpMessageError(505, "only HTTP/1.0 and HTTP/1.1 are served");
  }
  return { method, target, version };
}

function parseFieldLine(line: string, index: number): HeaderField {
  rejectBareCr(line);
  if (/^[ \t]/.test(line)) {
    throw new HttpMessageError(
      400,
      `header line ${index} starts with whitespace (obs-fold, RFC 9112 §5.2)`,
    );
  }
  const colon = line.indexOf(":");
  if (colon < 0) {
    throw new HttpMessageError(400, `header line ${index} has no colon`);
  }
  const name = line.slice(0, colon);
  if (/[ \t]$/.test(name)) {
    throw new HttpMessageError(
      400,
      `header line ${index} has whitespace before its colon (RFC 9112 §5.1)`,
    );
  }
  if (!TOKEN.test(name)) {
    throw new HttpMessageError(
      400,
      `header line ${index} has a name that is not a token`,
    );
  }
  const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, "");
  if (CONTROL.test(value)) {
    throw new HttpMessageError(
      400,
      `the ${name} field holds a control character`,
    );
  }
  return [name, value];
}

function rejectBareCr(line: string): void {
  if (line.includes("\r")) {
    throw new HttpMessageError(400, "the request head holds a bare CR");
  }
}

/** How a message body is delimited (RFC 9112 §6). */
export type BodyFraming =
  | { readonly kind: "none" }
  | { readonly kind: "length"; readonly length: number }
  | { readonly kind: "chunked" }
  | { readonly kind: "close" };

const NO_BODY: BodyFraming = { kind: "none" };

/**
 * How the body of a request is delimited (RFC 9112 §6.3), refusing the
 * framings that let two parsers disagree (request smuggling, §11.2).
 *
 * @param head A request head from {@link readRequestHead}.
 * @returns `none` without Content-Length and Transfer-Encoding, `length`,
 *   or `chunked`.
 * @throws {HttpMessageError} 400 for Content-Length beside
 *   Transfer-Encoding, Content-Length values that differ or are not
 *   decimal numbers, a Transfer-Encoding that does not end in `chunked` or
 *   comes in an HTTP/1.0 request; 501 for another transfer coding before
 *   `chunked`.
 */
export function requestFraming(head: RequestHead): BodyFraming {
  return framing(head.version, head.headers) ?? NO_BODY;
}

/**
 * How the body of a response is delimited (RFC 9112 §6.3).
 *
 * @param head A response head from the upstream.
 * @param method The method of the request it answers.
 * @returns `none` for a response to HEAD, a 1xx, 204 or 304, and a 2xx to
 *   CONNECT; otherwise `chunked`, `length`, or `close` (the body ends with
 *   the connection).
 * @throws {HttpMessageError} 502 where {@link requestFraming} refuses a
 *   request, and for Transfer-Encoding beside Content-Length.
 */
export function responseFraming(
  head: ResponseHead,
  method: string,
): BodyFraming {
  const { status } = head;
  if (
    method === "HEAD" || status < 200 || status === 204 || status === 304 ||
    (method === "CONNECT" && status < 300)
  ) {
    return NO_BODY;
  }
  try {
    return framing(head.version, head.headers) ?? { kind: "close" };
  } catch (error) {
    if (!(error instanceof HttpMessageError)) throw error;
    throw new HttpMessageError(
      502,
      `the upstream response is malformed: ${error.message}`,
    );
  }
}

// The framing that Transfer-Encoding or Content-Length give, if any.
function framing(
  version: string,
  headers: readonly HeaderField[],
): BodyFraming | undefined {
  const hasCodings = fieldCount(headers, "transfer-encoding") > 0;
  const hasLength = fieldCount(headers, "content-length") > 0;
  if (hasCodings && hasLength) {
    throw new HttpMessageError(
      400,
      "Content-Length and Transfer-Encoding together (a smuggling pattern, RFC 9112 §11.2)",
    );
  }
  if (hasCodings) {
    checkCodings(version, headers);
    return { kind: "chunked" };
  }
  if (hasLength) return { kind: "length", length: contentLength(headers) };
  return undefined;
}

function checkCodings(version: string, headers: readonly HeaderField[]): void {
  if (version === "HTTP/1.0") {
    throw new HttpMessageError(
      400,
      "Transfer-Encoding in an HTTP/1.0 message (RFC 9112 §6.1)",
    );
  }
  const codings = elements(headers, "transfer-encoding");
  if (codings.at(-1) !== "chunked") {
    throw new HttpMessageError(
      400,
      "Transfer-Encoding does not end in chunked (RFC 9112 §6.3)",
    );
  }
  if (codings.indexOf("chunked") !== codings.length - 1) {
    throw new HttpMessageError(400, "chunked is applied more than once");
  }
  if (codings.length > 1) {
    throw new HttpMessageError(
      501,
      "no transfer coding other than chunked is supported",
    );
  }
}

function contentLength(headers: readonly HeaderField[]): number {
  const values = elements(headers, "content-length");
  if (values.length === 0 || !values.every((value) => /^\d+$/.test(value))) {
    throw new HttpMessageError(400, "Content-Length is not a decimal number");
  }
  const lengths = new Set(values.map(Number));
  if (lengths.size > 1) {
    throw new HttpMessageError(400, "Content-Length values differ");
  }
  const [length] = lengths;
  if (!Number.isSafeInteger(length)) {
    throw new HttpMessageError(400, "Content-Length is larger than 2^53");
  }
  return length;
}

function fieldCount(headers: readonly HeaderField[], lower: string): number {
  return headers.filter(([name]) => name.toLowerCase() === lower).length;
}

// The elements of a list-valued field (RFC 9110 §5.6.1), over all its
// lines, in lower case, empty elements dropped.
function elements(headers: readonly HeaderField[], lower: string): string[] {
  return headers.filter(([name]) => name.toLowerCase() === lower)
    .flatMap(([, value]) => value.toLowerCase().split(","))
    .map((element) => element.replace(/^[ \t]+|[ \t]+$/g, ""))
    .filter((element) => element !== "");
}

const HOP_BY_HOP = new Set([
  "connection",
  "proxy-connection",
  "keep-alive",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "proxy-authorization",
  "proxy-authenticate",
]);

/**
 * The header fields to forward: without the hop-by-hop fields (RFC 9110
 * §7.6.1) — Connection and every field it names, Proxy-Connection,
 * Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade — and without
 * Proxy-Authorization and Proxy-Authenticate, which concern this tool's
 * own proxies. Read a client's Proxy-Authorization before this, if needed.
 *
 * @param headers The fields received.
 * @returns A new list; call {@link frameHeaders} on it next.
 */
export function stripHopByHop(
  headers: readonly HeaderField[],
): HeaderField[] {
  const named = new Set(elements(headers, "connection"));
  return headers.filter(([name]) => {
    const lower = name.toLowerCase();
    return !HOP_BY_HOP.has(lower) && !named.has(lower);
  });
}

/**
 * The header fields of a message forwarded with `framing`: one canonical
 * `Content-Length`, or `Transfer-Encoding: chunked` (see `copyBody`'s
 * `chunked` option). Others are left as they are: a response to HEAD or a
 * 304 keeps the Content-Length of the body it stands for.
 *
 * @param headers Fields from {@link stripHopByHop}.
 * @param framing How the body is written on.
 * @returns A new list.
 */
export function frameHeaders(
  headers: readonly HeaderField[],
  framing: BodyFraming,
): HeaderField[] {
  const others = headers.filter(([name]) =>
    !/^(content-length|transfer-encoding)$/i.test(name)
  );
  switch (framing.kind) {
    case "length":
      return [...others, ["Content-Length", String(framing.length)]];
    case "chunked":
      return [...others, ["Transfer-Encoding", "chunked"]];
    default:
      return [...headers];
  }
}

/**
 * Tells whether the connection stays open after a message (RFC 9112 §9.3):
 * HTTP/1.1 unless Connection says `close`, HTTP/1.0 only when it says
 * `keep-alive`. `Proxy-Connection`, which older clients send to proxies,
 * counts like Connection.
 *
 * @param head A request or response head.
 * @returns `true` when another message may follow.
 */
export function persists(
  head: Pick<RequestHead, "version" | "headers">,
): boolean {
  const options = new Set([
    ...elements(head.headers, "connection"),
    ...elements(head.headers, "proxy-connection"),
  ]);
  if (options.has("close")) return false;
  return head.version !== "HTTP/1.0" || options.has("keep-alive");
}

/** This tool's name in `Via` (RFC 9110 §7.6.3). */
const VIA_NAME = "httptunneling";

/**
 * The header fields with this tool added to `Via` (RFC 9110 §7.6.3):
 * appended to the last Via field, or as a new one.
 *
 * @param headers The fields to forward.
 * @param version The HTTP version the message was received with.
 * @returns A new list.
 *
 * @example
 * ```ts
 * appendVia([["Via", "1.1 squid"]], "HTTP/1.1");
 * // [["Via", "1.1 squid, 1.1 httptunneling"]]
 * ```
 */
export function appendVia(
  headers: readonly HeaderField[],
  version: string,
): HeaderField[] {
  const received = `${version.replace(/^HTTP\//, "")} ${VIA_NAME}`;
  const last = headers.findLastIndex(([name]) => name.toLowerCase() === "via");
  if (last < 0) return [...headers, ["Via", received]];
  return headers.map((field, i) =>
    i === last
      ? [field[0], field[1] === "" ? received : `${field[1]}, ${received}`]
      : field
  );
}

/**
 * Tells whether the client waits for a `100 Continue` before sending the
 * body (RFC 9110 §10.1.1); an HTTP/1.0 client's expectation is ignored.
 *
 * @param head A request head.
 * @returns `true` for `Expect: 100-continue` in HTTP/1.1.
 */
export function expectsContinue(head: RequestHead): boolean {
  return head.version !== "HTTP/1.0" &&
    elements(head.headers, "expect").includes("100-continue");
}

/** An `http://` request target, taken apart. */
export interface AbsoluteTarget extends HostPort {
  /** `host[:port]` as written in the target, for `Host`. */
  readonly authority: string;
  /** The path and query, at least `/`. */
  readonly path: string;
}

/**
 * Takes apart the absolute-form target of a request to a proxy
 * (RFC 9112 §3.2.2), e.g. `http://example.com:8080/a?b`.
 *
 * @param target The request target.
 * @returns Host (IPv6 without brackets), port (80 by default), authority
 *   and path.
 * @throws {HttpMessageError} 400 for an `https://` or other non-http
 *   target, a path alone, user info, a bad host or port, a fragment.
 */
export function parseAbsoluteTarget(target: string): AbsoluteTarget {
  const match = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^#]*)$/.exec(
    target,
  );
  if (!match) {
    throw new HttpMessageError(
      400,
      "a request to a proxy needs an absolute http:// URL without a fragment",
    );
  }
  const [, scheme, authority, rest] = match;
  if (scheme.toLowerCase() === "https") {
    throw new HttpMessageError(
      400,
      "https:// URLs go through CONNECT; set this proxy as the HTTPS proxy",
    );
  }
  if (scheme.toLowerCase() !== "http") {
    throw new HttpMessageError(400, "only http:// URLs are served");
  }
  if (authority.includes("@")) {
    throw new HttpMessageError(
      400,
      "the URL holds user info before @ (RFC 9110 §4.2.4)",
    );
  }
  return {
    ...hostAndPort(authority, 80),
    authority,
    path: rest === "" || rest.startsWith("?") ? `/${rest}` : rest,
  };
}

/**
 * Takes apart the authority-form target of a CONNECT request
 * (RFC 9110 §9.3.6), e.g. `example.com:443` or `[2001:db8::1]:22`.
 *
 * @param target The request target.
 * @returns Host (IPv6 without brackets) and port.
 * @throws {HttpMessageError} 400 for a missing port or a bad host or port.
 */
export function parseConnectTarget(target: string): HostPort {
  return hostAndPort(target);
}

function hostAndPort(authority: string, defaultPort?: number): HostPort {
  const match = /^(?:\[([^\]]*)\]|([^:[\]]*))(?::(\d*))?$/.exec(authority);
  if (!match) throw new HttpMessageError(400, "the target is not host:port");
  const [, ipv6, name, portText] = match;
  if (ipv6 === undefined ? !isHostName(name) : !isIPv6(ipv6)) {
    throw new HttpMessageError(
      400,
      "the target's host is neither a host name nor an IP address",
    );
  }
  const port = portText ? parsePort(portText) : defaultPort;
  if (port === undefined) {
    throw new HttpMessageError(
      400,
      "the target's port is missing or not a number from 1 to 65535",
    );
  }
  return { host: ipv6?.toLowerCase() ?? name, port };
}

/**
 * Writes a request head for the next hop: to an upstream proxy in absolute
 * form, to an origin server in origin form. Host is set from the target
 * (RFC 9112 §3.2.2) and comes first; the version is this tool's.
 *
 * @param head The request, its fields already prepared
 *   ({@link stripHopByHop}, {@link frameHeaders}, {@link appendVia}).
 * @param target The head's target, from {@link parseAbsoluteTarget}.
 * @param form `absolute` for a proxy, `origin` for the origin server.
 * @returns The head, ready for one write.
 * @throws {TypeError} for a field name that is not a token or a value
 *   with a control character, which only fields the caller added can have.
 *
 * @example
 * ```ts
 * formatRequestHead(head, parseAbsoluteTarget("http://h/p?q"), "origin");
 * // "GET /p?q HTTP/1.1\r\nHost: h\r\n…\r\n\r\n"
 * ```
 */
export function formatRequestHead(
  head: RequestHead,
  target: AbsoluteTarget,
  form: "absolute" | "origin",
): Uint8Array {
  const path = form === "origin"
    ? target.path
    : `http://${target.authority}${target.path}`;
  const headers: HeaderField[] = [
    ["Host", target.authority],
    ...head.headers.filter(([name]) => name.toLowerCase() !== "host"),
  ];
  return formatHead(
    `${head.method} ${path} HTTP/1.1`,
    headers,
    (index) => new TypeError(`request header field ${index} is malformed`),
  );
}

/**
 * Writes a response head for the client, 1xx included, with the status
 * and reason received and this tool's version.
 *
 * @param head The response, its fields already prepared.
 * @returns The head, ready for one write.
 * @throws {HttpMessageError} 502 for a field name that is not a token or a
 *   value with a control character, which the upstream sent.
 */
export function formatResponseHead(head: ResponseHead): Uint8Array {
  const reason = /^\S+ +\d{3} ?(.*)$/.exec(head.statusLine)?.[1] ?? "";
  return formatHead(
    `HTTP/1.1 ${head.status} ${reason}`,
    head.headers,
    (index) =>
      new HttpMessageError(
        502,
        `the upstream response's header field ${index} is malformed`,
      ),
  );
}

function formatHead(
  startLine: string,
  headers: readonly HeaderField[],
  malformed: (index: number) => Error,
): Uint8Array {
  const lines = [startLine];
  for (const [index, [name, value]] of headers.entries()) {
    if (!TOKEN.test(name) || CONTROL.test(value)) {
      throw malformed(index + 1);
    }
    lines.push(`${name}: ${value}`);
  }
  return encoder.encode(lines.join("\r\n") + "\r\n\r\n");
}

const REASONS: Readonly<Record<number, string>> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  405: "Method Not Allowed",
  407: "Proxy Authentication Required",
  408: "Request Timeout",
  413: "Content Too Large",
  414: "URI Too Long",
  417: "Expectation Failed",
  426: "Upgrade Required",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
};

/**
 * A whole response this tool answers with itself, in plain text, after
 * which it closes the connection.
 *
 * @param status The status code.
 * @param text One line for the user; it becomes the body.
 * @param fields More header fields, e.g. `Proxy-Authenticate` for a 407.
 * @returns Head and body, ready for one write.
 *
 * @example
 * ```ts
 * errorResponse(502, "upstream proxy proxy.corp:3128 unreachable");
 * // "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\n
 * //  Content-Length: 43\r\nConnection: close\r\n\r\nupstream proxy …\n"
 * ```
 */
export function errorResponse(
  status: number,
  text: string,
  fields: readonly HeaderField[] = [],
): Uint8Array {
  const body = encoder.encode(`${text}\n`);
  const head = `HTTP/1.1 ${status} ${REASONS[status] ?? ""}\r\n` +
    fields.map(([name, value]) => `${name}: ${value}\r\n`).join("") +
    "Content-Type: text/plain; charset=utf-8\r\n" +
    `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
  return concat(encoder.encode(head), body);
}

/** Options of {@link readRequestHeadWithin}. */
export interface ReadRequestHeadWithinOptions extends ReadRequestHeadOptions {
  /** Limit for the whole head. */
  readonly timeoutMs: number;
  /** Names the wait in a timeout message, e.g. `a request from 127.0.0.1:5555`. */
  readonly what: string;
  /** Gives up, closing the connection, when aborted. @default never */
  readonly signal?: AbortSignal;
}

/**
 * {@link readRequestHead} within a time limit; a head that breaks the rules
 * is answered with its status (400, 414, 431, 505…) before the error is
 * thrown, so that the client learns why.
 *
 * @param input The client's connection.
 * @param options The limits, and what the wait is for.
 * @returns The head, or `undefined` when the client closed first.
 * @throws {HttpMessageError} after answering it; {@link TimeoutError} when
 *   the limit passed (the connection is then closed).
 */
export async function readRequestHeadWithin(
  input: BufferedDuplex,
  options: ReadRequestHeadWithinOptions,
): Promise<RequestHead | undefined> {
  let malformed: HttpMessageError | undefined;
  const head = await withDeadline(
    () => input,
    options.what,
    options,
    // withDeadline closes the connection on any error: a malformed head is
    // taken out of it, to be answered first.
    () =>
      readRequestHead(input, options).catch((error) => {
        if (!(error instanceof HttpMessageError)) throw error;
        malformed = error;
        return undefined;
      }),
  );
  if (malformed === undefined) return head;
  await writeAll(input, errorResponse(malformed.status, malformed.message))
    .catch(() => {});
  throw malformed;
}
