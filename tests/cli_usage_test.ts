/**
 * The command line itself: --help, --version, and what a wrong one says.
 */
import assert from "node:assert/strict";
import manifest from "../deno.json" with { type: "json" };
import { runTool } from "./_util/tool.ts";

Deno.test("--help and --version", async () => {
  const help = await runTool(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /httptunneling run \[CONFIG\]/);
  assert.match(help.stdout, /httptunneling check CONFIG/);
  const version = await runTool(["--version"]);
  assert.equal(version.code, 0);
  assert.equal(
    version.stdout,
    `httptunneling ${manifest.version} (deno ${Deno.version.deno})\n`,
  );
});

Deno.test("a wrong command line exits 2 with an error line", async () => {
  for (
    const args of [[], ["frobnicate"], ["run", "--no-such-option"], ["check"]]
  ) {
    const { code, stderr } = await runTool(args);
    assert.equal(code, 2, args.join(" "));
    assert.match(
      stderr,
      /^error: .+\nRun "httptunneling --help" for usage\.\n$/,
    );
  }
  const { stderr } = await runTool(["run", "--connect-timeout", "soon"]);
  assert.match(stderr, /--connect-timeout must be a positive duration/);
});
