/**
 * A real OpenSSH server for tests, and the ssh client that talks to it:
 * Debian's `/usr/sbin/sshd` started in the foreground on a free loopback
 * port with a config, host key and authorized key of its own in a new
 * temporary directory (never /etc/ssh), for the user the tests run as.
 * Also a bare git repository to clone over ssh, and an interactive ssh
 * session that runs one command at a time on the same connection.
 *
 * @module
 */

import { freePort, text, waitPort, within } from "./net.ts";
import { IN_CI } from "./proxies.ts";

/** Debian openssh-server's daemon. */
export const SSHD = "/usr/sbin/sshd";

/**
 * Whether sshd is missing: tests needing it skip with a printed reason,
 * except under CI where they must run.
 */
export function missingSshd(): boolean {
  if (IN_CI) return false;
  try {
    if (Deno.statSync(SSHD).isFile) return false;
  } catch { /* not installed */ }
  console.log(
    "skipping ssh tests: sshd is not installed (apt-get install openssh-server)",
  );
  return true;
}

/** Runs a command to its end, failing with its stderr when it fails. */
async function run(command: string, args: string[], cwd?: string) {
  const { code, stdout, stderr } = await within(
    new Deno.Command(command, {
      args,
      cwd,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output(),
    30_000,
    `${command} ${args[0]}`,
  );
  if (code !== 0) {
    throw new Error(`${command} ${args.join(" ")} failed: ${text(stderr)}`);
  }
  return text(stdout);
}

/** A running sshd; disposing it stops it by its PID and removes its files. */
export interface Sshd extends AsyncDisposable {
  /** The port it listens on, on 127.0.0.1. */
  readonly port: number;
  /** Its directory: sshd_config, keys, authorized_keys, its pid file. */
  readonly dir: string;
  /** The client's private key, which authorized_keys lets in. */
  readonly clientKey: string;
  /** The user it lets in: the one the tests run as. */
  readonly user: string;
  /** What sshd wrote to stderr so far (`-e`): its log. */
  log(): string;
}

/**
 * Starts sshd on a free loopback port. Privilege separation needs
 * `/run/sshd` to exist; it is made when missing.
 */
export async function startSshd(): Promise<Sshd> {
  const dir = await Deno.makeTempDir({ prefix: "httptunneling-sshd-" });
  let child: Deno.ChildProcess | undefined;
  let reading: Promise<void> | undefined;
  const stop = async () => {
    try {
      child?.kill("SIGTERM");
    } catch { /* already ended */ }
    await child?.status;
    await reading;
    await Deno.remove(dir, { recursive: true });
  };
  let stderr = "";
  try {
    await Deno.mkdir("/run/sshd", { recursive: true, mode: 0o755 });
    const user = (await run("id", ["-un"])).trim();
    const keygen = (file: string) =>
      run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", file]);
    await keygen(`${dir}/host_key`);
    await keygen(`${dir}/client_key`);
    await Deno.copyFile(`${dir}/client_key.pub`, `${dir}/authorized_keys`);
    const port = freePort();
    await Deno.writeTextFile(
      `${dir}/sshd_config`,
      `ListenAddress 127.0.0.1:${port}
HostKey ${dir}/host_key
PidFile ${dir}/sshd.pid
AuthorizedKeysFile ${dir}/authorized_keys
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
AllowUsers ${user}
Subsystem sftp internal-sftp
`,
    );
    child = new Deno.Command(SSHD, {
      args: ["-D", "-e", "-f", `${dir}/sshd_config`],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    reading = (async () => {
      for await (
        const chunk of child!.stderr.pipeThrough(new TextDecoderStream())
      ) {
        // Bounded: a test's sshd logs a few lines per connection.
        stderr = (stderr + chunk).slice(-64 * 1024);
      }
    })();
    await waitPort(port, 10_000, "sshd").catch((error) => {
      throw new Error(`${error.message}; sshd said: ${stderr}`);
    });
    return {
      port,
      dir,
      user,
      clientKey: `${dir}/client_key`,
      log: () => stderr,
      [Symbol.asyncDispose]: stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * The ssh client's arguments for `sshd` reached at 127.0.0.1:`port` (a
 * forward of the tool's, or sshd's own port): its key only, no known-hosts
 * file, no agent, no config file, batch mode.
 */
export function sshArgs(sshd: Sshd, port: number): string[] {
  return [
    "-F",
    "/dev/null",
    "-p",
    String(port),
    "-i",
    sshd.clientKey,
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "ConnectTimeout=20",
    `${sshd.user}@127.0.0.1`,
  ];
}

/**
 * `GIT_SSH_COMMAND` for git over ssh to `sshd` with its client key (git
 * adds `-p PORT` itself from an `ssh://host:PORT/` URL).
 */
export function gitSshCommand(sshd: Sshd): string {
  return [
    "ssh",
    "-F /dev/null",
    `-i ${sshd.clientKey}`,
    "-o IdentitiesOnly=yes",
    "-o BatchMode=yes",
    "-o StrictHostKeyChecking=no",
    "-o UserKnownHostsFile=/dev/null",
    "-o LogLevel=ERROR",
  ].join(" ");
}

/**
 * Runs `command` on `sshd` through `port` with `ssh`, to its end.
 *
 * @returns ssh's exit code, stdout and stderr.
 */
export async function sshRun(
  sshd: Sshd,
  port: number,
  command: string,
  timeoutMs = 60_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command("ssh", {
    args: [...sshArgs(sshd, port), command],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  try {
    const { code, stdout, stderr } = await within(
      child.output(),
      timeoutMs,
      `ssh ${command}`,
    );
    return { code, stdout: text(stdout), stderr: text(stderr) };
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* ended */ }
  }
}

/** A bare repository with one commit, for `git clone` over ssh. */
export interface BareRepo {
  /** The bare repository's absolute path. */
  readonly path: string;
  /** Its one commit. */
  readonly head: string;
  /** The committed files, path to content. */
  readonly files: Record<string, string>;
}

/**
 * Makes a bare repository with one commit under `dir` (a work tree is made
 * beside it and pushed).
 */
export async function makeBareRepo(dir: string): Promise<BareRepo> {
  const files = {
    "README.md": "cloned over ssh through a wss:// hop\n",
    "src/data.txt": "x".repeat(100_000) + "\n",
  };
  const work = `${dir}/work`;
  const path = `${dir}/repo.git`;
  await Deno.mkdir(`${work}/src`, { recursive: true });
  for (const [name, content] of Object.entries(files)) {
    await Deno.writeTextFile(`${work}/${name}`, content);
  }
  const git = (args: string[], cwd = work) =>
    run("git", [
      "-c",
      "user.name=test",
      "-c",
      "user.email=test@example.invalid",
      "-c",
      "init.defaultBranch=main",
      ...args,
    ], cwd);
  await git(["init", "-q"]);
  await git(["add", "."]);
  await git(["commit", "-q", "-m", "first"]);
  await git(["clone", "-q", "--bare", work, path], dir);
  const head = (await git(["rev-parse", "HEAD"])).trim();
  return { path, head, files };
}

/**
 * One ssh connection running a remote shell that reads commands from
 * ssh's stdin: each {@linkcode SshSession.run} is answered on the same
 * TCP connection, however long the session stayed idle between them.
 */
export interface SshSession extends AsyncDisposable {
  /** Runs `command` in the remote shell and returns its stdout. */
  run(command: string, timeoutMs?: number): Promise<string>;
  /** Resolves with ssh's exit code and stderr once it ends. */
  readonly ended: Promise<{ code: number; stderr: string }>;
}

/** Opens an {@linkcode SshSession} to `sshd` through `port`. */
export function sshSession(sshd: Sshd, port: number): SshSession {
  const child = new Deno.Command("ssh", {
    args: ["-T", ...sshArgs(sshd, port), "sh"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const ended = (async () => {
    const chunks: string[] = [];
    for await (
      const chunk of child.stderr.pipeThrough(new TextDecoderStream())
    ) chunks.push(chunk);
    const { code } = await child.status;
    return { code, stderr: chunks.join("").slice(-64 * 1024) };
  })();
  let buffered = "";
  let count = 0;
  return {
    ended,
    async run(command, timeoutMs = 30_000) {
      const marker = `--done-${++count}--`;
      await writer.write(
        new TextEncoder().encode(`${command}\necho ${marker}\n`),
      );
      return await within(
        (async () => {
          while (!buffered.includes(`${marker}\n`)) {
            const { value, done } = await lines.read();
            if (done) {
              const { code, stderr } = await ended;
              throw new Error(
                `ssh ended (${code}) before answering ${command}: ${stderr}`,
              );
            }
            buffered += value;
          }
          const at = buffered.indexOf(`${marker}\n`);
          const answer = buffered.slice(0, at);
          buffered = buffered.slice(at + marker.length + 1);
          return answer;
        })(),
        timeoutMs,
        `ssh's answer to ${command}`,
      );
    },
    async [Symbol.asyncDispose]() {
      await writer.close().catch(() => {});
      try {
        child.kill("SIGKILL");
      } catch { /* ended */ }
      await lines.cancel().catch(() => {});
      await ended.catch(() => {});
    },
  };
}
