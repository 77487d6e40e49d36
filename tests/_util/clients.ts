/**
 * Real clients run by tests and the bench, each as a child process with a
 * time limit and an environment of its own: curl, git clone, headless
 * Chromium and netcat's SOCKS5 mode. The proxy variables of this process
 * never reach them (curl and git would honour `NO_PROXY`, `https_proxy`, …),
 * so each goes only where the test sends it.
 *
 * @module
 */

import { bytes, text } from "./net.ts";

/** The output of a client that ran to its end. */
export interface ClientResult {
  /** Its exit code. */
  readonly code: number;
  /** Its standard output, as UTF-8 text. */
  readonly stdout: string;
  /** Its standard error. */
  readonly stderr: string;
}

/** Settings common to the clients. */
export interface ClientOptions {
  /**
   * More environment variables; nothing else of this process's environment
   * is passed on but `PATH`.
   *
   * @default {{}}
   */
  env?: Record<string, string>;
  /**
   * How long the client may run before it is killed and the call fails.
   *
   * @default {30_000}
   */
  timeoutMs?: number;
}

/** A new empty environment: `PATH`, a home of its own, the C locale. */
function cleanEnv(home: string, env: Record<string, string> = {}) {
  return {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: home,
    LANG: "C.UTF-8",
    ...env,
  };
}

/**
 * Runs `program` to its end with `stdin` as its input, killing its process
 * group when it takes longer than `timeoutMs`.
 */
