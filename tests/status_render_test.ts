/**
 * `status`'s tables from a /status document: failures by reason, the
 * proxies with their health, and a long route cut in the middle to fit 100
 * columns (in full with --wide).
 */
import assert from "node:assert/strict";
import { REASONS, renderStatus } from "../lib/cli/status.ts";
import { formatTable, truncateMiddle } from "../lib/cli/table.ts";
import type { statusDocument } from "../lib/observe/status_server.ts";

const LONG_ROUTE =
  "via http://jane:***@proxy-a.corp.example:3128,http://proxy-b.corp.example:3128 -> socks5h://jump.example:1080";

const STATUS = {
  version: "0.1.0",
  pid: 4242,
  memory: { rss: 0, heapTotal: 0, heapUsed: 0, external: 0 },
  config: { path: "tunnels.conf", lastReload: null },
  entries: [
    {
      source: "127.0.0.1:2222",
      destination: "ssh.example.com:22",
      route: LONG_ROUTE,
      line: 1,
      state: "listening",
      active: 1,
      accepted: 9,
      failed: { connect: 3, auth: 1 },
      bytesUp: 1024,
      bytesDown: 2048,
      proxies: [
        {
          hop: 1,
          proxy: "http://jane:***@proxy-a.corp.example:3128",
          state: "skipped",
          failures: 3,
          skippedUntil: "2026-12-05T12:03:04.000Z",
          reason: "connect",
          error:
            "Cannot connect to proxy-a.corp.example:3128: Connection refused (os error 111)",
        },
        {
          hop: 1,
          proxy: "http://proxy-b.corp.example:3128",
          state: "ok",
          failures: 0,
        },
        {
          hop: 2,
          proxy: "socks5h://jump.example:1080",
          state: "ok",
          failures: 0,
        },
      ],
    },
    {
      source: "127.0.0.1:5432",
      destination: "db.internal:5432",
      route: "direct",
      line: 2,
      state: "listening",
      active: 0,
      accepted: 0,
      failed: {},
      bytesUp: 0,
      bytesDown: 0,
      proxies: [],
    },
  ],
  tunnels: [],
} as unknown as ReturnType<typeof statusDocument>;

Deno.test("truncateMiddle keeps both ends; formatTable narrows only the columns allowed, to the width asked", () => {
  assert.equal(truncateMiddle("abcdefghij", 10), "abcdefghij");
  assert.equal(truncateMiddle("abcdefghij", 7), "abc…hij");
  assert.equal(truncateMiddle("abcdefghij", 6), "abc…ij");
  assert.equal(truncateMiddle("abcdefghij", 1), "…");
  const rows = [["A", "LONG"], ["x", "0123456789".repeat(3)]];
  assert.equal(formatTable(rows).split("\n")[1].length, 33);
  assert.equal(
    formatTable(rows, { maxWidth: 20, shrink: [1] }),
    "A  LONG\nx  01234567…23456789",
  );
  // Never narrower than a cell can still be told apart by.
  assert.equal(
    formatTable(rows, { maxWidth: 5, shrink: [1] }).split("\n")[1].length,
    15,
  );
  assert.equal(formatTable(rows, { maxWidth: 20 }), formatTable(rows));
});

