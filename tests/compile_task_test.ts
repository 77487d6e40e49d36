/**
 * The compile task: the permissions it bakes into the binary (and the
 * compile:kerberos task's, the same and FFI), that they hold when the tool
 * runs with them, and that `deno task compile` builds or says what it needs.
 * That the default permissions still serve a proxy offering Negotiate is in
 * negotiate_test.ts.
 */
import assert from "node:assert/strict";
import manifest from "../deno.json" with { type: "json" };
import { freePort, text } from "./_util/net.ts";
import {
  COMPILE_FLAGS,
  ROOT,
  runTool,
  tempConfig,
  tool,
} from "./_util/tool.ts";

Deno.test("the compile task bakes network, env, reads and writes below the working directory, and reads two system files for PAC files", () => {
  assert.deepEqual(COMPILE_FLAGS.toSorted(), [
    "--allow-env",
    "--allow-net",
    // Below the working directory; and, for a PAC, the DNS search domains
    // of pac=auto and the default route of myIpAddress().
    "--allow-read=.,/etc/resolv.conf,/proc/net/route",
    // The PAC sandbox process: the binary itself, found on PATH.
    "--allow-run=httptunneling",
    // A PAC's myIpAddress() and pac=auto's host name, nothing more.
    "--allow-sys=hostname,networkInterfaces",
    "--allow-write=.",
    "--unstable-net",
    // The PAC sandbox's Worker without permissions.
    "--unstable-worker-options",
  ]);
  // The workers' code is loaded at run time, so it is named to be included.
  assert.match(manifest.tasks.compile, / --include lib\/workers\/worker\.ts /);
  assert.match(
    manifest.tasks.compile,
    / --include lib\/route\/pac\/worker\.ts /,
  );
});

Deno.test("compile:kerberos bakes in the same permissions and FFI, for Negotiate's GSSAPI, and nothing more", () => {
  const task = manifest.tasks["compile:kerberos"];
  const flags = task.split(/\s+/).filter((word) =>
    word.startsWith("--allow-") || word.startsWith("--deny-") ||
    word.startsWith("--unstable-")
  );
  assert.deepEqual(
    flags.toSorted(),
    [...COMPILE_FLAGS, "--allow-ffi"].toSorted(),
  );
  // Otherwise the same command: same binary name, same help when it fails.
  assert.equal(
    task.replace(" --allow-ffi", ""),
    manifest.tasks.compile,
  );
});

Deno.test("with the compiled-in permissions, a write outside the working directory and a read outside it are refused", async () => {
  const outside = await Deno.makeTempDir({ prefix: "httptunneling-outside-" });
  await Deno.writeTextFile(`${outside}/secret.cred`, "jane:s3cret\n");
  const dir = await tempConfig(`${freePort()} 127.0.0.1 9\n`);
  try {
    const write = await runTool([
      "run",
      "--log",
      `${outside}/HTTPTunneling.log`,
    ], dir);
    assert.equal(write.code, 1);
    assert.match(
      write.stderr,
      /^error: .*Requires write access to ".*HTTPTunneling\.log"/,
    );
    await assert.rejects(
      Deno.stat(`${outside}/HTTPTunneling.log`),
      Deno.errors.NotFound,
    );
    await Deno.writeTextFile(
      `${dir}/tunnels.conf`,
      `${freePort()} 127.0.0.1 9 http://proxy:3128 credentials=${outside}/secret.cred\n`,
    );
    const read = await runTool(["check", "tunnels.conf"], dir);
    assert.equal(read.code, 1);
    assert.match(
      read.stderr,
      /tunnels\.conf:1:\d+: cannot read credentials file .*secret\.cred: Requires read access/,
    );
    assert.doesNotMatch(read.stderr, /s3cret/);
  } finally {
    await Deno.remove(outside, { recursive: true });
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("with the compiled-in permissions, pac=auto reads the DNS search domains and the host name, and asks for nothing more", async () => {
  const dir = await tempConfig("");
  try {
    const dead = `http://127.0.0.1:${freePort()}/wpad.dat`;
    const { code, stderr } = await tool(
      ["pac", "auto", "a.example", "22"],
      dir,
      { PAC_URL: dead },
    ).output();
    assert.equal(code, 1);
    assert.match(text(stderr), new RegExp(`PAC discovery: trying ${dead}`));
    assert.doesNotMatch(text(stderr), /may not read/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task compile builds the binary, or fails with a message naming DENORT_BIN and DENO_DIR", async () => {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "compile"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  try {
    if (code === 0) {
      const version = await new Deno.Command(`${ROOT}httptunneling`, {
        args: ["--version"],
      }).output();
      assert.match(
        text(version.stdout),
        /^httptunneling \d+\.\d+\.\d+ \(deno /,
      );
    } else {
      const said = text(stdout) + text(stderr);
      assert.match(said, /DENORT_BIN/);
      assert.match(said, /DENO_DIR/);
      assert.doesNotMatch(said, /Stack backtrace/);
    }
  } finally {
    await Deno.remove(`${ROOT}httptunneling`).catch(() => {});
    await Deno.remove(`${ROOT}compile-error.log`).catch(() => {});
  }
});

Deno.test("deno task compile shows Deno's own error, without colour codes, when the cause is not the runtime download: a directory in the way, a type error", async () => {
  // A directory where the binary should go fails before any download.
  const dir = await Deno.makeTempDir({ prefix: "httptunneling-compile-" });
  try {
    for (const file of ["deno.json", "deno.lock", "main.ts"]) {
      await Deno.copyFile(`${ROOT}${file}`, `${dir}/${file}`);
    }
    await Deno.symlink(`${ROOT}lib`, `${dir}/lib`);
    await Deno.mkdir(`${dir}/httptunneling`);
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["task", "--quiet", "compile"],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const said = text(stdout) + text(stderr);
    assert.equal(code, 1);
    assert.match(
      said,
      /^error: Could not compile to file 'httptunneling' because a directory exists with the same name/m,
    );
    assert.doesNotMatch(said, /DENORT_BIN/);
    assert.ok(
      !(await Deno.readTextFile(`${dir}/compile-error.log`)).includes("\x1b["),
      "no colour codes in compile-error.log",
    );
    // A type error: its message and place, not only "Type checking failed".
    await Deno.remove(`${dir}/httptunneling`);
    await Deno.writeTextFile(
      `${dir}/main.ts`,
      'export const broken: number = "text";\n',
      { append: true },
    );
    const typed = await new Deno.Command(Deno.execPath(), {
      args: ["task", "--quiet", "compile"],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const told = text(typed.stdout) + text(typed.stderr);
    assert.equal(typed.code, 1);
    assert.match(
      told,
      /TS2322 \[ERROR\]: Type 'string' is not assignable to type 'number'\.[^]*main\.ts:\d+:\d+[^]*error: Type checking failed/,
    );
    assert.doesNotMatch(told, /^(Check|Compile) |Stack backtrace/m);
    assert.ok(!told.includes("\x1b["), "no colour codes on screen");
    const log = await Deno.readTextFile(`${dir}/compile-error.log`);
    assert.match(log, /hint: /);
    assert.ok(!log.includes("\x1b["), "no colour codes in compile-error.log");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
