import assert from "node:assert/strict";
import { diffEntries } from "../lib/config/diff.ts";
import { parseConfig } from "../lib/config/grammar.ts";

function entries(text: string) {
  return parseConfig(text, "t.conf").entries;
}

Deno.test("entries are matched by source address across reloads", () => {
  const running = entries(
    "1000 a 1\n2000 b 2 proxy 3128\n3000 c 3\n4000 d 4\n",
  );
  const next = entries(
    "# moved lines keep their identity\n4000 d 4\n2000 b 2 proxy 8080\n127.0.0.1:1000 a 1\n5000 e 5\n",
  );
  const diff = diffEntries(running, next);
  const ports = (list: typeof next) => list.map((e) => e.source.port);
  assert.deepEqual(ports(diff.added), [5000]);
  assert.deepEqual(ports(diff.removed), [3000]);
  assert.deepEqual(ports(diff.changed), [2000]);
  assert.deepEqual(ports(diff.unchanged), [4000, 1000]);
  assert.equal(diff.unchanged[1].line, 4, "new versions carry the new line");
});

Deno.test("swapping destinations between two ports changes both, moves nothing", () => {
  const diff = diffEntries(
    entries("1000 a 1\n2000 b 2\n"),
    entries("1000 b 2\n2000 a 1\n"),
  );
  assert.deepEqual(diff.changed.map((e) => e.source.port), [1000, 2000]);
  assert.equal(diff.added.length + diff.removed.length, 0);
});

Deno.test("a credential change is a change", () => {
  const diff = diffEntries(
    entries("1000 a 1 http://u:one@p:1\n"),
    entries("1000 a 1 http://u:two@p:1\n"),
  );
  assert.equal(diff.changed.length, 1);
});