Deno.test("status fits 100 columns, the route cut in the middle; --wide shows it whole", () => {
  const fitted = renderStatus(STATUS, { width: 100 });
  for (const line of fitted.split("\n")) {
    assert.ok(line.length <= 100, `${line.length} columns: ${line}`);
  }
  const row = fitted.split("\n").find((line) =>
    line.startsWith("127.0.0.1:2222")
  )!;
  // Both ends of the route stay: the first proxy's start, the last hop.
  assert.match(
    row,
    /^127\.0\.0\.1:2222 {2}ssh\.example\.com:22 {2}via http:\/\/jan…p\.example:1080 {2}listening {2}1 +9 +4$/,
  );
  const wide = renderStatus(STATUS);
  assert.ok(wide.includes(LONG_ROUTE));
  assert.ok(wide.split("\n").some((line) => line.length > 100));
  // Every failure reason (counts as wide as the narrowest header), a long
  // source and byte counts near a TiB: the table of failures fits too, the
  // source cut in the middle.
  const busy = renderStatus({
    ...STATUS,
    entries: [{
      ...STATUS.entries[1],
      source: "[2001:db8:1234:5678:9abc:def0:1234:5678]:65535",
      bytesUp: 1023 * 1024 ** 3,
      bytesDown: 1023 * 1024 ** 3,
      failed: Object.fromEntries(REASONS.map((reason) => [reason, 999])),
    }],
  }, { width: 100 });
  for (const line of busy.split("\n")) {
    assert.ok(line.length <= 100, `${line.length} columns: ${line}`);
  }
  assert.match(busy, /\nSOURCE +UP +DOWN +CONNECT .* OTHER\n\[2001:…:65535 /);
  assert.match(busy, /\n\[2001:db8:.*….*:65535 +db\.internal:5432 +direct /);
});

Deno.test("status shows traffic and failures by reason, and each proxy's health", () => {
  const text = renderStatus(STATUS);
  assert.match(
    text,
    /\ntraffic, and failures by reason\nSOURCE {10}UP {7}DOWN {5}CONNECT {2}AUTH\n127\.0\.0\.1:2222 {2}1\.0 KiB {2}2\.0 KiB {2}3 {8}1\n127\.0\.0\.1:5432 {2}0 B {6}0 B {6}0 {8}0\n/,
  );
  const proxies = text.split("\nproxies\n")[1].split("\n\n")[0].split("\n");
  assert.match(proxies[0], /^ENTRY +HOP +PROXY +STATE +FAILURES +LAST ERROR$/);
  assert.match(
    proxies[1],
    /^127\.0\.0\.1:2222 +1 +http:\/\/jane:\*\*\*@proxy-a\.corp\.example:3128 +skipped until 12:03:04 UTC +3 +connect: Cannot connect to proxy-a/,
  );
  assert.match(proxies[2], /http:\/\/proxy-b\.corp\.example:3128 +ok +0$/);
  assert.match(
    proxies[3],
    /^127\.0\.0\.1:2222 +2 +socks5h:\/\/jump\.example:1080 +ok/,
  );
  // No failures: no reason columns; no proxies: no table of them.
  const quiet = renderStatus({ ...STATUS, entries: [STATUS.entries[1]] });
  assert.match(
    quiet,
    /\nSOURCE {10}UP {3}DOWN\n127\.0\.0\.1:5432 {2}0 B {2}0 B\n/,
  );
  assert.ok(!quiet.includes("\nproxies\n"));
});

Deno.test("status shows each session route's transport, and why transport=auto fell back", () => {
  const text = renderStatus({
    ...STATUS,
    sessionRoutes: [
      {
        route: "via ws://far.example:8080/t",
        mode: "auto",
        transport: "websocket",
        fallback: null,
        since: "2026-12-05T12:00:00.000Z",
        sessions: 1,
      },
      {
        route: "via http://squid:3128 -> wss://far.example:443/t",
        mode: "auto",
        transport: "poll",
        fallback:
          "serve at far.example:443/t received the WebSocket upgrade without its Upgrade header",
        since: "2026-12-05T12:01:02.000Z",
        sessions: 2,
      },
    ],
  }, { width: 200 });
  const section = text.slice(text.indexOf("session transports"));
  assert.match(
    section,
    /via ws:\/\/far\.example:8080\/t +auto +WebSocket +1 +12:00:00 UTC *\n/,
  );
  assert.match(
    section,
    /-> wss:\/\/far\.example:443\/t +auto +poll +2 +12:01:02 UTC +fell back to poll: serve at .*without its Upgrade header/,
  );
  // Without session routes (or from an older tool), no such table.
  assert.ok(!renderStatus(STATUS).includes("session transports"));
});
