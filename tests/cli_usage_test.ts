/**
 * The command line itself: --help, --version, and what a wrong one says.
 */
import assert from "node:assert/strict";
import manifest from "../deno.json" with { type: "json" };
import { RUN_FLAGS } from "../lib/cli/flags.ts";
import { PROBE_FLAGS } from "../lib/cli/probe.ts";
import { SERVE_FLAGS } from "../lib/cli/serve.ts";
import { STATUS_FLAGS } from "../lib/cli/status.ts";
import { STDIO_FLAGS } from "../lib/cli/stdio.ts";
import { commandUsage } from "../lib/cli/usage.ts";
import { nearest } from "../lib/suggest.ts";
import { runTool, tempConfig } from "./_util/tool.ts";

Deno.test("--help and --version", async () => {
  const help = await runTool(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /httptunneling run \[CONFIG\]/);
  assert.match(help.stdout, /httptunneling check \[CONFIG\]/);
  const version = await runTool(["--version"]);
  assert.equal(version.code, 0);
  assert.equal(
    version.stdout,
    `httptunneling ${manifest.version} (deno ${Deno.version.deno})\n`,
  );
});

Deno.test("a wrong command line exits 2 with an error line and where the usage is", async () => {
  for (
    const [args, usage] of <[string[], string][]> [
      [[], "httptunneling --help"],
      [["frobnicate"], "httptunneling --help"],
      [["help", "frobnicate"], "httptunneling --help"],
      [["run", "--no-such-option"], "httptunneling run --help"],
      [["check", "a.conf", "b.conf"], "httptunneling check --help"],
    ]
  ) {
    const { code, stderr } = await runTool(args);
    assert.equal(code, 2, args.join(" "));
    assert.match(
      stderr,
      new RegExp(`^error: .+\\nRun "${usage}" for usage\\.\\n$`),
    );
  }
  const { stderr } = await runTool(["run", "--connect-timeout", "soon"]);
  assert.match(stderr, /--connect-timeout must be a positive duration/);
});

Deno.test("a misspelled command gets a suggestion; a missing or unwanted value is one sentence", async () => {
  for (
    const [args, said] of [
      [["sattus"], 'unknown command "sattus": did you mean status?'],
      [["help", "rn"], 'unknown command "rn": did you mean run?'],
      [["--hepl"], 'unknown command "--hepl": did you mean --help?'],
      [["run", "--log"], "--log needs a value"],
      [["run", "-L"], "--forward needs a value"],
      [
        ["run", "--log", "-x"],
        '--log needs a value; for one that starts with "-", write --log=-…',
      ],
      [["status", "--json=yes"], "--json takes no value"],
    ] as [string[], string][]
  ) {
    const { code, stderr } = await runTool(args);
    assert.equal(code, 2, args.join(" "));
    assert.equal(stderr.split("\n")[0], `error: ${said}`);
  }
});

Deno.test("nearest: within a third of the letters, two swapped letters one edit", () => {
  const names = ["idle-timeout", "linger-timeout", "help", "status"];
  assert.equal(nearest("idle-timout", names), "idle-timeout");
  assert.equal(nearest("idle-timoeut", names), "idle-timeout");
  assert.equal(nearest("hlep", names), "help");
  assert.equal(nearest("sattus", names), "status");
  assert.equal(nearest("frobnicate", names), undefined);
});

Deno.test("--help on every subcommand, and help <command>: its own usage with the options and defaults its parser takes", async () => {
  const expected: Record<string, RegExp[]> = {
    run: [
      /--idle-timeout D +.*\(default: off\)/,
      /-L, --forward /,
      /--workers N/,
    ],
    check: [/^Usage: httptunneling check \[CONFIG\]/],
    stdio: [/-v, --verbose/, /--connect-timeout D +.*\(default: 10s\)/],
    probe: [/--to HOST:PORT/, /--json/, /--proxy URL/],
    status: [/-w, --watch/, /127\.0\.0\.1:9191/],
    serve: [
      /--listen ADDR +where to accept tunnels/,
      /\(default: 127\.0\.0\.1:8080\)/,
      /--allow RULES/,
    ],
    pac: [/^Usage: httptunneling pac FILE\|URL\|auto HOST \[PORT\]/],
  };
  for (const [command, patterns] of Object.entries(expected)) {
    for (
      const args of [[command, "--help"], [command, "-h"], ["help", command]]
    ) {
      const { code, stdout } = await runTool(args);
      assert.equal(code, 0, args.join(" "));
      assert.match(stdout, new RegExp(`^Usage: httptunneling ${command}`));
      for (const pattern of patterns) {
        assert.match(stdout, pattern, args.join(" "));
      }
    }
  }
});

Deno.test("each subcommand's --help lists exactly the flags its parser takes, and fits 88 columns", () => {
  const parsers: Record<
    string,
    Record<string, { readonly type: string; readonly short?: string }>
  > = {
    run: RUN_FLAGS,
    check: {},
    stdio: STDIO_FLAGS,
    probe: PROBE_FLAGS,
    status: STATUS_FLAGS,
    serve: SERVE_FLAGS,
    pac: {},
  };
  for (const [command, flags] of Object.entries(parsers)) {
    const help = commandUsage(command)!;
    const listed = [...help.matchAll(/^ {2}(?:-(\w), )?--([a-z-]+)/gm)]
      .map(([, short, flag]) => short ? `-${short}, --${flag}` : `--${flag}`)
      .sort();
    const parsed = Object.entries(flags)
      .map(([flag, { short }]) => short ? `-${short}, --${flag}` : `--${flag}`)
      .sort();
    assert.deepEqual(listed, parsed, command);
    for (const line of help.split("\n")) {
      assert.ok(line.length <= 88, `${command}: ${line}`);
    }
  }
});

Deno.test("a misspelled option or config key suggests the nearest valid one", async () => {
  const flag = await runTool(["run", "--idle-timout", "5s"]);
  assert.equal(flag.code, 2);
  assert.match(
    flag.stderr,
    /^error: unknown option "--idle-timout": did you mean --idle-timeout\?\n/,
  );
  const dir = await tempConfig("2222 ssh.example.com 22 idle-timout=5s\n");
  try {
    const key = await runTool(["check", "tunnels.conf"], dir);
    assert.equal(key.code, 1);
    assert.match(
      key.stderr,
      /tunnels\.conf:1:25: unknown option "idle-timout": did you mean idle-timeout\?/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the README's table of run options lists every flag run --help lists", async () => {
  const help = (await runTool(["run", "--help"])).stdout;
  const flags = [...help.matchAll(/^ {2}(?:-\w, )?(--[a-z-]+)/gm)].map((m) =>
    m[1]
  );
  const readme = await Deno.readTextFile(
    new URL("../README.md", import.meta.url),
  );
  const table = readme.slice(readme.indexOf("| option of `run`"));
  const listed = [
    ...table.slice(0, table.indexOf("\n\n")).matchAll(
      /`(?:-\w, )?(--[a-z-]+)/g,
    ),
  ]
    .map((m) => m[1]);
  assert.ok(flags.length > 10);
  assert.deepEqual(flags.filter((flag) => !listed.includes(flag)), []);
});
