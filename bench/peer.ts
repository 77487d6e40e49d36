/**
 * The load side of the benchmarks, run as its own process so that it does
 * not share a core's event loop with what is measured:
 *
 *   echo PORT...                  echo server on each PORT (prints "ready")
 *   pingpong PORT COUNT           64-byte round trips; prints {meanUs, p99Us}
 *   setups PORT SECONDS WORKERS   connect, 1-byte echo, close; prints {perSecond}
 *   idle PORT COUNT               opens COUNT echoed connections, prints "ready",
 *                                 holds them until stdin closes
 *   stream PORT BYTES [TARGET]    sends BYTES to a sink behind PORT (after
 *                                 CONNECT TARGET when given); prints {gbps}
 *   sink PORT                     reads and drops everything (prints "ready")
 *
 * Modes of bench/local_bench.ts, a client of an HTTP proxy (AUTH is
 * `ntlm:DOMAIN\user:password`, `basic:user:password`, or `-` for none; with
 * NTLM the client does the three-message handshake on each new connection,
 * NTLMv2 by lib/proxy/auth/ntlm.ts, and sends no credentials on a connection
 * once it is authenticated, as browsers do):
 *
 *   origin                        the HTTP origin of tests/_util/origins.ts on
 *                                 a free port; prints {port}, serves until
 *                                 stdin closes
 *   httpload PORT SECONDS CONNS URL [AUTH]
 *                                 GET URL (absolute form) over CONNS kept-alive
 *                                 HTTP/1.1 connections to the proxy, one request
 *                                 at a time each (a kept-alive connection the
 *                                 proxy closed is reopened and the request sent
 *                                 again); prints {perSecond, requests,
 *                                 connections, reopened, errors, firstError?}
 *   connects PORT SECONDS WORKERS TARGET [AUTH]
 *                                 connect, CONNECT TARGET, read the 200, 64-byte
 *                                 echo through the tunnel, close; prints
 *                                 {perSecond, setups, errors, firstError?}
 *   cstream PORT SECONDS TARGET [AUTH]
 *                                 CONNECT TARGET (a sink), send for SECONDS,
 *                                 wait for the close; prints {gbps}
 */

import type * as Ntlm from "../lib/proxy/auth/ntlm.ts";
import type { OriginRequest } from "../tests/_util/origins.ts";
import { connect, pause, readFull, writeAll } from "../tests/_util/net.ts";

const [mode, ...args] = Deno.args;
const enc = new TextEncoder();
const out = (value: unknown) => console.log(JSON.stringify(value));

function closeQuietly(conn: Deno.Conn | undefined) {
  try {
    conn?.close();
  } catch { /* closed */ }
}

/** Counts failures, keeping the first one's message. */
class Tally {
  errors = 0;
  firstError?: string;
  error(error: unknown) {
    this.errors++;
    this.firstError ??= error instanceof Error ? error.message : String(error);
  }
  result() {
    return this.errors === 0
      ? { errors: 0 }
      : { errors: this.errors, firstError: this.firstError };
  }
}

/** Buffered reads of HTTP/1.1 heads and bodies from a connection. */
class HttpReader {
  #buffer = new Uint8Array(16384);
  #start = 0;
  #end = 0;

  constructor(readonly conn: Deno.Conn) {}

