/**
 * Origin servers on loopback for tests that put real clients (curl, git,
 * Chromium) in front of a proxy: an HTTP origin, the same over TLS, and a
 * git repository served over smart HTTP behind TLS. Each records what it
 * received, so a test can tell what the proxy passed on (a `Via` added, a
 * `Proxy-Authorization` kept back).
 *
 * @module
 */

import { createHash, X509Certificate } from "node:crypto";
import type { TestCertificates } from "./certs.ts";
import { pseudoRandomChunks, sha256Of } from "./data.ts";
import { text, within } from "./net.ts";

/** What `/hello` answers. */
export const HELLO_TEXT = "hello from the origin\n";

/** The `<title>` of `/page.html`. */
export const PAGE_TITLE = "httptunneling test page";

/** The seed of the bytes that `/big` and `/chunked` send. */
export const ORIGIN_DATA_SEED = 0x7e57;

/** The response header holding the sha256 (hex) of a body. */
export const SHA256_HEADER = "x-sha256";

// Bounds on what a test may ask for or send, so a mistake fails fast
// instead of filling memory.
const MAX_DATA_BYTES = 1 << 30;
const MAX_ECHO_BYTES = 256 << 20;

const dataHashes = new Map<number, string>();

/**
 * The sha256 (hex) of the first `length` bytes that `/big` and `/chunked`
 * send, for checking a download.
 */
export function originDataSha256(length: number): string {
  let known = dataHashes.get(length);
  if (known === undefined) {
    known = sha256Of(pseudoRandomChunks(ORIGIN_DATA_SEED, length));
    dataHashes.set(length, known);
  }
  return known;
}

/** One request as an origin received it. */
export interface OriginRequest {
  /** `GET`, `POST`, … */
  readonly method: string;
  /** The path, without the query. */
  readonly path: string;
  /** The query with its `?`, or `""`. */
  readonly query: string;
  /** The request headers as they arrived (names in lower case). */
  readonly headers: Headers;
}

/** A running origin; disposing it closes the server and its connections. */
export interface Origin extends AsyncDisposable {
  /** The port it listens on, on 127.0.0.1. */
  readonly port: number;
  /** Its base URL, `http://127.0.0.1:PORT` (or `https://`), no trailing slash. */
  readonly url: string;
  /** Every request received so far, in order of arrival. */
  readonly requests: readonly OriginRequest[];
}

/** An origin over TLS, with what a client needs to trust it. */
export interface HttpsOrigin extends Origin {
  /** The test CA's PEM file: curl `--cacert`, git `http.sslCAInfo`. */
  readonly caFile: string;
  /**
   * The base64 sha256 of the server certificate's public key, for
   * Chromium's `--ignore-certificate-errors-spki-list`.
   */
  readonly spki: string;
}

/** The query parameter `bytes`, bounded; a Response when it is unusable. */
function byteCount(url: URL): number | Response {
  const value = Number(url.searchParams.get("bytes") ?? "");
  if (!Number.isSafeInteger(value) || value < 0 || value > MAX_DATA_BYTES) {
    return new Response(`bytes must be 0 to ${MAX_DATA_BYTES}\n`, {
      status: 400,
    });
  }
  return value;
}

/** The origin's routes; see {@linkcode startHttpOrigin}. */
async function route(request: Request): Promise<Response> {
  const url = new URL(request.url);
  switch (url.pathname) {
    case "/hello":
      return new Response(HELLO_TEXT, {
        headers: { "content-type": "text/plain" },
      });
    case "/echo": {
      const declared = Number(request.headers.get("content-length") ?? 0);
      if (declared > MAX_ECHO_BYTES) {
        return new Response("too large\n", { status: 413 });
      }
      const body = new Uint8Array(await request.arrayBuffer());
      return new Response(body, {
        headers: {
          "content-type": "application/octet-stream",
          [SHA256_HEADER]: createHash("sha256").update(body).digest("hex"),
        },
      });
    }
    case "/big":
    case "/chunked": {
      const length = byteCount(url);
      if (length instanceof Response) return length;
      const headers = new Headers({
        "content-type": "application/octet-stream",
        [SHA256_HEADER]: originDataSha256(length),
      });
      // Without a length Deno sends the body chunked (HTTP/1.1).
      if (url.pathname === "/big") {
        headers.set("content-length", String(length));
      }
      return new Response(
        ReadableStream.from(pseudoRandomChunks(ORIGIN_DATA_SEED, length)),
        { headers },
      );
    }
    case "/page.html":
      return new Response(
        `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${PAGE_TITLE}</title></head>
<body><h1>${PAGE_TITLE}</h1><p id="served">served by the test origin</p></body>
</html>
`,
        { headers: { "content-type": "text/html; charset=utf-8" } },
      );
    default:
      return new Response("not found\n", { status: 404 });
  }
}

/**
 * Serves `handle` on a free port of 127.0.0.1, over TLS when `tls` is
 * given, logging every request before handling it.
 */
