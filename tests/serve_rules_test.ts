/**
 * The pure parts of `serve` with plain values: the tokens file, allow
 * rules and their matching, the failure rate limiter on a fake clock, the
 * config file, the target header and the site's path check.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  addressRulesCover,
  type AllowRule,
  matchAddress,
  matchName,
  parseAllowList,
  parseAllowRule,
} from "../lib/serve/allow.ts";
import {
  completeSettings,
  mergeSettings,
  parseServeConfig,
} from "../lib/serve/config.ts";
import { FailureLimiter, sourceKey } from "../lib/serve/rate_limit.ts";
import { forwardedClient, parseTarget } from "../lib/serve/server.ts";
import { sitePath } from "../lib/serve/site.ts";
import { SERVE_USAGE_LINES } from "../lib/cli/serve.ts";
import { bearerToken, matchToken, parseTokens } from "../lib/serve/tokens.ts";

const GOOD = "0123456789abcdef0123";

Deno.test("tokens file: names, comments, blank lines, CRLF", () => {
  const { tokens, errors } = parseTokens(
    `# team tokens\r\nalice ${GOOD}\r\n\n  bob   ${GOOD}xyz  \n`,
    "tokens.txt",
  );
  assert.deepEqual(errors, []);
  assert.deepEqual(tokens.map((t) => [t.name, t.line]), [
    ["alice", 2],
    ["bob", 4],
  ]);
  assert.equal(matchToken(tokens, `${GOOD}xyz`), "bob");
  assert.equal(matchToken(tokens, GOOD), "alice");
  assert.equal(matchToken(tokens, `${GOOD}x`), undefined);
  assert.equal(matchToken([], GOOD), undefined);
});

Deno.test("tokens file: short tokens and other mistakes are located, the token not repeated", () => {
  const { tokens, errors } = parseTokens(
    [
      "alice short-token",
      "bob",
      `carol ${GOOD} extra`,
      `alice ${GOOD}`,
      `dave ${GOOD}`,
      `bad/name ${GOOD}0`,
      `erin ${GOOD}"x`,
    ].join("\n"),
    "tokens.txt",
  );
  assert.deepEqual(tokens.map((t) => t.name), ["alice"]);
  const messages = errors.map((e) => e.message);
  assert.equal(messages.length, 6);
  assert.match(
    messages[0],
    /^tokens\.txt:1:7: the token of "alice" has 11 characters; use at least 16/,
  );
  assert.match(messages[1], /^tokens\.txt:2:1: expected NAME TOKEN/);
  assert.match(
    messages[2],
    /^tokens\.txt:3:\d+: expected NAME TOKEN: .*more than two/,
  );
  assert.match(
    messages[3],
    /^tokens\.txt:5:6: the token of "dave" is the same as on line 4/,
  );
  assert.match(messages[4], /^tokens\.txt:6:1: a token's name/);
  assert.match(messages[5], /^tokens\.txt:7:6: the token of "erin" must be/);
  for (const message of messages) {
    assert.doesNotMatch(message, /short-token|0123456789abcdef/);
  }
});

Deno.test("bearer token from the Authorization header", () => {
  assert.equal(bearerToken(`Bearer ${GOOD}`), GOOD);
  assert.equal(bearerToken(`bearer  ${GOOD} `), GOOD);
  assert.equal(bearerToken(`Basic ${GOOD}`), undefined);
  assert.equal(bearerToken(null), undefined);
  assert.equal(bearerToken(`Bearer ${"a".repeat(2000)}`), undefined);
});

function rules(text: string): AllowRule[] {
  const parsed = parseAllowList(text);
  if (typeof parsed === "string") throw new Error(parsed);
  return parsed;
}

Deno.test("allow rules: names, wildcards, CIDR v4 and v6, port ranges", () => {
  const list = rules(
    "git.internal:22,*.db.internal:5432-5439,10.0.0.0/8:*,[fd00::/8]:443,192.0.2.7:80",
  );
  assert.equal(matchName(list, "git.internal", 22)?.text, "git.internal:22");
  assert.equal(matchName(list, "GIT.internal.", 22)?.text, "git.internal:22");
  assert.equal(matchName(list, "git.internal", 23), undefined);
  assert.equal(
    matchName(list, "a.db.internal", 5439)?.text,
    "*.db.internal:5432-5439",
  );
  assert.equal(
    matchName(list, "a.b.db.internal", 5432)?.text,
    "*.db.internal:5432-5439",
  );
  assert.equal(matchName(list, "db.internal", 5432), undefined);
  assert.equal(matchName(list, "evildb.internal", 5432), undefined);
  assert.equal(matchName(list, "a.db.internal", 5440), undefined);
  assert.equal(matchAddress(list, "10.200.0.1", 1)?.text, "10.0.0.0/8:*");
  assert.equal(
    matchAddress(list, "::ffff:10.0.0.1", 65535)?.text,
    "10.0.0.0/8:*",
  );
  assert.equal(matchAddress(list, "11.0.0.1", 22), undefined);
  assert.equal(matchAddress(list, "fd12::1", 443)?.text, "[fd00::/8]:443");
  assert.equal(matchAddress(list, "fe80::1", 443), undefined);
  assert.equal(matchAddress(list, "fd12::1", 444), undefined);
  assert.equal(matchAddress(list, "192.0.2.7", 80)?.text, "192.0.2.7:80");
  assert.equal(matchAddress(list, "192.0.2.8", 80), undefined);
  // Names never match address rules by their text.
  assert.equal(matchName(list, "10.0.0.1", 22), undefined);
  assert.equal(addressRulesCover(list, 9999), true);
  assert.equal(addressRulesCover(rules("git.internal:22,[::1]:80"), 22), false);
  const any = rules("*:443");
  assert.equal(matchName(any, "example.com", 443)?.text, "*:443");
  assert.equal(matchAddress(any, "203.0.113.1", 443)?.text, "*:443");
  assert.equal(matchAddress(any, "203.0.113.1", 80), undefined);
});

Deno.test("allow rules: mistakes say what to write", () => {
  for (
    const [text, pattern] of [
      ["git.internal", /not an allow rule: write HOST:PORTS/],
      ["git.internal:0", /ports must be/],
      ["git.internal:5439-5432", /ports must be/],
      ["git.internal:70000", /ports must be/],
      ["10.0.0.0/33:22", /prefix length must be 0-32/],
      ["[fd00::/129]:22", /prefix length must be 0-128/],
      ["fd00::1:22", /not an allow rule/],
      ["[10.0.0.1]:22", /brackets/],
      ["a*b.internal:22", /host must be/],
      ["*.:22", /host must be/],
    ] as const
  ) {
    const rule = parseAllowRule(text);
    assert.equal(typeof rule, "string", text);
    assert.match(rule as string, pattern);
  }
  assert.equal(
    (parseAllowRule("10.1.2.3/8:22") as AllowRule).host.kind,
    "cidr",
  );
});

Deno.test("rate limiter: 10 failures in a minute block for a minute; bounded table", () => {
  let now = 0;
  const limiter = new FailureLimiter({ now: () => now, maxSources: 3 });
  for (let i = 1; i < 10; i++) assert.equal(limiter.failed("a"), false);
  assert.equal(limiter.blocked("a"), false);
  assert.equal(limiter.failed("a"), true);
  assert.equal(limiter.blocked("a"), true);
  now = 59_999;
  assert.equal(limiter.blocked("a"), true);
  now = 60_000;
  assert.equal(limiter.blocked("a"), false);
  // Failures spread over more than a window never block.
  for (let i = 0; i < 30; i++) {
    now += 7_000;
    limiter.failed("b");
  }
  assert.equal(limiter.blocked("b"), false);
  for (const key of ["c", "d", "e", "f"]) limiter.failed(key);
  assert.ok(limiter.size <= 3);
});

Deno.test("rate limiter keys: IPv4 itself, IPv6 by /64, mapped IPv4 as IPv4", () => {
  assert.equal(sourceKey("192.0.2.7"), "192.0.2.7");
  assert.equal(sourceKey("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
  assert.equal(sourceKey("::ffff:192.0.2.7"), "192.0.2.7");
});

Deno.test("serve config file: keys, errors located, merged over the command line", () => {
  const { settings, errors } = parseServeConfig(
    [
      "# far end",
      "tokens tokens.txt",
      "allow git.internal:22,*.db.internal:5432",
      "allow 10.0.0.0/8:22   # comment",
      "max-tunnels 50",
      "connect-timeout 3s",
    ].join("\n"),
    "/etc/ht/serve.conf",
  );
  assert.deepEqual(errors, []);
  assert.equal(settings.tokensFile, "/etc/ht/tokens.txt");
  assert.deepEqual(settings.allow?.map((r) => r.text), [
    "git.internal:22",
    "*.db.internal:5432",
    "10.0.0.0/8:22",
  ]);
  assert.equal(settings.maxTunnels, 50);
  assert.equal(settings.connectTimeoutMs, 3000);
  const merged = completeSettings(
    mergeSettings({ allow: rules("x.internal:1"), maxTunnels: 5 }, settings),
  );
  assert.ok(!Array.isArray(merged));
  assert.equal(merged.allow.length, 3);
  assert.equal(merged.maxTunnels, 50);

  const bad = parseServeConfig(
    "alow x:22\nallow nope\nmax-tunnels 0\nconnect-timeout soon\ntokens\n",
    "serve.conf",
  ).errors.map((e) => e.message);
  assert.deepEqual(bad.map((m) => m.split(": ")[0]), [
    "serve.conf:1:1",
    "serve.conf:2:7",
    "serve.conf:3:13",
    "serve.conf:4:17",
    "serve.conf:5:1",
  ]);
  assert.match(bad[0], /did you mean allow\?/);
});

Deno.test("no allow rule and no tokens file: the server refuses to start", () => {
  const missing = completeSettings({});
  assert.ok(Array.isArray(missing));
  assert.equal(missing.length, 2);
  assert.match(
    missing[1],
    /no allow rule: serve refuses to start as an open relay/,
  );
  assert.ok(Array.isArray(completeSettings({ tokensFile: "t", allow: [] })));
});

Deno.test("target header: host:port and [v6]:port only", () => {
  assert.deepEqual(parseTarget("git.internal:22"), {
    host: "git.internal",
    port: 22,
  });
  assert.deepEqual(parseTarget("[::1]:80"), { host: "::1", port: 80 });
  assert.deepEqual(parseTarget("10.0.0.1:5432"), {
    host: "10.0.0.1",
    port: 5432,
  });
  for (
    const bad of [
      null,
      "",
      "git.internal",
      "::1:80",
      "[10.0.0.1]:1",
      "a b:22",
      "x:0",
      "x:65536",
      "x\r\n:1",
    ]
  ) {
    assert.equal(parseTarget(bad), undefined, String(bad));
  }
});

Deno.test("site paths: decoded segments; .., encoded slashes and NUL refused", () => {
  assert.deepEqual(sitePath("/"), []);
  assert.deepEqual(sitePath("/docs/a%20b.html"), ["docs", "a b.html"]);
  for (
    const bad of [
      "/..",
      "/a/../b",
      "/%2e%2e/etc/passwd",
      "/a%2f..%2f..%2fetc",
      "/a%5c..",
      "/a%00",
      "/%E0%A4%A",
    ]
  ) {
    assert.equal(sitePath(bad), undefined, bad);
  }
});

Deno.test("X-Forwarded-For is believed only from trusted proxies, from the right", () => {
  const trusted = (address: string) =>
    address === "127.0.0.1" || address.startsWith("10.");
  assert.equal(
    forwardedClient("127.0.0.1", "203.0.113.9", trusted),
    "203.0.113.9",
  );
  assert.equal(
    forwardedClient(
      "127.0.0.1",
      "198.51.100.1, 203.0.113.9, 10.0.0.2",
      trusted,
    ),
    "203.0.113.9",
  );
  assert.equal(
    forwardedClient("192.0.2.1", "203.0.113.9", trusted),
    "192.0.2.1",
  );
  assert.equal(forwardedClient("127.0.0.1", null, trusted), "127.0.0.1");
  assert.equal(
    forwardedClient("127.0.0.1", "junk, 10.0.0.3", trusted),
    "10.0.0.3",
  );
  assert.equal(
    forwardedClient("127.0.0.1", "[2001:db8::1]", trusted),
    "2001:db8::1",
  );
});

Deno.test("README: the serve option table names every flag serve --help lists", async () => {
  const readme = await Deno.readTextFile(
    new URL("../README.md", import.meta.url),
  );
  const section = readme.slice(
    readme.indexOf("| option of `serve`"),
    readme.indexOf("**Tokens file.**"),
  );
  for (const { name } of SERVE_USAGE_LINES) {
    const flag = name.split(" ")[0];
    assert.ok(
      section.includes(`\`${flag}`),
      `${flag} is missing from the README`,
    );
  }
});
