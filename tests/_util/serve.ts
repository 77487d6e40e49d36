/**
 * `serve` in tests: the tool started as a child (`deno run main.ts serve`)
 * in a temporary directory with a tokens file and its log, and a client
 * of the tunnel protocol written with Debian's python3-websockets
 * (tests/_util/ws_client.py), an implementation independent of ours.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { fromBase64 } from "../../lib/net/bytes.ts";
import { makeCertificates } from "./certs.ts";
import { freePort, pause, text, within } from "./net.ts";
import { IN_CI } from "./proxies.ts";
import { ROOT, tool, waitForLog } from "./tool.ts";

/** The Debian interpreter, which has python3-websockets (a pyenv one may not). */
export const DEBIAN_PYTHON = "/usr/bin/python3";

/** A token in the tokens file that every started serve has, named `alice`. */
export const ALICE_TOKEN = "alice-token-0123456789abcdef";

/**
 * Whether python3-websockets is missing: tests needing it skip with a
 * printed reason, except under CI where they must run.
 */
export function missingWebsockets(): boolean {
  if (IN_CI) return false;
  try {
    const { code } = new Deno.Command(DEBIAN_PYTHON, {
      args: ["-c", "import websockets"],
      stdout: "null",
      stderr: "null",
    }).outputSync();
    if (code === 0) return false;
  } catch { /* not installed */ }
  console.log(
    "skipping serve tests: python3-websockets is not installed (apt-get install python3-websockets)",
  );
  return true;
}

/** A `serve` child; disposing it stops it (SIGTERM) and removes its directory. */
export interface ServeProcess extends AsyncDisposable {
  /** Its directory: tokens.txt, serve.log, and whatever the test put there. */
  readonly dir: string;
  /** The port it serves tunnels on. */
  readonly port: number;
  /** Its log file. */
  readonly log: string;
  /** The child. */
  readonly child: Deno.ChildProcess;
  /** The log's text now. */
  logText(): Promise<string>;
  /** Sends SIGTERM and returns the exit code and stderr. */
  stop(): Promise<{ code: number; stderr: string }>;
}

/** Options of {@link startServe}. */
export interface StartServeOptions {
  /** Arguments after `serve`, besides --listen, --tokens and --log. */
  readonly args?: string[];
  /** Files to write into the directory first, by name. */
  readonly files?: Record<string, string>;
  /** Leave out `--tokens tokens.txt` (the config file names it). */
  readonly noTokensFlag?: boolean;
  /** Use this directory (already prepared) instead of a new one. */
  readonly dir?: string;
  /** Flags of `deno run`, e.g. `--inspect` for a profile. @default none */
  readonly denoFlags?: string[];
}

/**
 * Starts `serve` on a free loopback port and waits until it serves.
 *
 * @param options Its arguments and files.
 * @returns The running child.
 */