function serveLogged(
  handle: (request: Request) => Response | Promise<Response>,
  tls?: { cert: string; key: string },
): Origin {
  const requests: OriginRequest[] = [];
  const abort = new AbortController();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    signal: abort.signal,
    onListen() {},
    onError: (error) =>
      new Response(`origin error: ${error}\n`, { status: 500 }),
    ...tls,
  }, (request) => {
    const url = new URL(request.url);
    requests.push({
      method: request.method,
      path: url.pathname,
      query: url.search,
      headers: new Headers(request.headers),
    });
    return handle(request);
  });
  const port = server.addr.port;
  let stopped: Promise<void> | undefined;
  return {
    port,
    url: `${tls ? "https" : "http"}://127.0.0.1:${port}`,
    requests,
    [Symbol.asyncDispose]() {
      // Aborting closes open connections too (a proxy keeps them alive).
      stopped ??= (() => {
        abort.abort();
        return within(server.finished, 10_000, "origin shutdown");
      })();
      return stopped;
    },
  };
}

/** The server certificate and key that `makeCertificates` wrote. */
async function serverKeyPair(
  certs: TestCertificates,
): Promise<{ cert: string; key: string }> {
  return {
    cert: await Deno.readTextFile(`${certs.dir}/server.pem`),
    key: await Deno.readTextFile(`${certs.dir}/server.key`),
  };
}

/** The base64 sha256 of a PEM certificate's SubjectPublicKeyInfo. */
function spkiHash(certPem: string): string {
  const der = new X509Certificate(certPem).publicKey.export({
    type: "spki",
    format: "der",
  });
  return createHash("sha256").update(der).digest("base64");
}

/**
 * Starts an HTTP/1.1 origin on 127.0.0.1 with these routes:
 *
 * - `/hello`: {@linkcode HELLO_TEXT}
 * - `/echo`: the request body back, its sha256 in `x-sha256`
 * - `/chunked?bytes=N`: N deterministic bytes, chunked, sha256 in `x-sha256`
 * - `/big?bytes=N`: the same bytes with a Content-Length
 * - `/page.html`: a small page titled {@linkcode PAGE_TITLE}
 *
 * Anything else is a 404. The bytes of `/big` and `/chunked` are those of
 * `pseudoRandomChunks(ORIGIN_DATA_SEED, N)`; see {@linkcode originDataSha256}.
 *
 * @example
 * ```ts
 * await using origin = startHttpOrigin();
 * const answer = await fetch(`${origin.url}/hello`);
 * console.log(await answer.text(), origin.requests[0].headers.get("via"));
 * ```
 */
export function startHttpOrigin(): Origin {
  return serveLogged(route);
}

/**
 * Starts the origin of {@linkcode startHttpOrigin} over TLS, with the
 * server certificate (127.0.0.1 and localhost) of `certs`. It offers
 * HTTP/2 as well as HTTP/1.1 by ALPN, so curl and Chromium speak HTTP/2
 * to it unless told otherwise (curl `--http1.1`).
 *
 * @param certs From `makeCertificates`.
 */
export async function startHttpsOrigin(
  certs: TestCertificates,
): Promise<HttpsOrigin> {
  const tls = await serverKeyPair(certs);
  const origin = serveLogged(route, tls);
  return {
    port: origin.port,
    url: origin.url,
    requests: origin.requests,
    [Symbol.asyncDispose]: origin[Symbol.asyncDispose],
    caFile: `${certs.dir}/ca.pem`,
    spki: spkiHash(tls.cert),
  };
}

/** A git repository served over smart HTTP behind TLS. */
export interface GitHttpsServer extends HttpsOrigin {
  /** The repository's clone URL, `https://127.0.0.1:PORT/repo.git`. */
  readonly repoUrl: string;
  /** The commit its `main` (and HEAD) points to. */
  readonly head: string;
  /** The files of that commit, path to content. */
  readonly files: Readonly<Record<string, string>>;
}

