/**
 * The `check` command: the entries it prints, errors as file:line:col, and
 * warnings about credentials files.
 */
import assert from "node:assert/strict";
import { within } from "./_util/net.ts";
import { runTool, tempConfig } from "./_util/tool.ts";

Deno.test("check prints the entries and their options with credentials masked", async () => {
  const dir = await tempConfig(
    "2222 ssh.example.com 22 proxy.corp 3128\n0.0.0.0:8080 web 80 http://jane:s3cret@proxy:3128 idle-timeout=14m auth=ntlm\n",
  );
  try {
    const { code, stdout } = await runTool(["check", "tunnels.conf"], dir);
    assert.equal(code, 0);
    assert.equal(
      stdout,
      [
        "LINE  SOURCE          DESTINATION         ROUTE                           OPTIONS",
        "1     127.0.0.1:2222  ssh.example.com:22  via http://proxy.corp:3128      -",
        "2     0.0.0.0:8080    web:80              via http://jane:***@proxy:3128  idle-timeout=14m auth=ntlm",
        "tunnels.conf: 2 entries, no errors",
        "",
      ].join("\n"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("check reports every error as file:line:col and exits 1", async () => {
  const dir = await tempConfig("2222 host 22x\n# ok\n3333 host 22 proxy\n");
  try {
    const { code, stdout, stderr } = await runTool(
      ["check", "tunnels.conf"],
      dir,
    );
    assert.equal(code, 1);
    assert.equal(stdout, "");
    assert.equal(
      stderr,
      'tunnels.conf:1:11: invalid destination port "22x": use a number from 1 to 65535\n' +
        "tunnels.conf:3:14: expected a proxy URL (http://host:port) or the proxy host followed by its port\n",
    );
    const missing = await runTool(["check", "nope.conf"], dir);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^Cannot read config file nope\.conf: /);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the shipped tunnels.conf.example is valid", async () => {
  const { code, stderr } = await runTool(["check", "tunnels.conf.example"]);
  assert.equal(stderr, "");
  assert.equal(code, 0);
});

Deno.test("check warns once when a credentials file is readable by others, shows its name and masks it", async () => {
  const dir = await tempConfig(
    "2222 ssh 22 http://proxy:3128 credentials=proxy.cred\n" +
      "2223 ssh 22 http://proxy:3128 credentials=proxy.cred\n",
  );
  try {
    await Deno.writeTextFile(`${dir}/proxy.cred`, "CORP\\jane:s3cret\n");
    await Deno.chmod(`${dir}/proxy.cred`, 0o644);
    const open = await runTool(["check", "tunnels.conf"], dir);
    assert.equal(open.code, 0);
    assert.match(
      open.stderr,
      /^warning: credentials file .*proxy\.cred can be read by other users: chmod 600 \S+\n$/,
    );
    assert.match(
      open.stdout,
      /\n2 {5}127\.0\.0\.1:2223 {2}ssh:22 +via http:\/\/CORP%5Cjane:\*\*\*@proxy:3128 {2}credentials=proxy\.cred\n/,
    );
    assert.match(open.stdout, /via http:\/\/CORP%5Cjane:\*\*\*@proxy:3128/);
    assert.doesNotMatch(open.stdout + open.stderr, /s3cret/);
    await Deno.chmod(`${dir}/proxy.cred`, 0o600);
    assert.equal((await runTool(["check", "tunnels.conf"], dir)).stderr, "");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("check: a named pipe or a directory as the config is one clear sentence, not a hang", async () => {
  const dir = await Deno.makeTempDir({ prefix: "httptunneling-cli-" });
  try {
    const made = await new Deno.Command("mkfifo", {
      args: [`${dir}/pipe.conf`],
    }).output();
    assert.ok(made.success);
    // Relative paths: the tool reads only below its working directory.
    const pipe = await within(
      runTool(["check", "pipe.conf"], dir),
      10_000,
      "check on a FIFO",
    );
    assert.equal(pipe.code, 1);
    assert.match(
      pipe.stderr,
      /pipe\.conf is a named pipe \(FIFO\): name a regular file/,
    );
    await Deno.mkdir(`${dir}/folder.conf`);
    const folder = await runTool(["check", "folder.conf"], dir);
    assert.equal(folder.code, 1);
    assert.match(folder.stderr, /is a directory: name a regular file/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("check without CONFIG reads what run would: tunnels.conf, else the example, else says tunnels.conf is missing", async () => {
  const dir = await tempConfig("2222 ssh.example.com 22\n");
  try {
    const own = await runTool(["check"], dir);
    assert.equal(own.code, 0, own.stderr);
    assert.match(own.stdout, /tunnels\.conf: 1 entry, no errors/);
    await Deno.rename(`${dir}/tunnels.conf`, `${dir}/tunnels.conf.example`);
    const example = await runTool(["check"], dir);
    assert.equal(example.code, 0);
    assert.match(
      example.stderr,
      /^warning: tunnels\.conf not found; using tunnels\.conf\.example/,
    );
    await Deno.remove(`${dir}/tunnels.conf.example`);
    const none = await runTool(["check"], dir);
    assert.equal(none.code, 1);
    assert.equal(
      none.stderr,
      "Cannot read config file tunnels.conf: No such file or directory (os error 2)\n",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
