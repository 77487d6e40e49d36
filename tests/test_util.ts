/**
 * Shared helpers for the tests: free ports, small servers, and real proxies
 * (squid, tinyproxy) started with their own config files.
 *
 * @module
 */

import { configure, type LogRecord, reset } from "@logtape/logtape";
import { createHash } from "node:crypto";
import {
  DEFAULT_TUNNEL_OPTIONS,
  type TunnelOptions,
} from "../lib/config/options.ts";
import {
  type ConfigContext,
  parseConfig,
  type TunnelEntry,
} from "../lib/config/parse.ts";
import { Supervisor, type SupervisorOptions } from "../lib/supervisor.ts";

/** Whether real-proxy tests must run (set by CI): a missing program fails them. */
export const IN_CI = Deno.env.get("CI") === "true";

/**
 * Tells whether a test needing `program` should be skipped, printing why.
 * Never skips under CI.
 *
 * @param program An executable that the test starts.
 * @returns `true` when the test should be ignored.
 */
export function missing(program: string): boolean {
  if (IN_CI) return false;
  try {
    new Deno.Command(program, {
      args: ["-v"],
      stdout: "null",
      stderr: "null",
    }).outputSync();
    return false;
  } catch {
    console.log(`skipping tests that need ${program}: it is not installed`);
    return true;
  }
}

/** Returns a TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): number {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return listener.addr.port;
}

/**
 * Rejects when `promise` has not settled after `ms`.
 *
 * @param promise What to wait for.
 * @param ms The limit.
 * @param what Names the wait in the error.
 */
