import assert from "node:assert/strict";
import { gitClone } from "./_util/clients.ts";
import { pseudoRandomChunks, sha256Of } from "./_util/data.ts";
import { connect, freePort, pause, readAll, within } from "./_util/net.ts";
import { missing, startSquid, type TestProcess } from "./_util/proxies.ts";
import {
  ALICE_TOKEN,
  logMatches,
  missingWebsockets,
  SERVE_TLS_ARGS,
  serveCertificates,
  startServe,
} from "./_util/serve.ts";
import {
  gitSshCommand,
  makeBareRepo,
  missingSshd,
  sshArgs,
  sshRun,
  sshSession,
  startSshd,
} from "./_util/sshd.ts";
import {
  captureLogs,
  startTool,
  TEST_OPTIONS,
  waitForLog,
} from "./_util/tool.ts";

// issue #19: a corporate squid that lets CONNECT reach port 443 only (its
// default `http_access deny CONNECT !SSL_ports`, here with serve's port as
// the one SSL port) and drops idle tunnels; ssh and git get through it to a
// real sshd with a wss:// hop.
const ignore = missingWebsockets() || missing("squid") || missingSshd();

/** squid.conf lines: CONNECT only to `ports`, as squid's default config. */
function connectOnlyTo(...ports: number[]): string {
  return `acl SSL_ports port ${ports.join(" ")}
acl CONNECT method CONNECT
http_access deny CONNECT !SSL_ports
`;
}