  /** Reads more; false at the end of the stream. */
  async #fill(): Promise<boolean> {
    if (this.#start === this.#end) {
      this.#start = this.#end = 0;
    } else if (this.#end === this.#buffer.length) {
      if (this.#start > 0) {
        this.#buffer.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      } else {
        const bigger = new Uint8Array(this.#buffer.length * 2);
        bigger.set(this.#buffer);
        this.#buffer = bigger;
      }
    }
    const n = await this.conn.read(this.#buffer.subarray(this.#end));
    if (n === null) return false;
    this.#end += n;
    return true;
  }

  async #fillOrThrow(what: string) {
    if (!await this.#fill()) {
      throw new Error(`the proxy closed the connection ${what}`);
    }
  }

  /** Reads up to and including the next `\r\n\r\n` (`\r\n` if `line`). */
  async #through(line: boolean, what: string): Promise<string> {
    const mark = line ? 2 : 4;
    let scanned = 0;
    while (true) {
      const b = this.#buffer;
      for (let i = this.#start + scanned; i + mark <= this.#end; i++) {
        if (
          b[i] === 13 && b[i + 1] === 10 &&
          (line || (b[i + 2] === 13 && b[i + 3] === 10))
        ) {
          const text = latin1.decode(b.subarray(this.#start, i));
          this.#start = i + mark;
          return text;
        }
      }
      scanned = Math.max(0, this.#end - this.#start - mark + 1);
      await this.#fillOrThrow(what);
    }
  }

  /**
   * A response head, without its final empty line. Throws
   * {@link ClosedBeforeAnswer} when the stream ends before its first byte.
   */
  async head(): Promise<string> {
    if (this.#start === this.#end && !await this.#fill()) {
      throw new ClosedBeforeAnswer();
    }
    return this.#through(false, "in the middle of a response head");
  }

  /** Drops `n` bytes. */
  async skip(n: number): Promise<void> {
    while (n > 0) {
      if (this.#start === this.#end) {
        await this.#fillOrThrow(`with ${n} bytes still to come`);
      }
      const take = Math.min(n, this.#end - this.#start);
      this.#start += take;
      n -= take;
    }
  }

  /** Drops a chunked body and its trailer. */
  async skipChunked(): Promise<void> {
    while (true) {
      const size = parseInt(await this.#through(true, "inside a chunk"), 16);
      if (!(size > 0)) break;
      await this.skip(size + 2);
    }
    while (await this.#through(true, "inside the trailer") !== "") {
      /* drop */
    }
  }

  /** Drops everything until the end of the stream. */
  async skipToEnd(): Promise<void> {
    this.#start = this.#end;
    while (await this.#fill()) this.#start = this.#end;
  }
}

const latin1 = new TextDecoder("latin1");

/** The proxy closed the connection instead of answering the request. */
class ClosedBeforeAnswer extends Error {
  constructor() {
    super("the proxy closed the connection instead of answering");
  }
}

interface ProxyAuth {
  scheme: "ntlm" | "basic";
  username: string;
  password: string;
  ntlm?: typeof Ntlm;
}

/** Parses AUTH (`ntlm:DOMAIN\user:password`, `basic:user:password`, `-`). */
async function proxyAuth(arg?: string): Promise<ProxyAuth | undefined> {
  if (arg === undefined || arg === "-") return undefined;
  const match = /^(ntlm|basic):([^:]*):(.*)$/.exec(arg);
  if (!match) throw new Error(`AUTH must be ntlm:USER:PASSWORD or basic:...`);
  const [, scheme, username, password] = match;
  return scheme === "ntlm"
    ? {
      scheme,
      username,
      password,
      ntlm: await import("../lib/proxy/auth/ntlm.ts"),
    }
    : { scheme: "basic", username, password };
}

interface ProxyResponse {
  status: number;
  statusLine: string;
  head: string;
  /** Whether the connection may carry another request. */
  reusable: boolean;
}

/** Sends one request and reads its response, body included (dropped). */
async function exchange(
  reader: HttpReader,
  method: string,
  request: string,
): Promise<ProxyResponse> {
  await writeAll(reader.conn, enc.encode(request));
  const head = await reader.head();
  const statusLine = head.slice(0, head.indexOf("\r\n") >>> 0);
  const status = Number(statusLine.slice(9, 12));
  let reusable = !/^(proxy-)?connection:[ \t]*close/im.test(head) &&
    (!head.startsWith("HTTP/1.0") ||
      /^(proxy-)?connection:[ \t]*keep-alive/im.test(head));
  const response = () => ({ status, statusLine, head, reusable });
  if (
    (method === "CONNECT" && status === 200) || status < 200 ||
    status === 204 || status === 304
  ) {
    return response();
  }
  const length = /^content-length:[ \t]*(\d+)/im.exec(head);
  if (length) await reader.skip(Number(length[1]));
  else if (/^transfer-encoding:[ \t]*chunked/im.test(head)) {
    await reader.skipChunked();
  } else {
    await reader.skipToEnd();
    reusable = false;
  }
  return response();
}

const base64 = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes));

/**
 * One request with the proxy's authentication: Basic on every request;
 * NTLM's handshake on a connection that has not authenticated yet (and
 * again if the proxy asks), none after.
 */
async function authorizedExchange(
  reader: HttpReader,
  method: string,
  request: (authorization?: string) => string,
  auth: ProxyAuth | undefined,
  state: { authenticated: boolean },
): Promise<ProxyResponse> {
  if (!auth) return exchange(reader, method, request());
  const { username, password, ntlm } = auth;
  if (!ntlm) {
    const basic = base64(enc.encode(`${username}:${password}`));
    return exchange(reader, method, request(`Basic ${basic}`));
  }
  if (state.authenticated) {
    const response = await exchange(reader, method, request());
    if (response.status !== 407 || !response.reusable) return response;
    state.authenticated = false;
  }
  const first = await exchange(
    reader,
    method,
    request(`NTLM ${base64(ntlm.ntlmNegotiateMessage())}`),
  );
  const token = /^proxy-authenticate:[ \t]*NTLM[ \t]+(\S+)/im.exec(first.head);
  if (first.status !== 407 || !token) return first;
  if (!first.reusable) {
    throw new Error("the proxy closed the connection with its NTLM challenge");
  }
  const challenge = ntlm.parseNtlmChallenge(
    Uint8Array.from(atob(token[1]), (c) => c.charCodeAt(0)),
  );
  const answer = ntlm.ntlmAuthenticateMessage({
    challenge,
    user: ntlm.splitNtlmUser(username),
    password,
    clientChallenge: crypto.getRandomValues(new Uint8Array(8)),
    now: ntlm.fileTime(Date.now()),
  });
  const response = await exchange(
    reader,
    method,
    request(`NTLM ${base64(answer)}`),
  );
  state.authenticated = response.status !== 407;
  return response;
}

/** CONNECT `target` through the proxy on `reader`; throws unless a 200. */
async function connectThrough(
  reader: HttpReader,
  target: string,
  auth: ProxyAuth | undefined,
): Promise<void> {
  const response = await authorizedExchange(
    reader,
    "CONNECT",
    (authorization) =>
      `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${
        authorization ? `Proxy-Authorization: ${authorization}\r\n` : ""
      }\r\n`,
    auth,
    { authenticated: false },
  );
  if (response.status !== 200) {
    throw new Error(`CONNECT ${target}: ${response.statusLine}`);
  }
}

function serve(port: number, handle: (conn: Deno.Conn) => Promise<void>) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  console.log("ready");
  (async () => {
    while (true) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch {
        // Out of descriptors for a moment: keep serving.
        await new Promise((resolve) => setTimeout(resolve, 10));
        continue;
      }
      (conn as Deno.TcpConn).setNoDelay(true);
      handle(conn).catch(() => {}).finally(() => {
        try {
          conn.close();
        } catch { /* closed */ }
      });
    }
  })();
}

switch (mode) {
  case "echo":
    for (const port of args) {
      serve(Number(port), async (conn) => {
        const buffer = new Uint8Array(65536);
        while (true) {
          const n = await conn.read(buffer);
          if (n === null) break;
          await writeAll(conn, buffer.subarray(0, n));
        }
      });
    }
    break;
  case "sink":
    serve(Number(args[0]), async (conn) => {
      const buffer = new Uint8Array(262144);
      while (await conn.read(buffer) !== null) { /* drop */ }
    });
    break;
  case "pingpong": {
    const conn = await connect(Number(args[0]));
    conn.setNoDelay(true);
    const message = new Uint8Array(64).fill(7);
    const reply = new Uint8Array(64);
    const times: number[] = [];
    for (let i = 0; i < Number(args[1]) + 100; i++) {
      const start = performance.now();
      await writeAll(conn, message);
      await readFull(conn, reply);
      if (i >= 100) times.push((performance.now() - start) * 1000);
    }
    conn.close();
    times.sort((a, b) => a - b);
    out({
      meanUs: times.reduce((a, b) => a + b, 0) / times.length,
      p99Us: times[Math.floor(times.length * 0.99)],
    });
    break;
  }
  case "setups": {
    const deadline = performance.now() + Number(args[1]) * 1000;
    let count = 0;
    const one = new Uint8Array([1]);
    const worker = async () => {
      const reply = new Uint8Array(1);
      while (performance.now() < deadline) {
        const conn = await connect(Number(args[0]));
        await writeAll(conn, one);
        await readFull(conn, reply);
        conn.close();
        count++;
      }
    };
    const started = performance.now();
    await Promise.all(Array.from({ length: Number(args[2]) }, worker));
    out({ perSecond: count / ((performance.now() - started) / 1000) });
    break;
  }
  case "idle": {
    const conns: Deno.Conn[] = [];
    const one = new Uint8Array([1]);
    const reply = new Uint8Array(1);
    for (let i = 0; i < Number(args[1]); i++) {
      const conn = await connect(Number(args[0]));
      await writeAll(conn, one);
      await readFull(conn, reply);
      conns.push(conn);
    }
    console.log("ready");
    for await (const _ of Deno.stdin.readable) { /* until stdin closes */ }
    for (const conn of conns) conn.close();
    break;
  }
  case "stream": {
    const conn = await connect(Number(args[0]));
    if (args[2]) {
      await writeAll(
        conn,
        enc.encode(`CONNECT ${args[2]} HTTP/1.1\r\nHost: ${args[2]}\r\n\r\n`),
      );
      let head = "";
      const byte = new Uint8Array(1);
      while (!head.endsWith("\r\n\r\n")) {
        await readFull(conn, byte);
        head += String.fromCharCode(byte[0]);
      }
      if (!/^HTTP\/1\.\d 2/.test(head)) throw new Error(head);
    }
    const chunk = new Uint8Array(262144);
    const total = Number(args[1]);
    const started = performance.now();
    for (let sent = 0; sent < total; sent += chunk.length) {
      await writeAll(conn, chunk);
    }
    await conn.closeWrite();
    await conn.read(new Uint8Array(1)).catch(() => null);
    const seconds = (performance.now() - started) / 1000;
    conn.close();
    out({ gbps: (total * 8) / seconds / 1e9 });
    break;
  }
  case "origin": {
    const { startHttpOrigin } = await import("../tests/_util/origins.ts");
    const origin = startHttpOrigin();
    out({ port: origin.port });
    // The origin keeps every request it received; a bench sends millions.
    const forget = setInterval(
      () => (origin.requests as OriginRequest[]).splice(0),
      1000,
    );
    for await (const _ of Deno.stdin.readable) { /* until stdin closes */ }
    clearInterval(forget);
    await origin[Symbol.asyncDispose]();
    break;
  }
  case "httpload": {
    const [port, seconds, conns, url, authArg] = args;
    const auth = await proxyAuth(authArg);
    const host = new URL(url).host;
    const request = (authorization?: string) =>
      `GET ${url} HTTP/1.1\r\nHost: ${host}\r\n${
        authorization ? `Proxy-Authorization: ${authorization}\r\n` : ""
      }\r\n`;
    const deadline = performance.now() + Number(seconds) * 1000;
    const tally = new Tally();
    let requests = 0;
    let connections = 0;
    let reopened = 0;
    const worker = async () => {
      let reader: HttpReader | undefined;
      let served = 0;
      const state = { authenticated: false };
      while (performance.now() < deadline) {
        try {
          if (!reader) {
            const conn = await connect(Number(port));
            conn.setNoDelay(true);
            reader = new HttpReader(conn);
            served = 0;
            state.authenticated = false;
            connections++;
          }
          const response = await authorizedExchange(
            reader,
            "GET",
            request,
            auth,
            state,
          );
          served++;
          if (response.status >= 200 && response.status < 300) requests++;
          else tally.error(response.statusLine);
          if (!response.reusable) {
            reader.conn.close();
            reader = undefined;
          }
        } catch (error) {
          // A kept-alive connection that the proxy closed meanwhile: the
          // request goes again on a new one, as browsers and curl do.
          if (
            served > 0 && (error instanceof ClosedBeforeAnswer ||
              error instanceof Deno.errors.ConnectionReset ||
              error instanceof Deno.errors.BrokenPipe)
          ) {
            reopened++;
            closeQuietly(reader?.conn);
            reader = undefined;
            continue;
          }
          tally.error(error);
          closeQuietly(reader?.conn);
          reader = undefined;
          await pause(10);
        }
      }
      closeQuietly(reader?.conn);
    };
    const started = performance.now();
    await Promise.all(Array.from({ length: Number(conns) }, worker));
    out({
      perSecond: requests / ((performance.now() - started) / 1000),
      requests,
      connections,
      reopened,
      ...tally.result(),
    });
    break;
  }
  case "connects": {
    const [port, seconds, workers, target, authArg] = args;
    const auth = await proxyAuth(authArg);
    const deadline = performance.now() + Number(seconds) * 1000;
    const message = new Uint8Array(64).fill(7);
    const tally = new Tally();
    let setups = 0;
    const worker = async () => {
      while (performance.now() < deadline) {
        let conn: Deno.TcpConn | undefined;
        try {
          conn = await connect(Number(port));
          conn.setNoDelay(true);
          const reader = new HttpReader(conn);
          await connectThrough(reader, target, auth);
          await writeAll(conn, message);
          await reader.skip(message.length);
          setups++;
        } catch (error) {
          tally.error(error);
          await pause(10);
        } finally {
          closeQuietly(conn);
        }
      }
    };
    const started = performance.now();
    await Promise.all(Array.from({ length: Number(workers) }, worker));
    out({
      perSecond: setups / ((performance.now() - started) / 1000),
      setups,
      ...tally.result(),
    });
    break;
  }
  case "cstream": {
    const [port, seconds, target, authArg] = args;
    const auth = await proxyAuth(authArg);
    const conn = await connect(Number(port));
    const reader = new HttpReader(conn);
    await connectThrough(reader, target, auth);
    const chunk = new Uint8Array(262144);
    const started = performance.now();
    const deadline = started + Number(seconds) * 1000;
    let sent = 0;
    while (performance.now() < deadline) {
      await writeAll(conn, chunk);
      sent += chunk.length;
    }
    await conn.closeWrite();
    // The sink closes once it has read everything; the tunnel passes that on.
    await reader.skipToEnd();
    const elapsed = (performance.now() - started) / 1000;
    conn.close();
    out({ gbps: (sent * 8) / elapsed / 1e9, bytes: sent });
    break;
  }
  default:
    throw new Error(`unknown mode ${mode}`);
}