export async function startServe(
  options: StartServeOptions = {},
): Promise<ServeProcess> {
  const dir = options.dir ??
    await Deno.makeTempDir({ prefix: "httptunneling-serve-" });
  await Deno.writeTextFile(`${dir}/tokens.txt`, `alice ${ALICE_TOKEN}\n`);
  for (const [name, content] of Object.entries(options.files ?? {})) {
    await Deno.writeTextFile(`${dir}/${name}`, content);
  }
  const port = freePort();
  const log = `${dir}/serve.log`;
  const child = tool(
    [
      "serve",
      "--listen",
      `127.0.0.1:${port}`,
      ...(options.noTokensFlag ? [] : ["--tokens", "tokens.txt"]),
      "--log",
      "serve.log",
      "--log-level",
      "debug",
      ...(options.args ?? []),
    ],
    dir,
    {},
    options.denoFlags,
  ).spawn();
  let result: Promise<Deno.CommandOutput> | undefined;
  const output = () => result ??= child.output();
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* already ended */ }
    const { code, stderr } = await within(output(), 20_000, "serve's exit");
    return { code, stderr: text(stderr) };
  };
  try {
    await Promise.race([
      waitForLog(log, /serving tunnels on/),
      output().then(({ stderr }) => {
        throw new Error(`serve ended before serving: ${text(stderr)}`);
      }),
    ]);
  } catch (error) {
    await stop().catch(() => {});
    throw error;
  }
  let disposed = false;
  return {
    dir,
    port,
    log,
    child,
    logText: () => Deno.readTextFile(log).catch(() => ""),
    stop,
    async [Symbol.asyncDispose]() {
      if (disposed) return;
      disposed = true;
      await stop();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** What the Python client reports; see tests/_util/ws_client.py. */
export interface ClientReport {
  status: number;
  refusal: string | null;
  protocol?: string;
  received?: string;
  received_len?: number;
  received_sha256?: string;
  eof?: boolean;
  acked?: number;
  sent?: number;
  close_code?: number;
  close_reason?: string;
}

/** What the Python client does; see tests/_util/ws_client.py. */
export interface ClientSpec {
  url: string;
  token?: string;
  target?: string;
  ca?: string;
  send?: string;
  repeat?: number;
  eof?: boolean;
  hold?: number;
  extra_headers?: Record<string, string>;
  ignore_window?: boolean;
  stall?: number;
}

/**
 * Runs the Python client once.
 *
 * @param spec What it connects to and sends.
 * @returns Its report.
 */
export function pythonClient(spec: ClientSpec): Promise<ClientReport> {
  return runPython("ws_client.py", spec);
}

/** What the Python v2 client reports; see tests/_util/ws_v2_client.py. */
export interface SessionClientReport {
  status: number;
  refusal: string | null;
  protocol?: string;
  welcome?: string | null;
  pong?: boolean;
  close_code?: number;
  close_reason?: string;
}

/** What the Python v2 client does; see tests/_util/ws_v2_client.py. */
export interface SessionClientSpec {
  url: string;
  token: string;
  ca?: string;
  /** The HELLO frame's bytes, hex. */
  hello: string;
  text?: string;
  ping?: boolean;
}

/**
 * Runs the Python client of protocol v2 once.
 *
 * @param spec What it connects to and sends.
 * @returns Its report.
 */
export function pythonSessionClient(
  spec: SessionClientSpec,
): Promise<SessionClientReport> {
  return runPython("ws_v2_client.py", spec);
}

// Runs one of the Python clients with its spec; its JSON report.
async function runPython<T>(script: string, spec: object): Promise<T> {
  const { code, stdout, stderr } = await within(
    new Deno.Command(DEBIAN_PYTHON, {
      args: [`${ROOT}tests/_util/${script}`, JSON.stringify(spec)],
      stdout: "piped",
      stderr: "piped",
    }).output(),
    60_000,
    `the python websockets client ${script}`,
  );
  assert.equal(code, 0, `${script} failed: ${text(stderr)}`);
  return JSON.parse(text(stdout));
}

/** Polls `path` until its text matches `pattern` (log lines that come late). */
export async function logMatches(
  serve: ServeProcess,
  pattern: RegExp,
  ms = 15_000,
): Promise<string> {
  const deadline = Date.now() + ms;
  while (true) {
    const log = await serve.logText();
    if (pattern.test(log)) return log;
    if (Date.now() > deadline) {
      throw new Error(`serve's log has no line matching ${pattern}:\n${log}`);
    }
    await pause(50);
  }
}

/** The SHA-256 of a PEM certificate's DER bytes, as fingerprint= takes it. */
export async function fingerprintOf(pemFile: string): Promise<string> {
  const pem = await Deno.readTextFile(pemFile);
  const body = pem.split("-----")[2].replace(/\s+/g, "");
  return `sha256:${
    createHash("sha256").update(fromBase64(body)).digest("hex")
  }`;
}

/** A test CA and a certificate it signed for serve, from {@linkcode serveCertificates}. */
export interface ServeCertificates extends AsyncDisposable {
  /** serve's certificate (PEM file), for 127.0.0.1 and localhost. */
  readonly cert: string;
  /** Its private key (PEM file). */
  readonly key: string;
  /** The CA that signed it (PEM file), for ca-file=. */
  readonly ca: string;
  /** serve.pem and server.key by name, for {@linkcode StartServeOptions.files}. */
  readonly files: Record<string, string>;
}

/**
 * serve's two TLS fronts, by the `deno run` flags that pick them: Deno's
 * own TLS where FFI lets serve set TCP_NODELAY on its listening socket,
 * node:tls where it does not (the compiled binary's permissions); `front`
 * matches the log line that names it.
 */
export const TLS_FRONTS: readonly {
  readonly denoFlags: string[];
  readonly front: RegExp;
}[] = [
  { denoFlags: ["--allow-ffi"], front: /TLS by Deno\.listenTls/ },
  { denoFlags: [], front: /TLS by node:tls/ },
];

/** The arguments that make serve use {@linkcode ServeCertificates.files}. */
export const SERVE_TLS_ARGS = ["--cert", "server.pem", "--key", "server.key"];

/**
 * Makes a CA and a server certificate in a new directory, removed on
 * disposal; serve reads only its own directory, so the files are also
 * given by content for {@linkcode startServe}.
 */
export async function serveCertificates(): Promise<ServeCertificates> {
  const dir = await Deno.makeTempDir({ prefix: "httptunneling-wss-" });
  await makeCertificates(dir);
  return {
    cert: `${dir}/server.pem`,
    key: `${dir}/server.key`,
    ca: `${dir}/ca.pem`,
    files: {
      "server.pem": await Deno.readTextFile(`${dir}/server.pem`),
      "server.key": await Deno.readTextFile(`${dir}/server.key`),
    },
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}