Deno.test({
  name:
    "ssh and git clone over wss:// through a squid allowing CONNECT to serve's port only; a plain CONNECT to sshd is refused with 403",
  ignore,
  async fn() {
    await using certs = await serveCertificates();
    await using sshd = await startSshd();
    await using serve = await startServe({
      files: certs.files,
      args: [
        ...SERVE_TLS_ARGS,
        "--path",
        "/t",
        "--allow",
        `127.0.0.1:${sshd.port}`,
      ],
    });
    await using squid = await startSquid(connectOnlyTo(serve.port));
    const repoDir = await Deno.makeTempDir({ prefix: "httptunneling-repo-" });
    try {
      const repo = await makeBareRepo(repoDir);
      await using logs = await captureLogs();
      const ca = await Deno.readTextFile(certs.ca);
      const [plain, viaWss] = [freePort(), freePort()];
      {
        await using _tool = await startTool(
          [
            `${plain} 127.0.0.1 ${sshd.port} http://127.0.0.1:${squid.port}`,
            `${viaWss} 127.0.0.1 ${sshd.port} http://127.0.0.1:${squid.port} wss://127.0.0.1:${serve.port}/t token=${ALICE_TOKEN} ca-file=ca.pem`,
          ].join("\n"),
          { defaults: TEST_OPTIONS },
          { env: () => undefined, readFile: () => ca },
        );

        // The plain CONNECT: squid answers 403, the client's connection is
        // closed without a byte, and ssh fails.
        {
          using conn = await connect(plain);
          assert.equal((await within(readAll(conn), 15_000, "403")).length, 0);
          const refused = await logs.waitFor(
            new RegExp(`refused CONNECT to 127\\.0\\.0\\.1:${sshd.port}.*403`),
            15_000,
          );
          assert.match(refused, new RegExp(`127\\.0\\.0\\.1:${squid.port}`));
          const ssh = await sshRun(sshd, plain, "echo never");
          assert.equal(ssh.code, 255, ssh.stderr);
          assert.equal(ssh.stdout, "");
        }

        // The same sshd through squid and serve.
        const ssh = await sshRun(sshd, viaWss, "echo over-wss-$((6 * 7))");
        assert.equal(ssh.code, 0, `${ssh.stderr}\nsshd: ${sshd.log()}`);
        assert.equal(ssh.stdout, "over-wss-42\n");
        await logMatches(
          serve,
          new RegExp(
            `tunnel \\d+ open: token alice client 127\\.0\\.0\\.1:\\d+ target 127\\.0\\.0\\.1:${sshd.port}`,
          ),
        );

        const clone = await gitClone(
          `ssh://${sshd.user}@127.0.0.1:${viaWss}${repo.path}`,
          { env: { GIT_SSH_COMMAND: gitSshCommand(sshd) }, timeoutMs: 60_000 },
        );
        assert.equal(clone.head, repo.head);
        assert.deepEqual(clone.files, repo.files);
      }
      // Every tunnel went through squid to serve's port, none to sshd's;
      // ssh and git shared one session, so squid carried one CONNECT
      // (logged when it ended, with the tool).
      const access = await waitForLog(
        `${squid.dir}/access.log`,
        new RegExp(`TCP_TUNNEL/200 .*127\\.0\\.0\\.1:${serve.port}`),
      );
      assert.equal(
        access.match(new RegExp(`TCP_TUNNEL/200 .*:${serve.port}`, "g"))
          ?.length,
        1,
        access,
      );
      assert.doesNotMatch(access, new RegExp(`TCP_TUNNEL/200 .*:${sshd.port}`));
    } finally {
      await Deno.remove(repoDir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "issue #19's done-when: an ssh session idle for 60 s through a squid that cuts tunnels idle for 5 s survives over wss:// with heartbeat=2s; over a plain CONNECT it is cut",
  ignore,
  async fn() {
    await using certs = await serveCertificates();
    await using sshd = await startSshd();
    await using serve = await startServe({
      files: certs.files,
      args: [
        ...SERVE_TLS_ARGS,
        // serve's own pings only after an hour: the client's keep it alive.
        "--heartbeat",
        "1h",
        "--allow",
        `127.0.0.1:${sshd.port}`,
      ],
    });
    // sshd's port is allowed too, for the control. squid 5.7 applies
    // read_timeout to an established CONNECT tunnel: that is what cuts it
    // (client_idle_pconn_timeout alone leaves an idle tunnel open).
    await using squid = await startSquid(
      connectOnlyTo(serve.port, sshd.port) +
        "read_timeout 5 seconds\nclient_idle_pconn_timeout 5 seconds\n",
    );
    const ca = await Deno.readTextFile(certs.ca);
    const [plain, viaWss] = [freePort(), freePort()];
    await using _tool = await startTool(
      [
        `${plain} 127.0.0.1 ${sshd.port} http://127.0.0.1:${squid.port}`,
        `${viaWss} 127.0.0.1 ${sshd.port} http://127.0.0.1:${squid.port} wss://127.0.0.1:${serve.port} token=${ALICE_TOKEN} heartbeat=2s ca-file=ca.pem`,
      ].join("\n"),
      { defaults: TEST_OPTIONS },
      { env: () => undefined, readFile: () => ca },
    );
    await using overWss = sshSession(sshd, viaWss);
    await using overConnect = sshSession(sshd, plain);
    // The shell's PID names the session: the same one answers both times.
    const wssShell = await overWss.run("echo $$", 60_000);
    assert.match(wssShell, /^\d+\n$/);
    assert.match(await overConnect.run("echo $$", 60_000), /^\d+\n$/);

    await pause(60_000);

    assert.equal(await overWss.run("echo $$", 30_000), wssShell);
    assert.equal(await overWss.run("echo second-$((6 * 7))"), "second-42\n");
    // The control: squid closed the idle CONNECT tunnel, so ssh ended.
    const cut = await within(overConnect.ended, 30_000, "ssh's end");
    assert.equal(cut.code, 255, cut.stderr);
    await assert.rejects(overConnect.run("echo too-late", 10_000));
  },
});

Deno.test({
  name:
    "issue #20's done-when: an ssh session carrying a checksummed stream goes on, byte-exact, while the squid in its path is killed and restarted",
  ignore,
  async fn() {
    const TOTAL = 8 * 1024 * 1024;
    await using certs = await serveCertificates();
    await using sshd = await startSshd();
    await using serve = await startServe({
      files: certs.files,
      args: [...SERVE_TLS_ARGS, "--allow", `127.0.0.1:${sshd.port}`],
    });
    let squid: TestProcess | undefined = await startSquid(
      connectOnlyTo(serve.port),
    );
    const squidPort = squid.port;
    let restarted: TestProcess | undefined;
    await using logs = await captureLogs();
    const ca = await Deno.readTextFile(certs.ca);
    const port = freePort();
    await using _tool = await startTool(
      `${port} 127.0.0.1 ${sshd.port} http://127.0.0.1:${squidPort} wss://127.0.0.1:${serve.port} token=${ALICE_TOKEN} ca-file=ca.pem resume-window=1m`,
      { defaults: TEST_OPTIONS },
      { env: () => undefined, readFile: () => ca },
    );
    // `cat` on the far side echoes the stream: both directions are checked.
    const ssh = new Deno.Command("ssh", {
      args: [...sshArgs(sshd, port), "cat"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const sent = [...pseudoRandomChunks(20, TOTAL, 32 * 1024)];
    const received: Uint8Array[] = [];
    let echoed = 0;
    let interrupted: Promise<void> | undefined;
    const interrupt = async () => {
      await squid![Symbol.asyncDispose]();
      squid = undefined;
      await logs.waitFor(/reconnect attempt 1 /, 20_000);
      // A second http_port line brings squid back on the old port.
      restarted = await startSquid(
        connectOnlyTo(serve.port) + `http_port 127.0.0.1:${squidPort}\n`,
      );
    };
    try {
      const stderr = new Response(ssh.stderr).text();
      await within(
        Promise.all([
          (async () => {
            for await (const chunk of ssh.stdout) {
              received.push(chunk);
              echoed += chunk.length;
              if (echoed >= TOTAL / 3) interrupted ??= interrupt();
              if (echoed >= TOTAL) break;
            }
          })(),
          (async () => {
            const writer = ssh.stdin.getWriter();
            for (const chunk of sent) {
              await writer.write(chunk);
              // Paced, so the interruption falls in the middle.
              await pause(5);
            }
            await writer.close();
          })(),
        ]),
        120_000,
        "the stream through ssh",
      );
      await interrupted;
      const { code } = await within(ssh.status, 30_000, "ssh's end");
      assert.equal(code, 0, await stderr);
      assert.equal(echoed, TOTAL);
      assert.equal(sha256Of(received), sha256Of(sent));
      await logs.waitFor(/session \S+ resumed on attempt \d+/, 10_000);
      await logMatches(serve, /session \S+ resumed: token alice/);
    } finally {
      try {
        ssh.kill("SIGKILL");
      } catch { /* ended */ }
      await ssh.status;
      await squid?.[Symbol.asyncDispose]();
      await restarted?.[Symbol.asyncDispose]();
    }
  },
});
