/**
 * Naming the process that holds a port: the `/proc/net/tcp` parsing with
 * lines as the kernel writes them, and `run` naming a real listener's pid
 * and command line when its first bind fails.
 */
import assert from "node:assert/strict";
import {
  formatCmdline,
  listeningInodes,
  parseProcNetTcpLine,
  socketInode,
} from "../lib/net/proc_net_tcp.ts";
import { within } from "./_util/net.ts";
import { IN_CI, missing } from "./_util/proxies.ts";
import { ROOT, startRun, tempConfig, waitForLog } from "./_util/tool.ts";

const TCP =
  `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1137 1 00000000adc39e80 100 0 0 10 0
   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 52311 1 0000000000000000 100 0 0 10 0
   2: 0100007F:1F90 0100007F:E2F4 01 00000000:00000000 00:00000000 00000000  1000        0 52399 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:81A3 0100007F:E2F4 06 00000000:00000000 03:000008FC 00000000     0        0 0 3 00000000bed9d664
`;
const TCP6 =
  `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 60001 1 0000000000000000 100 0 0 10 0
`;

Deno.test("a /proc/net/tcp line gives its port, state, owner and inode", () => {
  assert.deepEqual(parseProcNetTcpLine(TCP.split("\n")[2]), {
    port: 8080,
    state: "0A",
    uid: 1000,
    inode: 52311,
  });
  assert.equal(parseProcNetTcpLine(TCP.split("\n")[0]), undefined);
  assert.equal(parseProcNetTcpLine(""), undefined);
  assert.equal(parseProcNetTcpLine("0: nonsense 1 2 3 4 5 6 7 8"), undefined);
  assert.deepEqual(parseProcNetTcpLine(TCP6.split("\n")[1]), {
    port: 8080,
    state: "0A",
    uid: 1000,
    inode: 60001,
  });
});

Deno.test("only listening sockets on the port count, and the kernel's hidden inode 0 never", () => {
  assert.deepEqual(listeningInodes(TCP, 8080), [52311]);
  assert.deepEqual(listeningInodes(TCP, 2024), [1137]);
  assert.deepEqual(listeningInodes(TCP, 33187), []);
  assert.deepEqual(listeningInodes(TCP6, 8080), [60001]);
});

Deno.test("fd links name socket inodes; command lines are joined, cleaned and bounded", () => {
  assert.equal(socketInode("socket:[52311]"), 52311);
  assert.equal(socketInode("pipe:[52311]"), undefined);
  assert.equal(socketInode("/dev/null"), undefined);
  assert.equal(
    formatCmdline("python3\0-c\0print(1)\nx\0"),
    "python3 -c print(1)?x",
  );
  assert.equal(formatCmdline("a".repeat(200), 10), `${"a".repeat(9)}…`);
  assert.equal(formatCmdline(""), "");
});

const LISTENER_PY = `
import socket, sys
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(1)
print(server.getsockname()[1], flush=True)
sys.stdin.read()
`;

Deno.test("run names the pid and command of the process that holds an entry's port", async (t) => {
  if (missing("python3")) {
    assert.ok(!IN_CI, "python3 is missing");
    console.log("skipped: python3 is not installed");
    return;
  }
  const holder = new Deno.Command("python3", {
    args: ["-c", LISTENER_PY],
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = holder.stdout.pipeThrough(new TextDecoderStream())
    .getReader();
  try {
    const port = Number(
      (await within(reader.read(), 10_000, "the listener's port")).value,
    );
    assert.ok(port > 0);
    await t.step(
      "with --allow-all, /proc is read and the holder named, in the log and in the startup line",
      async () => {
        const dir = await tempConfig(`${port} 127.0.0.1 9\n`);
        // The tool's own flags grant reads below its directory, which Deno
        // does not let --allow-all join.
        const run = new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "--quiet",
            `--config=${ROOT}deno.json`,
            "--allow-all",
            `${ROOT}main.ts`,
            "run",
          ],
          cwd: dir,
          stdin: "null",
          stdout: "null",
          stderr: "piped",
        }).spawn();
        const stderr = run.stderr.pipeThrough(new TextDecoderStream())
          .getReader();
        try {
          const log = await waitForLog(
            `${dir}/HTTPTunneling.log`,
            /cannot listen/,
          );
          assert.match(
            log,
            new RegExp(
              `cannot listen on 127\\.0\\.0\\.1:${port} \\(line 1\\), retrying in 1 s: Address already in use \\(os error 98\\) \\(pid ${holder.pid} listens there: \\S*python3 -c `,
            ),
          );
          let said = "";
          while (!said.includes("\n")) {
            const { value, done } = await within(
              stderr.read(),
              10_000,
              "the startup line",
            );
            if (done) break;
            said += value;
          }
          assert.match(
            said,
            new RegExp(
              `; waiting for 127\\.0\\.0\\.1:${port} \\(Address already in use \\(os error 98\\); pid ${holder.pid} listens there: \\S*python3 -c `,
            ),
          );
        } finally {
          await stderr.cancel();
          run.kill("SIGTERM");
          assert.equal((await within(run.status, 10_000, "exit")).code, 0);
          await Deno.remove(dir, { recursive: true });
        }
      },
    );
    await t.step(
      "without it, Deno keeps /proc closed and the log says what is likely",
      async () => {
        const dir = await tempConfig(`${port} 127.0.0.1 9\n`);
        await using run = startRun(dir);
        const log = await waitForLog(run.log, /cannot listen/);
        assert.match(
          log,
          /\(another program listens there; another httptunneling may be running: `ss -ltnp` names it\)/,
        );
        assert.doesNotMatch(log, /pid \d+ listens there/);
      },
    );
  } finally {
    await reader.cancel();
    await holder.stdin.close().catch(() => {});
    holder.kill("SIGKILL");
    await holder.status;
  }
});
