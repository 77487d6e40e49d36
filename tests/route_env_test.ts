import assert from "node:assert/strict";
import { parseProxyUrlText } from "../lib/config/proxy_url.ts";
import {
  bypassesProxy,
  readProxyEnvironment,
  routeFromEnvironment,
} from "../lib/route/env.ts";
import { ProxyHealth } from "../lib/route/health.ts";
import type { Proxy } from "../lib/route/types.ts";

const env = (vars: Record<string, string>) =>
  readProxyEnvironment((name) => vars[name], parseProxyUrlText);

Deno.test("HTTPS_PROXY, then https_proxy, then ALL_PROXY; a URL without scheme is http", () => {
  assert.deepEqual(
    env({ HTTPS_PROXY: "http://a:3128", ALL_PROXY: "socks5://b:1080" }).proxy,
    {
      scheme: "http",
      host: "a",
      port: 3128,
    },
  );
  assert.equal(
    env({ https_proxy: "proxy.corp:8080/" }).proxy?.host,
    "proxy.corp",
  );
  assert.equal(env({ all_proxy: "socks5h://b:1080" }).proxy?.scheme, "socks5h");
  assert.equal(env({}).proxy, undefined);
  assert.throws(
    () => env({ HTTPS_PROXY: "http://a" }),
    /^Error: HTTPS_PROXY is not a proxy URL: /,
  );
});

Deno.test("NO_PROXY like curl: *, suffixes, leading dots, IPs, CIDR ranges, ports", () => {
  const noProxy = env({
    NO_PROXY:
      "internal.example, .corp.example,10.0.0.0/8 ,192.168.1.5, ::1, fd00::/8, git.example:22",
  }).noProxy;
  const bypass = (host: string, port = 443) =>
    bypassesProxy({ host, port }, noProxy);
  assert.ok(bypass("internal.example"));
  assert.ok(bypass("db.internal.example"));
  assert.ok(!bypass("notinternal.example"));
  assert.ok(bypass("corp.example"));
  assert.ok(bypass("a.b.corp.example"));
  assert.ok(bypass("10.200.3.4"));
  assert.ok(!bypass("11.0.0.1"));
  assert.ok(bypass("192.168.1.5"));
  assert.ok(!bypass("192.168.1.6"));
  assert.ok(bypass("::1"));
  assert.ok(bypass("fd12:3456::1"));
  assert.ok(!bypass("fe80::1"));
  assert.ok(bypass("git.example", 22));
  assert.ok(!bypass("git.example", 443));
  assert.ok(bypassesProxy({ host: "anything", port: 1 }, ["*"]));
});

Deno.test("the env route goes direct for NO_PROXY matches and through the proxy otherwise", () => {
  const environment = env({
    HTTPS_PROXY: "http://proxy:3128",
    no_proxy: "localhost",
  });
  assert.deepEqual(
    routeFromEnvironment(environment, { host: "localhost", port: 22 }),
    {
      kind: "direct",
    },
  );
  assert.deepEqual(
    routeFromEnvironment(environment, { host: "example.com", port: 22 }),
    {
      kind: "chain",
      hops: [[{ scheme: "http", host: "proxy", port: 3128 }]],
    },
  );
});

Deno.test("a failed proxy is skipped for a growing, capped backoff, and forgiven on success", () => {
  let now = 0;
  const health = new ProxyHealth(1_000, () => now);
  const a: Proxy = { scheme: "http", host: "a", port: 1 };
  const b: Proxy = { scheme: "http", host: "b", port: 1 };
  assert.deepEqual(health.order([a, b]), [a, b]);
  assert.equal(health.failed(a), 1_000);
  assert.deepEqual(health.order([a, b]), [b, a]);
  now = 1_000;
  assert.deepEqual(
    health.order([a, b]),
    [a, b],
    "tried again after the backoff",
  );
  assert.equal(health.failed(a), 2_000);
  assert.equal(health.failed(a), 4_000);
  for (let i = 0; i < 20; i++) health.failed(a);
  assert.equal(health.failed(a), 300_000, "capped at 5 minutes");
  health.succeeded(a);
  assert.deepEqual(health.order([a, b]), [a, b]);
});
