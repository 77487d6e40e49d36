/**
 * Real peers started as their own processes, each with a config file in a
 * new temporary directory: squid (open, or requiring Basic, Digest or NTLM
 * proxy authentication), tinyproxy, dante, stunnel as a TLS front, and a
 * black-hole port whose connects hang. Also how tests that need one of
 * these programs decide to skip.
 *
 * @module
 */

import { makeCertificates } from "./certs.ts";
import { freePort, waitPort, within } from "./net.ts";

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

/** A program started by a test, stopped by disposing it. */
export interface TestProcess extends AsyncDisposable {
  /** The port it serves on. */
  readonly port: number;
  /** Its working directory, with its config and logs. */
  readonly dir: string;
}

/**
 * Starts `command` in a new temporary directory holding its config file,
 * and waits until it listens on `port`.
 */
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
  let child: Deno.ChildProcess | undefined;
  const stop = async () => {
    try {
      child?.kill("SIGKILL");
    } catch { /* already exited */ }
    await child?.status;
    await Deno.remove(dir, { recursive: true });
  };
  try {
    // The proxies drop root for an unprivileged user who must write here.
    await Deno.chmod(dir, 0o777);
    await prepare?.(dir);
    await Deno.writeTextFile(`${dir}/${configName}`, config(dir, port));
    child = new Deno.Command(command, {
      args: args(dir),
      cwd: dir,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    await waitPort(port, 10_000, what);
  } catch (error) {
    await stop();
    throw error;
  }
  return { port, dir, [Symbol.asyncDispose]: stop };
}

// Listens with an accept queue of one and fills it itself, so that the
// kernel drops every later SYN: a destination that never answers, on
// loopback.
// A listener that accepts nothing, its queue filled by connections that
// never complete their accept: further SYNs go unanswered. Several
// fillers, started without waiting, because how many connections a queue
// of backlog 0 holds depends on the kernel.
const BLACK_HOLE_PY = `
import socket, sys, time
server = socket.socket()
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen(0)
fillers = []
for _ in range(4):
    filler = socket.socket()
    filler.setblocking(False)
    filler.connect_ex(("127.0.0.1", int(sys.argv[1])))
    fillers.append(filler)
time.sleep(0.2)
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
 * @param portOptions Options of its `http_port` line (`ssl-bump …`).
 */
export function startSquid(
  extra = "",
  portOptions = "",
): Promise<TestProcess> {
  return startProgram(
    "squid",
    "squid",
    (dir) => ["-N", "-f", `${dir}/squid.conf`],
    (dir, port) =>
      `http_port 127.0.0.1:${port} ${portOptions}
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

/** A squid that intercepts TLS, from {@linkcode startBumpingSquid}. */
export interface BumpingSquid extends TestProcess {
  /** The CA squid signs its forged certificates with (PEM file). */
  readonly caFile: string;
}

/**
 * Starts squid as a TLS-intercepting proxy (Debian's squid-openssl): every
 * CONNECT is bumped (`ssl_bump peek` then `bump`), the client is shown a
 * certificate squid forges with a CA of its own, mimicking the server's,
 * and WebSocket upgrades inside are passed on.
 *
 * @param upstreamCa The CA file squid checks the servers' certificates
 *   against (read by squid, which runs as its own user).
 * @param extra More squid.conf lines, e.g. `request_header_access Upgrade deny all`.
 */
export async function startBumpingSquid(
  upstreamCa: string,
  extra = "",
): Promise<BumpingSquid> {
  const dir = await Deno.makeTempDir({ prefix: "httptunneling-bump-" });
  try {
    await makeCertificates(dir);
    // squid drops root: the CA key, the upstream CA and the certificate
    // database must be readable and writable by its user.
    await Deno.chmod(dir, 0o755);
    await Deno.chmod(`${dir}/ca.key`, 0o644);
    await Deno.writeTextFile(
      `${dir}/upstream-ca.pem`,
      await Deno.readTextFile(upstreamCa),
    );
    const certgen = `${SQUID_HELPERS}/security_file_certgen`;
    const { code, stderr } = await new Deno.Command(certgen, {
      args: ["-c", "-s", `${dir}/ssl_db`, "-M", "4MB"],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (code !== 0) {
      throw new Error(
        `security_file_certgen -c failed: ${new TextDecoder().decode(stderr)}`,
      );
    }
    await new Deno.Command("chmod", {
      args: ["-R", "a+rwX", `${dir}/ssl_db`],
    }).output();
    const squid = await startSquid(
      `sslcrtd_program ${certgen} -s ${dir}/ssl_db -M 4MB
sslcrtd_children 2 startup=1 idle=1
tls_outgoing_options cafile=${dir}/upstream-ca.pem
acl step1 at_step SslBump1
ssl_bump peek step1
ssl_bump bump all
http_upgrade_request_protocols OTHER allow all
${extra}`,
      `ssl-bump tls-cert=${dir}/ca.pem tls-key=${dir}/ca.key generate-host-certificates=on dynamic_cert_mem_cache_size=4MB`,
    );
    return {
      port: squid.port,
      dir: squid.dir,
      caFile: `${dir}/ca.pem`,
      async [Symbol.asyncDispose]() {
        await squid[Symbol.asyncDispose]();
        await Deno.remove(dir, { recursive: true });
      },
    };
  } catch (error) {
    await Deno.remove(dir, { recursive: true });
    throw error;
  }
}

/**
 * An nginx.conf for a test: in the foreground, one process, its pid, logs
 * and temporary files in `dir` (under `tmp/`, which {@link startNginx}
 * makes), and `http` inside its http block (maps, servers).
 *
 * @param dir nginx's directory.
 * @param http The rest of the http block.
 */
export function nginxConf(dir: string, http: string): string {
  return `daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 64; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/tmp;
  proxy_temp_path ${dir}/tmp;
  fastcgi_temp_path ${dir}/tmp;
  uwsgi_temp_path ${dir}/tmp;
  scgi_temp_path ${dir}/tmp;
${http}
}
`;
}

/**
 * Starts real nginx on a free loopback port, in the foreground without a
 * master process, its pid, logs and temporary files in its directory
 * (`tmp/` is made for the `*_temp_path` lines).
 *
 * @param config Makes nginx.conf from the directory and the port.
 * @param port The port to listen on (another nginx's, to replace it); a
 *   free one by default.
 */
export function startNginx(
  config: (dir: string, port: number) => string,
  port?: number,
): Promise<TestProcess> {
  return startProgram(
    "nginx",
    "nginx",
    (dir) => ["-p", dir, "-c", `${dir}/nginx.conf`, "-e", `${dir}/error.log`],
    config,
    "nginx.conf",
    (dir) => Deno.mkdir(`${dir}/tmp`),
    port,
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

/**
 * Starts stunnel4 as a TLS front for `targetPort`, with a certificate
 * signed by a new test CA: together with squid, an https:// proxy.
 */
export async function startTlsFront(
  targetPort: number,
  serverSubject?: string,
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
      caPem = (await makeCertificates(dir, serverSubject)).caPem;
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

/**
 * Like {@linkcode missing}, but looks for `program` on `PATH` instead of
 * running it: for programs that `-v` would start (cntlm) or that are slow
 * to answer (chromium). Never skips under CI.
 *
 * @param program An executable that the test starts.
 * @returns `true` when the test should be ignored.
 */
export function missingOnPath(program: string): boolean {
  if (IN_CI) return false;
  const path = Deno.env.get("PATH") ?? "/usr/bin:/bin";
  for (const dir of path.split(":").filter(Boolean)) {
    try {
      const info = Deno.statSync(`${dir}/${program}`);
      if (info.isFile && (info.mode ?? 0o111) & 0o111) return false;
    } catch { /* not in this directory */ }
  }
  console.log(`skipping tests that need ${program}: it is not installed`);
  return true;
}

/** Settings of {@linkcode startCntlm}. */
export interface CntlmOptions {
  /** The port of the parent proxy (squid) on 127.0.0.1. */
  upstreamPort: number;
  /**
   * The NTLM user name.
   *
   * @default {"jane"}
   */
  username?: string;
  /**
   * The NTLM domain.
   *
   * @default {"CORP"}
   */
  domain?: string;
  /**
   * The password (squid's ntlm_fake_auth accepts any).
   *
   * @default {"Secret-123"}
   */
  password?: string;
  /**
   * Which responses cntlm computes (`Auth`). Not `NTLMv2` with squid's
   * ntlm_fake_auth: its challenge has no target info block, and cntlm
   * then gives up ("Cannot do NTLMv2!").
   *
   * @default {"NTLM"}
   */
  auth?: "NTLM" | "NT" | "LM" | "NTLM2SR" | "NTLMv2";
  /**
   * More cntlm.conf lines (`SOCKS5Proxy 1080`, `Header …`).
   *
   * @default {""}
   */
  extra?: string;
}

/**
 * Starts cntlm, in the foreground, as a local proxy on a free loopback
 * port in front of the proxy on 127.0.0.1:`upstreamPort`, answering its
 * NTLM challenges with the given account. Its config file names no
 * `NoProxy`: Debian's /etc/cntlm.conf lists `127.0.0.*` there, which would
 * send loopback destinations around the parent proxy.
 */
export function startCntlm(options: CntlmOptions): Promise<TestProcess> {
  return startProgram(
    "cntlm",
    "cntlm",
    (dir) => ["-f", "-c", `${dir}/cntlm.conf`],
    (_dir, port) =>
      `Username ${options.username ?? "jane"}
Domain ${options.domain ?? "CORP"}
Password ${options.password ?? "Secret-123"}
Auth ${options.auth ?? "NTLM"}
Proxy 127.0.0.1:${options.upstreamPort}
Listen 127.0.0.1:${port}
${options.extra ?? ""}
`,
    "cntlm.conf",
  );
}

/**
 * squid.conf lines (for `startSquid`'s `extra`) that refuse every
 * destination but loopback, matching the request's host as written (`-n`:
 * no DNS lookup), so a client's stray request to a public name fails in
 * squid instead of sending a DNS query off the machine.
 */
export const SQUID_LOOPBACK_ONLY = String.raw`
acl to_loopback dstdom_regex -n ^127\. ^localhost$ ^\[?::1\]?$
http_access deny !to_loopback
`;
