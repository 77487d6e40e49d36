/**
 * The `probe` command's output (the probe itself: probe_test.ts).
 */
import assert from "node:assert/strict";
import { freePort, startBannerServer } from "./_util/net.ts";
import { missing, startSquid } from "./_util/proxies.ts";
import { runTool, tempConfig } from "./_util/tool.ts";
import { ALICE_TOKEN, startServe } from "./_util/serve.ts";

Deno.test({
  name:
    "probe --json: one report per entry, parsed, and exit 1 when a route fails",
  ignore: missing("squid"),
  async fn() {
    await using squid = await startSquid();
    await using ssh = startBannerServer("SSH-2.0-json\r\n");
    const dir = await tempConfig(
      `2222 127.0.0.1 ${ssh.port} 127.0.0.1 ${squid.port}\n2223 127.0.0.1 ${ssh.port} http://127.0.0.1:${freePort()}\n`,
    );
    try {
      const { code, stdout } = await runTool([
        "probe",
        "tunnels.conf",
        "--json",
      ], dir);
      assert.equal(code, 1);
      const reports = JSON.parse(stdout);
      assert.equal(reports.length, 2);
      assert.equal(reports[0].entry, "line 1: 127.0.0.1:2222");
      assert.equal(reports[0].ok, true);
      assert.equal(
        reports[0].paths[0].steps.at(-1).detail,
        'spoke first: "SSH-2.0-json"',
      );
      assert.equal(reports[1].ok, false);
      assert.match(
        reports[1].diagnosis,
        /^nothing accepts connections at proxy 127\.0\.0\.1:\d+/,
      );
      const text = await runTool([
        "probe",
        "127.0.0.1",
        String(ssh.port),
        "--proxy",
        `http://127.0.0.1:${squid.port}`,
      ]);
      assert.equal(text.code, 0);
      assert.match(
        text.stdout,
        /ok {4}CONNECT 127\.0\.0\.1:\d+ via 127\.0\.0\.1:\d+ .*HTTP\/1\.1 200/,
      );
      assert.match(text.stdout, /=> works/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "probe a local proxy entry: its route checked with a test CONNECT to --to, direct-for= applied",
  ignore: missing("squid"),
  async fn() {
    await using squid = await startSquid();
    await using ssh = startBannerServer("SSH-2.0-local\r\n");
    const dir = await tempConfig(
      `3128 proxy http://127.0.0.1:${squid.port}\n` +
        `1080 socks http://127.0.0.1:${squid.port} direct-for=127.0.0.1\n`,
    );
    try {
      const { code, stdout } = await runTool([
        "probe",
        "tunnels.conf",
        "--to",
        `127.0.0.1:${ssh.port}`,
        "--json",
      ], dir);
      assert.equal(code, 0, stdout);
      const [viaSquid, direct] = JSON.parse(stdout);
      assert.equal(viaSquid.route, `via http://127.0.0.1:${squid.port}`);
      assert.equal(
        viaSquid.paths[0].steps.at(-1).detail,
        'spoke first: "SSH-2.0-local"',
      );
      assert.equal(direct.route, "direct");
      const wrong = await runTool(
        ["probe", "tunnels.conf", "--to", "nope"],
        dir,
      );
      assert.equal(wrong.code, 2);
      assert.match(wrong.stderr, /--to nope is not HOST:PORT/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "probe: a hop with alternatives is one route that works when one alternative does; exit 1 only when none does",
  ignore: missing("squid"),
  async fn() {
    await using squid = await startSquid();
    await using ssh = startBannerServer("SSH-2.0-alt\r\n");
    const [closed, alsoClosed] = [freePort(), freePort()];
    const works = await runTool([
      "probe",
      "127.0.0.1",
      String(ssh.port),
      "--proxy",
      `http://127.0.0.1:${closed},http://127.0.0.1:${squid.port}`,
    ]);
    assert.equal(works.code, 0, works.stdout);
    const lines = works.stdout.split("\n");
    assert.equal(
      lines[0],
      `-> 127.0.0.1:${ssh.port} via http://127.0.0.1:${closed},http://127.0.0.1:${squid.port}`,
    );
    assert.equal(
      lines[1],
      `  alternative 1 of 2: via http://127.0.0.1:${closed}`,
    );
    assert.match(works.stdout, /\n {4}FAIL {2}connect 127\.0\.0\.1:\d+ /);
    assert.match(
      works.stdout,
      /\n {4}=> nothing accepts connections at proxy 127\.0\.0\.1:\d+/,
    );
    assert.match(
      works.stdout,
      new RegExp(
        `\\n  alternative 2 of 2: via http://127\\.0\\.0\\.1:${squid.port}\\n`,
      ),
    );
    assert.match(works.stdout, /spoke first: "SSH-2\.0-alt"/);
    assert.match(
      works.stdout,
      /\n {2}=> works \(1 of 2 alternatives failed: tunnels fail over to one that works\)\n/,
    );

    const json = await runTool([
      "probe",
      "127.0.0.1",
      String(ssh.port),
      "--proxy",
      `http://127.0.0.1:${closed},http://127.0.0.1:${alsoClosed}`,
      "--json",
    ]);
    assert.equal(json.code, 1);
    const [report] = JSON.parse(json.stdout);
    assert.equal(report.ok, false);
    assert.deepEqual(
      report.paths.map((path: { ok: boolean }) => path.ok),
      [false, false],
    );
    assert.match(
      report.diagnosis,
      new RegExp(
        `^via http://127\\.0\\.0\\.1:${closed}: nothing accepts connections .*; via http://127\\.0\\.0\\.1:${alsoClosed}: nothing accepts connections`,
      ),
    );
  },
});

Deno.test(
  "probe CONFIG uses each entry's own options: token= of a ws:// entry reaches serve; probe alone reads tunnels.conf as run does",
  async () => {
    await using banner = startBannerServer("SSH-2.0-probe\r\n");
    await using serve = await startServe({
      args: ["--allow", `127.0.0.1:${banner.port}`],
    });
    const dir = await tempConfig(
      `${freePort()} 127.0.0.1 ${banner.port} ws://127.0.0.1:${serve.port}/ token=${ALICE_TOKEN}\n`,
    );
    try {
      for (const args of [["probe", "tunnels.conf"], ["probe"]]) {
        const { code, stdout, stderr } = await runTool(args, dir);
        assert.equal(code, 0, stdout + stderr);
        assert.match(stdout, /^line 1: 127\.0\.0\.1:\d+ -> /);
        assert.match(stdout, /=> works/);
        assert.ok(!(stdout + stderr).includes(ALICE_TOKEN));
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