/** Runs git with `args` in `cwd`, failing with its output; returns stdout. */
async function git(
  args: string[],
  cwd: string,
  env: Record<string, string> = {},
): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command("git", {
    args,
    cwd,
    env: { ...GIT_ISOLATION, ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    throw new Error(`git ${args.join(" ")} failed: ${text(stderr)}`);
  }
  return text(stdout).trim();
}

// The machine's git configuration stays out of the test repository.
const GIT_ISOLATION = {
  GIT_CONFIG_NOSYSTEM: "1",
  GIT_CONFIG_GLOBAL: "/dev/null",
  GIT_TERMINAL_PROMPT: "0",
};

/** The test repository's commits: message and the files it writes. */
const COMMITS: { message: string; files: Record<string, string> }[] = [
  {
    message: "First commit",
    files: { "README.md": "# test repository\n" },
  },
  {
    message: "Second commit",
    files: {
      "README.md": "# test repository\n\nserved by git http-backend\n",
      "src/hello.txt": HELLO_TEXT,
    },
  },
];

/** Makes `dir/repo.git`, bare, from {@linkcode COMMITS}; returns its HEAD. */
async function makeRepository(dir: string): Promise<string> {
  const work = `${dir}/work`;
  await Deno.mkdir(work);
  await git(["init", "--quiet", "--initial-branch=main"], work);
  for (const [index, commit] of COMMITS.entries()) {
    for (const [path, content] of Object.entries(commit.files)) {
      const slash = path.lastIndexOf("/");
      if (slash > 0) {
        await Deno.mkdir(`${work}/${path.slice(0, slash)}`, {
          recursive: true,
        });
      }
      await Deno.writeTextFile(`${work}/${path}`, content);
    }
    // Fixed names and dates give the same commit ids on every run.
    const date = `2024-01-0${index + 1}T12:00:00Z`;
    await git(["add", "--all"], work);
    await git(
      [
        "-c",
        "user.name=httptunneling test",
        "-c",
        "user.email=test@httptunneling.invalid",
        "commit",
        "--quiet",
        "--message",
        commit.message,
      ],
      work,
      { GIT_AUTHOR_DATE: date, GIT_COMMITTER_DATE: date },
    );
  }
  await git(["clone", "--quiet", "--bare", work, `${dir}/repo.git`], dir);
  await Deno.remove(work, { recursive: true });
  return await git(["rev-parse", "HEAD"], `${dir}/repo.git`);
}

/** Where a CGI response's header ends, and the length of the blank line. */
function headerEnd(output: Uint8Array): { at: number; length: number } {
  for (let i = 0; i + 1 < output.length; i++) {
    if (output[i] !== 0x0a) continue;
    if (output[i + 1] === 0x0a) return { at: i + 1, length: 1 };
    if (output[i + 1] === 0x0d && output[i + 2] === 0x0a) {
      return { at: i + 1, length: 2 };
    }
  }
  return { at: output.length, length: 0 };
}

/**
 * Runs `git http-backend` for one request, as a CGI server would (RFC
 * 3875): the request's headers as `HTTP_*` variables (`Git-Protocol` asks
 * for protocol v2, `Content-Encoding` marks a gzipped body), the body on
 * its stdin, and its output parsed into a Response.
 */
async function httpBackend(
  request: Request,
  projectRoot: string,
): Promise<Response> {
  const url = new URL(request.url);
  const env: Record<string, string> = {
    ...GIT_ISOLATION,
    GIT_PROJECT_ROOT: projectRoot,
    GIT_HTTP_EXPORT_ALL: "1",
    GATEWAY_INTERFACE: "CGI/1.1",
    SERVER_PROTOCOL: "HTTP/1.1",
    REQUEST_METHOD: request.method,
    PATH_INFO: decodeURIComponent(url.pathname),
    QUERY_STRING: url.search.slice(1),
    REMOTE_ADDR: "127.0.0.1",
    CONTENT_TYPE: request.headers.get("content-type") ?? "",
  };
  const length = request.headers.get("content-length");
  if (length !== null) env.CONTENT_LENGTH = length;
  for (const [name, value] of request.headers) {
    env[`HTTP_${name.toUpperCase().replaceAll("-", "_")}`] = value;
  }
  const child = new Deno.Command("git", {
    args: ["http-backend"],
    env,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const feeding = (request.body ?? ReadableStream.from<Uint8Array>([]))
    .pipeTo(child.stdin).catch(() => {});
  const { code, stdout, stderr } = await within(
    child.output(),
    30_000,
    "git http-backend",
  );
  await feeding;
  if (code !== 0 && stdout.length === 0) {
    return new Response(`git http-backend failed: ${text(stderr)}`, {
      status: 500,
    });
  }
  const end = headerEnd(stdout);
  const headers = new Headers();
  let status = 200;
  for (const line of text(stdout.subarray(0, end.at)).split(/\r?\n/)) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (name.toLowerCase() === "status") status = parseInt(value, 10);
    else headers.append(name, value);
  }
  return new Response(stdout.slice(end.at + end.length), { status, headers });
}

/**
 * Starts a bare git repository with two commits, served over smart HTTP by
 * `git http-backend` behind Deno's TLS with the certificate of `certs`:
 * `git clone https://127.0.0.1:PORT/repo.git` works for a client that
 * trusts `caFile`. Disposing it stops the server and removes the
 * repository.
 *
 * @param certs From `makeCertificates`.
 */
export async function startGitHttpsServer(
  certs: TestCertificates,
): Promise<GitHttpsServer> {
  const dir = await Deno.makeTempDir({ prefix: "httptunneling-git-" });
  try {
    const head = await makeRepository(dir);
    const tls = await serverKeyPair(certs);
    const origin = serveLogged((request) => httpBackend(request, dir), tls);
    return {
      port: origin.port,
      url: origin.url,
      requests: origin.requests,
      repoUrl: `${origin.url}/repo.git`,
      head,
      files: Object.assign({}, ...COMMITS.map((commit) => commit.files)),
      caFile: `${certs.dir}/ca.pem`,
      spki: spkiHash(tls.cert),
      async [Symbol.asyncDispose]() {
        await origin[Symbol.asyncDispose]();
        await Deno.remove(dir, { recursive: true });
      },
    };
  } catch (error) {
    await Deno.remove(dir, { recursive: true });
    throw error;
  }
}
