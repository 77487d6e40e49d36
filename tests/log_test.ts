import assert from "node:assert/strict";
import {
  escapeControls,
  logger,
  MAX_LOGGED_CHARS,
  setupLogging,
} from "../lib/observe/log.ts";

Deno.test("a log record is one line of bounded length, whatever its values hold", async () => {
  const dir = await Deno.makeTempDir({ prefix: "httptunneling-log-" });
  const file = `${dir}/t.log`;
  const close = await setupLogging({ file, level: "info", stderr: false });
  try {
    const log = logger("test");
    const statusLine = `HTTP/1.1 403 ${"x".repeat(60_000)}`;
    log.warn("refused: {line}", { line: statusLine });
    log.warn(`value from the environment: ${"a\r\nX-Injected: yes\x1b[2J"}`);
  } finally {
    await close();
  }
  const lines = (await Deno.readTextFile(file)).split("\n").filter(Boolean);
  await Deno.remove(dir, { recursive: true });
  assert.equal(lines.length, 2);
  assert.ok(lines[0].length < MAX_LOGGED_CHARS + 200, "long value cut");
  assert.match(lines[0], /… \(\d+ more characters\)$/);
  assert.match(lines[1], /a\\r\\nX-Injected: yes\\x1b\[2J$/);
});

Deno.test("escapeControls keeps tabs and the final newline only", () => {
  assert.equal(escapeControls("a\tb\r\nc\x00\n"), "a\tb\\r\\nc\\x00\n");
});