async function runClient(
  program: string,
  args: string[],
  options: {
    env: Record<string, string>;
    timeoutMs: number;
    stdin?: Uint8Array;
    cwd?: string;
  },
): Promise<{ code: number; stdout: Uint8Array; stderr: Uint8Array }> {
  // setsid makes the client the leader of a new process group, so its own
  // children (Chromium's renderers, git's helpers) are stopped with it.
  const child = new Deno.Command("setsid", {
    args: [program, ...args],
    cwd: options.cwd,
    clearEnv: true,
    env: options.env,
    stdin: options.stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const killGroup = () => {
    try {
      Deno.kill(-child.pid, "SIGKILL");
    } catch { /* the group has ended */ }
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  let timedOut = false;
  try {
    const feeding = options.stdin
      ? (async () => {
        const writer = child.stdin.getWriter();
        try {
          await writer.write(options.stdin);
          await writer.close();
        } catch { /* the client stopped reading */ }
      })()
      : Promise.resolve();
    timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, options.timeoutMs);
    const output = await child.output();
    await feeding;
    if (timedOut) {
      const last = text(output.stderr).split("\n").slice(-10).join("\n");
      throw new Error(
        `${program} did not finish within ${options.timeoutMs} ms and was ` +
          `killed; the end of its stderr:\n${last}`,
      );
    }
    return output;
  } finally {
    clearTimeout(timer);
    killGroup();
  }
}

/** One transfer of a curl run, from its `--write-out`. */
export interface CurlTransfer {
  /** The HTTP status of the answer (0 when none came). */
  readonly httpCode: number;
  /** The status of the proxy's answer to CONNECT (0 without CONNECT). */
  readonly httpConnect: number;
  /** New connections curl opened for this transfer (0 when it reused one). */
  readonly numConnects: number;
  /** Everything `%{json}` reported: `size_download`, `errormsg`, … */
  readonly info: Readonly<Record<string, unknown>>;
  /** The answer's headers, names in lower case (`%{header_json}`). */
  readonly headers: Readonly<Record<string, string[]>>;
}

/** What a curl run produced. */
export interface CurlResult extends ClientResult {
  /** The HTTP status of the last transfer (0 when none came). */
  readonly httpCode: number;
  /** Connections opened by all transfers together. */
  readonly numConnects: number;
  /** Each URL's transfer, in order. */
  readonly transfers: readonly CurlTransfer[];
  /** Standard output as bytes, for binary bodies. */
  readonly output: Uint8Array;
}

const WRITE_OUT = "\n<<curl-write-out>>";
const WRITE_OUT_HEADERS = "<<curl-headers>>";
const WRITE_OUT_END = "<<curl-end>>\n";

/** Takes the write-out records out of curl's stderr. */
function parseWriteOut(
  stderr: string,
): { transfers: CurlTransfer[]; rest: string } {
  const transfers: CurlTransfer[] = [];
  const pattern = new RegExp(
    `${WRITE_OUT}([^\\n]*)${WRITE_OUT_HEADERS}([\\s\\S]*?)${WRITE_OUT_END}`,
    "g",
  );
  const rest = stderr.replace(pattern, (_match, json, headers) => {
    const info = JSON.parse(json) as Record<string, unknown>;
    transfers.push({
      httpCode: Number(info.http_code ?? 0),
      httpConnect: Number(info.http_connect ?? 0),
      numConnects: Number(info.num_connects ?? 0),
      info,
      headers: headers.trim() ? JSON.parse(headers) : {},
    });
    return "";
  });
  return { transfers, rest };
}

/**
 * Runs curl with `args`, adding `-q` (no .curlrc) and `-sS` before them and
 * a `--write-out` after them that reports each transfer's status and
 * connection count on stderr, where the helper takes it back out: `args`
 * must not have a `-w` of their own. The proxy variables are unset unless
 * `options.env` sets them, so give the proxy with `-x`.
 *
 * @example
 * ```ts
 * const got = await curl(["-x", `http://127.0.0.1:${squid.port}`, url]);
 * assert.equal(got.httpCode, 200);
 * ```
 */
export async function curl(
  args: string[],
  options: ClientOptions = {},
): Promise<CurlResult> {
  const home = await Deno.makeTempDir({ prefix: "httptunneling-curl-" });
  try {
    const { code, stdout, stderr } = await runClient("curl", [
      "-q",
      "-sS",
      ...args,
      "--write-out",
      `%{stderr}${WRITE_OUT}%{json}${WRITE_OUT_HEADERS}%{header_json}${WRITE_OUT_END}`,
    ], {
      env: cleanEnv(home, options.env),
      timeoutMs: options.timeoutMs ?? 30_000,
    });
    const { transfers, rest } = parseWriteOut(text(stderr));
    return {
      code,
      stdout: text(stdout),
      output: stdout,
      stderr: rest,
      transfers,
      httpCode: transfers.at(-1)?.httpCode ?? 0,
      numConnects: transfers.reduce((sum, each) => sum + each.numConnects, 0),
    };
  } finally {
    await Deno.remove(home, { recursive: true });
  }
}

/** Settings of {@linkcode gitClone}. */
export interface GitCloneOptions extends ClientOptions {
  /** `http.proxy`: `http://[user:password@]host:port`; none by default. */
  proxy?: string;
  /** `http.sslCAInfo`: the CA file that signed the server's certificate. */
  caFile?: string;
  /**
   * More `-c name=value` settings (`http.proxyAuthMethod=ntlm`, …).
   *
   * @default {[]}
   */
  config?: string[];
}

/** What a clone produced. */
export interface GitCloneResult {
  /** The commit checked out. */
  readonly head: string;
  /** The checked-out files, path to content. */
  readonly files: Record<string, string>;
  /** git's messages. */
  readonly stderr: string;
}

/**
 * Runs `git clone url` into a new temporary directory, through `proxy`
 * when given, and returns what was checked out; the directory is removed
 * before it returns. Fails with git's messages when the clone fails. Only
 * the settings given here apply: no system or global git config, no
 * prompts.
 *
 * @example
 * ```ts
 * const clone = await gitClone(server.repoUrl, {
 *   proxy: `http://127.0.0.1:${squid.port}`,
 *   caFile: server.caFile,
 * });
 * assert.equal(clone.head, server.head);
 * ```
 */
export async function gitClone(
  url: string,
  options: GitCloneOptions = {},
): Promise<GitCloneResult> {
  const dir = await Deno.makeTempDir({ prefix: "httptunneling-clone-" });
  try {
    const env = cleanEnv(dir, {
      GIT_CONFIG_NOSYSTEM: "1",
      GIT_CONFIG_GLOBAL: "/dev/null",
      GIT_TERMINAL_PROMPT: "0",
      ...options.env,
    });
    const settings = [
      ...(options.proxy ? [`http.proxy=${options.proxy}`] : []),
      ...(options.caFile ? [`http.sslCAInfo=${options.caFile}`] : []),
      ...(options.config ?? []),
    ].flatMap((setting) => ["-c", setting]);
    const timeoutMs = options.timeoutMs ?? 30_000;
    const run = async (args: string[]) => {
      const result = await runClient("git", args, { env, timeoutMs, cwd: dir });
      if (result.code !== 0) {
        throw new Error(
          `git ${args.join(" ")} failed (${result.code}): ${
            text(result.stderr)
          }`,
        );
      }
      return result;
    };
    const cloned = await run([...settings, "clone", url, "checkout"]);
    const checkout = `${dir}/checkout`;
    const head = text(
      (await run(["-C", checkout, "rev-parse", "HEAD"])).stdout,
    ).trim();
    const listed = text((await run(["-C", checkout, "ls-files", "-z"])).stdout);
    const files: Record<string, string> = {};
    for (const path of listed.split("\0").filter(Boolean)) {
      files[path] = await Deno.readTextFile(`${checkout}/${path}`);
    }
    return { head, files, stderr: text(cloned.stderr) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Settings of {@linkcode chromiumFetch}. */
export interface ChromiumFetchOptions extends ClientOptions {
  /**
   * `--proxy-server`: `http://127.0.0.1:PORT`, `socks5://…`; a direct
   * connection when not given.
   */
  proxyServer?: string;
  /**
   * SPKI hashes (base64 sha256) of certificates to accept although no
   * trusted CA signed them: `HttpsOrigin.spki`.
   *
   * @default {[]}
   */
  trustSpki?: string[];
  /**
   * More Chromium flags.
   *
   * @default {[]}
   */
  args?: string[];
}

// Features that would make requests of their own to Google's servers.
const QUIET_FEATURES = [
  "NetworkTimeServiceQuerying",
  "OptimizationGuideOnDeviceModel",
  "OptimizationHints",
  "MediaRouter",
  "Translate",
];

// The hosts of the requests that no flag stops: Gaia, the component updater.
const GOOGLE_HOSTS = [
  "*.google.com",
  "*.googleapis.com",
  "*.gstatic.com",
  "*.gvt1.com",
];

const LOOPBACK_RESOLVER_RULES =
  "MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1, EXCLUDE ::1";

/** The Debian package's launcher (it execs /usr/lib/chromium/chromium). */
export const CHROMIUM = "chromium";

/** Chromium did not load a page. */
export class PageLoadError extends Error {
  /**
   * Chromium's network error without `net::` (`ERR_PROXY_CONNECTION_FAILED`,
   * `ERR_TUNNEL_CONNECTION_FAILED`, …), or `exit code N` when it gave none.
   */
  readonly netError: string;

  /**
   * @param url The page.
   * @param netError Chromium's error.
   * @param messages The end of Chromium's stderr, for the message.
   */
  constructor(url: string, netError: string, messages: string) {
    super(`chromium could not load ${url}: ${netError}\n${messages}`);
    this.name = "PageLoadError";
    this.netError = netError;
  }
}

/**
 * Loads `url` in headless Chromium, with a new profile, and returns the
 * DOM after the page's load event (`--dump-dom`). Chromium bypasses a
 * proxy for loopback addresses unless told not to; this passes
 * `--proxy-bypass-list=<-loopback>` with `proxyServer`, so the page does
 * come through the proxy. Chromium resolves no name but `localhost`
 * itself (names in URLs sent to the proxy are the proxy's to resolve),
 * and its own requests to Google fail inside it, reaching neither the
 * proxy nor the network. When the page does not load (an unreachable
 * proxy, a refused tunnel) it throws a {@linkcode PageLoadError} naming
 * Chromium's network error. Chromium and all its processes are killed at
 * the end.
 *
 * @param url The page.
 * @param options `proxyServer`, `trustSpki`; 30 s to finish by default.
 */
export async function chromiumFetch(
  url: string,
  options: ChromiumFetchOptions = {},
): Promise<string> {
  const home = await Deno.makeTempDir({ prefix: "httptunneling-chromium-" });
  try {
    const args = [
      "--headless",
      // Root cannot use Chromium's sandbox.
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-dev-shm-usage",
      `--disable-features=${QUIET_FEATURES.join()}`,
      // Chromium still asks Google for things at startup (Gaia's account
      // list, the on-device model's update check) and no flag stops that:
      // the bypass list sends those hosts direct, where resolver rules that
      // know only loopback names fail them inside Chromium, so they reach
      // neither the proxy under test (and its DNS) nor the network.
      `--host-resolver-rules=${LOOPBACK_RESOLVER_RULES}`,
      ...(options.proxyServer
        ? [
          `--proxy-server=${options.proxyServer}`,
          `--proxy-bypass-list=${["<-loopback>", ...GOOGLE_HOSTS].join(";")}`,
        ]
        : []),
      `--user-data-dir=${home}/profile`,
      ...(options.trustSpki?.length
        ? [`--ignore-certificate-errors-spki-list=${options.trustSpki.join()}`]
        : []),
      ...(options.args ?? []),
      "--dump-dom",
      url,
    ];
    const { code, stdout, stderr } = await runClient(CHROMIUM, args, {
      env: cleanEnv(home, options.env),
      timeoutMs: options.timeoutMs ?? 30_000,
    });
    const dom = text(stdout);
    if (code !== 0 || !dom.trim()) {
      const messages = text(stderr);
      const failed = messages.match(/Page load failed: net::(\S+)/);
      throw new PageLoadError(
        url,
        failed?.[1] ?? `exit code ${code}`,
        messages.split("\n").filter((line) => !line.includes("dbus"))
          .slice(-10).join("\n"),
      );
    }
    return dom;
  } finally {
    await Deno.remove(home, { recursive: true });
  }
}

/** Settings of {@linkcode netcatThroughSocks}. */
export interface NetcatOptions extends ClientOptions {
  /**
   * Shut down the sending side after the input (`-N`). Without it netcat
   * keeps its connection open until the far end closes it: for a path
   * through squid, which ends a tunnel as soon as one side shuts down.
   *
   * @default {true}
   */
  halfClose?: boolean;
}

/**
 * Sends `input` to `host:port` through the SOCKS5 server on
 * 127.0.0.1:`socksPort` with netcat-openbsd (`nc -X 5 -x`), shuts down its
 * sending side after the input (`-N`, unless `options.halfClose` is
 * false), and returns what came back until the far end closed.
 *
 * @param socksPort The SOCKS5 server's port on 127.0.0.1.
 * @param host The destination, resolved by the SOCKS server when a name.
 * @param port The destination port.
 * @param input What to send.
 * @param options 10 s to finish by default.
 */
export async function netcatThroughSocks(
  socksPort: number,
  host: string,
  port: number,
  input: string | Uint8Array,
  options: NetcatOptions = {},
): Promise<ClientResult> {
  const home = await Deno.makeTempDir({ prefix: "httptunneling-nc-" });
  try {
    const timeoutMs = options.timeoutMs ?? 10_000;
    const { code, stdout, stderr } = await runClient("nc", [
      ...(options.halfClose === false ? [] : ["-N"]),
      "-w",
      String(Math.max(1, Math.ceil(timeoutMs / 1000))),
      "-X",
      "5",
      "-x",
      `127.0.0.1:${socksPort}`,
      host,
      String(port),
    ], {
      env: cleanEnv(home, options.env),
      timeoutMs,
      stdin: typeof input === "string" ? bytes(input) : input,
    });
    return { code, stdout: text(stdout), stderr: text(stderr) };
  } finally {
    await Deno.remove(home, { recursive: true });
  }
}