export async function within<T>(
  promise: Promise<T>,
  ms: number,
  what: string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${what}: no result after ${ms} ms`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Reads until end of stream and returns everything. */
export async function readAll(conn: Deno.Conn): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(64 * 1024);
  while (true) {
    const n = await conn.read(buffer);
    if (n === null) break;
    chunks.push(buffer.slice(0, n));
  }
  const all = new Uint8Array(chunks.reduce((sum, c) => sum + c.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    all.set(chunk, offset);
    offset += chunk.length;
  }
  return all;
}

/** Reads exactly `n` bytes. */
export async function readExactly(
  conn: Deno.Conn,
  n: number,
): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let offset = 0;
  while (offset < n) {
    const got = await conn.read(out.subarray(offset));
    if (got === null) {
      throw new Error(`stream ended after ${offset} of ${n} bytes`);
    }
    offset += got;
  }
  return out;
}

/** Writes all of `data`. */
export async function writeAll(
  conn: Deno.Conn,
  data: Uint8Array,
): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    offset += await conn.write(data.subarray(offset));
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** UTF-8 bytes of `text`. */
export function bytes(text: string): Uint8Array {
  return encoder.encode(text);
}

/** `bytes` decoded as UTF-8. */
export function text(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

/**
 * A TCP server on 127.0.0.1 that runs `handle` for each connection.
 * Disposing it again waits for the first disposal.
 */
export interface TestServer extends AsyncDisposable {
  /** The port it listens on. */
  readonly port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
}

/**
 * Starts a TCP server on 127.0.0.1. Disposing it stops accepting, closes
 * open connections and waits for the handlers.
 *
 * @param handle Runs for each accepted connection; the server closes it after.
 */
export function startServer(
  handle: (conn: Deno.TcpConn, index: number) => Promise<void>,
): TestServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<Deno.TcpConn>();
  const tasks = new Set<Promise<void>>();
  let accepted = 0;
  let stopped: Promise<void> | undefined;
  const loop = (async () => {
    for await (const conn of listener) {
      const index = accepted++;
      open.add(conn);
      const task = handle(conn, index).catch(() => {}).finally(() => {
        open.delete(conn);
        try {
          conn.close();
        } catch { /* closed by the handler */ }
      });
      tasks.add(task);
      task.finally(() => tasks.delete(task));
    }
  })().catch(() => {});
  return {
    port: listener.addr.port,
    get accepted() {
      return accepted;
    },
    [Symbol.asyncDispose]() {
      stopped ??= (async () => {
        listener.close();
        await loop;
        for (const conn of open) {
          try {
            conn.close();
          } catch { /* already closed */ }
        }
        await Promise.all(tasks);
      })();
      return stopped;
    },
  };
}

/** An echo server: writes back what it reads, half-closes after EOF. */
export function startEchoServer(): TestServer {
  return startServer(async (conn) => {
    const buffer = new Uint8Array(64 * 1024);
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      await writeAll(conn, buffer.subarray(0, n));
    }
    await conn.closeWrite();
  });
}

/** A server that greets first (like SSH), then echoes. */
export function startBannerServer(banner: string): TestServer {
  return startServer(async (conn) => {
    await writeAll(conn, bytes(banner));
    const buffer = new Uint8Array(64 * 1024);
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      await writeAll(conn, buffer.subarray(0, n));
    }
  });
}

/**
 * Deterministic pseudo-random bytes (xorshift32), so both ends of a
 * transfer can check it without storing it.
 */
export function* pseudoRandomChunks(
  seed: number,
  total: number,
  chunkSize = 64 * 1024,
): Generator<Uint8Array> {
  let state = seed >>> 0 || 1;
  for (let done = 0; done < total; done += chunkSize) {
    const chunk = new Uint8Array(Math.min(chunkSize, total - done));
    const words = new Uint32Array(chunk.buffer, 0, chunk.length >>> 2);
    for (let i = 0; i < words.length; i++) {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      words[i] = state;
    }
    yield chunk;
  }
}

/** The sha256 of everything `chunks` yields, in hex. */
export function sha256Of(chunks: Iterable<Uint8Array>): string {
  const hash = createHash("sha256");
  for (const chunk of chunks) hash.update(chunk);
  return hash.digest("hex");
}

/** Writes every chunk to `conn`. */
export async function sendChunks(
  conn: Deno.Conn,
  chunks: Iterable<Uint8Array>,
): Promise<void> {
  for (const chunk of chunks) await writeAll(conn, chunk);
}

/** Reads exactly `length` bytes and returns their sha256 in hex. */
export async function hashExactly(
  conn: Deno.Conn,
  length: number,
): Promise<string> {
  const hash = createHash("sha256");
  const buffer = new Uint8Array(64 * 1024);
  for (let got = 0; got < length;) {
    const n = await conn.read(
      buffer.subarray(0, Math.min(buffer.length, length - got)),
    );
    if (n === null) {
      throw new Error(`stream ended after ${got} of ${length} bytes`);
    }
    hash.update(buffer.subarray(0, n));
    got += n;
  }
  return hash.digest("hex");
}

/** A program started by a test, stopped by disposing it. */
export interface TestProcess extends AsyncDisposable {
  /** The port it serves on. */
  readonly port: number;
  /** Its working directory, with its config and logs. */
  readonly dir: string;
}

async function waitForPort(
  port: number,
  ms: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (true) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return;
    } catch (error) {
      if (Date.now() > deadline) {
        throw new Error(
          `${what} did not listen on port ${port} within ${ms} ms`,
          {
            cause: error,
          },
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

async function startProgram(
  what: string,
  command: string,
  args: (dir: string) => string[],
  config: (dir: string, port: number) => string,
  configName: string,
  prepare?: (dir: string) => Promise<void>,
  port = freePort(),
): Promise<TestProcess> {
  const dir = await Deno.makeTempDir({ prefix: `httptunneling-${what}-` });
  // The proxies drop root for an unprivileged user who must write here.
  await Deno.chmod(dir, 0o777);
  await prepare?.(dir);
  await Deno.writeTextFile(`${dir}/${configName}`, config(dir, port));
  const child = new Deno.Command(command, {
    args: args(dir),
    cwd: dir,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const stop = async () => {
    try {
      child.kill("SIGKILL");
    } catch { /* already exited */ }
    await child.status;
    await Deno.remove(dir, { recursive: true });
  };
  try {
    await waitForPort(port, 10_000, what);
  } catch (error) {
    await stop();
    throw error;
  }
  return { port, dir, [Symbol.asyncDispose]: stop };
}

// Listens with an accept queue of one and fills it itself, so that the
// kernel drops every later SYN: a destination that never answers, on
// loopback.
const BLACK_HOLE_PY = `
import socket, sys
server = socket.socket()
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen(0)
filler = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
print("ready", flush=True)
sys.stdin.read()
`;

/**
 * Starts a loopback port where a TCP connect hangs (SYNs go unanswered),
 * like a destination behind a firewall that drops packets. Needs python3.
 */
export async function startBlackHole(): Promise<TestProcess> {
  const port = freePort();
  const child = new Deno.Command("python3", {
    args: ["-c", BLACK_HOLE_PY, String(port)],
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const stop = async () => {
    await child.stdin.close().catch(() => {});
    try {
      child.kill("SIGKILL");
    } catch { /* already exited */ }
    await child.status;
  };
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    const first = await within(reader.read(), 10_000, "black hole ready");
    if (!first.value?.includes("ready")) throw new Error("black hole failed");
  } catch (error) {
    await reader.cancel();
    await stop();
    throw error;
  }
  await reader.cancel();
  return { port, dir: "", [Symbol.asyncDispose]: stop };
}

/**
 * Starts real squid on a free loopback port, allowing CONNECT from loopback
 * to any port.
 *
 * @param extra More squid.conf lines, placed before the access rules.
 */
export function startSquid(extra = ""): Promise<TestProcess> {
  return startProgram(
    "squid",
    "squid",
    (dir) => ["-N", "-f", `${dir}/squid.conf`],
    (dir, port) =>
      `http_port 127.0.0.1:${port}
pid_filename ${dir}/squid.pid
cache_log ${dir}/cache.log
access_log stdio:${dir}/access.log
coredump_dir ${dir}
cache deny all
cache_mem 8 MB
shutdown_lifetime 0 seconds
${extra}
acl loopback src 127.0.0.0/8 ::1
http_access allow loopback
http_access deny all
`,
    "squid.conf",
  );
}

/**
 * Starts real tinyproxy on loopback, CONNECT to any port.
 *
 * @param port The port to listen on; a free one by default.
 */
export function startTinyproxy(port?: number): Promise<TestProcess> {
  return startProgram(
    "tinyproxy",
    "tinyproxy",
    (dir) => ["-d", "-c", `${dir}/tinyproxy.conf`],
    (_dir, port) =>
      `User nobody
Group nogroup
Port ${port}
Listen 127.0.0.1
Timeout 600
MaxClients 100
Allow 127.0.0.1
`,
    "tinyproxy.conf",
    undefined,
    port,
  );
}

/** Log lines captured from the tool's loggers while a test runs. */
export interface CapturedLogs extends AsyncDisposable {
  /** Each record's rendered message, in order. */
  readonly lines: string[];
  /** Resolves once a line matching `pattern` was logged. */
  waitFor(pattern: RegExp, ms?: number): Promise<string>;
}

/** Routes the tool's log records into memory until disposed. */
export async function captureLogs(): Promise<CapturedLogs> {
  const lines: string[] = [];
  await configure({
    reset: true,
    sinks: {
      memory: (record: LogRecord) => {
        lines.push(record.message.map(String).join(""));
      },
    },
    loggers: [
      { category: ["httptunneling"], lowestLevel: "debug", sinks: ["memory"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: [] },
    ],
  });
  return {
    lines,
    async waitFor(pattern, ms = 5_000) {
      const deadline = Date.now() + ms;
      while (true) {
        const line = lines.find((each) => pattern.test(each));
        if (line !== undefined) return line;
        if (Date.now() > deadline) {
          throw new Error(
            `no log line matched ${pattern} within ${ms} ms:\n${
              lines.join("\n")
            }`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    [Symbol.asyncDispose]: reset,
  };
}

/**
 * Polls `check` until it returns a value other than `undefined` or `false`.
 *
 * @param check The condition, evaluated every 20 ms.
 * @param ms The limit.
 * @param what Names the wait in the error.
 */
export async function eventually<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  ms: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + ms;
  while (true) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Tunnel settings for tests: time limits short enough to fail fast. */
export const TEST_OPTIONS: TunnelOptions = {
  ...DEFAULT_TUNNEL_OPTIONS,
  connectTimeoutMs: 2_000,
  handshakeTimeoutMs: 2_000,
};

/** Parses a config text, failing the test on any error. */
export function entriesOf(
  config: string,
  context?: ConfigContext,
): TunnelEntry[] {
  const { entries, errors } = parseConfig(config, "test.conf", context);
  if (errors.length > 0) {
    throw new Error(errors.map((e) => e.message).join("\n"));
  }
  return entries;
}

/** The tool's supervisor serving a config text; disposing shuts it down. */
export interface RunningTool extends AsyncDisposable {
  /** The supervisor, for applying changed configs and looking inside. */
  readonly supervisor: Supervisor;
}

/**
 * Runs the tool's supervisor, in this process, on a config text.
 *
 * @param config Config file text.
 * @param options Supervisor settings; short test time limits by default.
 */
export async function startTool(
  config: string,
  options: SupervisorOptions = { defaults: TEST_OPTIONS },
  context?: ConfigContext,
): Promise<RunningTool> {
  const supervisor = new Supervisor(options);
  await supervisor.apply(entriesOf(config, context));
  return { supervisor, [Symbol.asyncDispose]: () => supervisor.shutdown() };
}

/** Connects to 127.0.0.1:`port` (or another loopback address). */
export function connect(
  port: number,
  hostname = "127.0.0.1",
): Promise<Deno.TcpConn> {
  return Deno.connect({ hostname, port });
}

/** Sends `message`, shuts down sending, and returns everything received. */
export async function echoRoundTrip(
  port: number,
  message: string,
): Promise<string> {
  using conn = await connect(port);
  await writeAll(conn, bytes(message));
  await conn.closeWrite();
  return text(await within(readAll(conn), 10_000, "echo through the tunnel"));
}

/**
 * Sends `message` and reads back as many bytes, without shutting down
 * first: squid and tinyproxy end a tunnel when one side shuts down.
 */
export async function echoExchange(
  port: number,
  message: string,
): Promise<string> {
  using conn = await connect(port);
  await writeAll(conn, bytes(message));
  return text(
    await within(
      readExactly(conn, bytes(message).length),
      10_000,
      "echo through the proxy",
    ),
  );
}

const SQUID_HELPERS = "/usr/lib/squid";

/**
 * Starts squid requiring proxy authentication through `helper`.
 *
 * @param scheme `basic`, `digest` or `ntlm`.
 * @param helper The helper's command line, under /usr/lib/squid.
 * @param files Password files to write first, by name; the helper's command
 *   line refers to them as `{dir}/name`.
 */
async function startSquidWithAuth(
  scheme: string,
  helper: string,
  files: Record<string, (path: string) => Promise<void>> = {},
): Promise<TestProcess> {
  const dir = await Deno.makeTempDir({ prefix: "httptunneling-auth-" });
  await Deno.chmod(dir, 0o755);
  for (const [name, write] of Object.entries(files)) {
    await write(`${dir}/${name}`);
    await Deno.chmod(`${dir}/${name}`, 0o644);
  }
  const squid = await startSquid(`
auth_param ${scheme} program ${SQUID_HELPERS}/${helper.replaceAll("{dir}", dir)}
auth_param ${scheme} children 2
${scheme === "ntlm" ? "" : `auth_param ${scheme} realm httptunneling-test`}
acl authed proxy_auth REQUIRED
http_access deny !authed
`);
  return {
    port: squid.port,
    dir: squid.dir,
    async [Symbol.asyncDispose]() {
      await squid[Symbol.asyncDispose]();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** squid that requires Basic, checked by basic_ncsa_auth against htpasswd. */
export function startSquidWithBasic(
  user: string,
  password: string,
): Promise<TestProcess> {
  return startSquidWithAuth("basic", "basic_ncsa_auth {dir}/passwd", {
    async passwd(path) {
      const { code } = await new Deno.Command("htpasswd", {
        args: ["-b", "-c", path, user, password],
        stdout: "null",
        stderr: "null",
      }).output();
      if (code !== 0) throw new Error("htpasswd failed");
    },
  });
}

/** squid that requires Digest, checked by digest_file_auth. */
export function startSquidWithDigest(
  user: string,
  password: string,
): Promise<TestProcess> {
  return startSquidWithAuth("digest", "digest_file_auth {dir}/passwd", {
    passwd: (path) => Deno.writeTextFile(path, `${user}:${password}\n`),
  });
}

/** squid with ntlm_fake_auth: any credentials, the real 3-message handshake. */
export function startSquidWithNtlm(): Promise<TestProcess> {
  return startSquidWithAuth("ntlm", "ntlm_fake_auth");
}

/** Runs a command, failing the test with its output when it fails. */
async function run(
  command: string,
  args: string[],
  cwd: string,
): Promise<void> {
  const { code, stderr } = await new Deno.Command(command, {
    args,
    cwd,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    throw new Error(`${command} ${args.join(" ")} failed: ${text(stderr)}`);
  }
}

/** A test CA and a server certificate for 127.0.0.1 and localhost it signed. */
export interface TestCertificates {
  /** The directory holding `ca.pem`, `server.pem` and `server.key`. */
  readonly dir: string;
  /** The CA certificate, PEM. */
  readonly caPem: string;
}

/**
 * Makes a CA and a server certificate with openssl.
 *
 * @param dir Where to write them.
 */
export async function makeCertificates(dir: string): Promise<TestCertificates> {
  const ec = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
  ];
  await run("openssl", [
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "2",
    "-subj",
    "/CN=httptunneling test CA",
  ], dir);
  await run("openssl", [
    "req",
    ...ec,
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
    "-subj",
    "/CN=127.0.0.1",
  ], dir);
  await Deno.writeTextFile(
    `${dir}/server.ext`,
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
  );
  await run("openssl", [
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "server.pem",
    "-days",
    "2",
    "-extfile",
    "server.ext",
  ], dir);
  await Deno.chmod(`${dir}/server.key`, 0o644);
  return { dir, caPem: await Deno.readTextFile(`${dir}/ca.pem`) };
}

/**
 * Starts stunnel4 as a TLS front for `targetPort`, with a certificate
 * signed by a new test CA: together with squid, an https:// proxy.
 */
export async function startTlsFront(
  targetPort: number,
): Promise<TestProcess & { caPem: string }> {
  let caPem = "";
  const front = await startProgram(
    "stunnel",
    "stunnel4",
    (dir) => [`${dir}/stunnel.conf`],
    (dir, port) =>
      `foreground = yes
pid =
[proxy]
accept = 127.0.0.1:${port}
connect = 127.0.0.1:${targetPort}
cert = ${dir}/server.pem
key = ${dir}/server.key
`,
    "stunnel.conf",
    async (dir) => {
      caPem = (await makeCertificates(dir)).caPem;
    },
  );
  return { ...front, caPem };
}

/**
 * Starts a real dante SOCKS5 server on loopback.
 *
 * @param withUsers Require username/password (checked against system users).
 */
export function startDante(withUsers = false): Promise<TestProcess> {
  const method = withUsers ? "username" : "none";
  return startProgram(
    "danted",
    "danted",
    (dir) => ["-f", `${dir}/danted.conf`, "-p", `${dir}/danted.pid`],
    (dir, port) =>
      `logoutput: ${dir}/danted.log
internal: 127.0.0.1 port = ${port}
external: 127.0.0.1
socksmethod: ${method}
clientmethod: none
user.privileged: root
user.unprivileged: nobody
client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }
socks pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }
`,
    "danted.conf",
  );
}

/** The system user that .ci/run creates for dante's username method. */
export const SOCKS_TEST_USER = {
  username: "httptunneling-socks",
  password: "socks-Pa55",
};
