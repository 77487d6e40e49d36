/**
 * The proxy failure memory with a hand-driven clock: backoff, what /status
 * shows of each state, recovery, and a new config's fresh backoff.
 */
import assert from "node:assert/strict";
import { DialError } from "../lib/errors.ts";
import { ProxyHealth } from "../lib/route/health.ts";
import type { Proxy } from "../lib/route/types.ts";

const A: Proxy = { scheme: "http", host: "a", port: 3128 };
const B: Proxy = { scheme: "http", host: "b", port: 3128 };
const refused = () =>
  new DialError("a:3128", { cause: new Error("Connection refused") });

Deno.test("a failed proxy is skipped, shown with its reason, retried after its backoff, and forgotten on success", () => {
  let now = Date.UTC(2026, 0, 1);
  const health = new ProxyHealth(1_000, () => now);
  assert.deepEqual(health.view(A), { state: "ok", failures: 0 });
  assert.equal(health.failed(A, refused()), 1_000);
  assert.deepEqual(health.order([A, B]), [B, A]);
  assert.deepEqual(health.view(A), {
    state: "skipped",
    failures: 1,
    skippedUntil: "2026-01-01T00:00:01.000Z",
    reason: "connect",
    error: "Cannot connect to a:3128: Connection refused",
  });
  assert.equal(health.failed(A, refused()), 2_000);
  now += 2_000;
  assert.equal(health.view(A).state, "retrying");
  assert.deepEqual(health.order([A, B]), [A, B]);
  assert.equal(health.succeeded(A), 2, "recovered after two failures");
  assert.deepEqual(health.view(A), { state: "ok", failures: 0 });
  assert.equal(health.succeeded(A), 0, "nothing to recover from");
});

Deno.test("a failure under a new config starts the backoff afresh; one already running is kept", () => {
  let now = 0;
  const health = new ProxyHealth(1_000, () => now);
  health.failed(A, refused());
  health.failed(A, refused());
  assert.equal(health.failed(A, refused()), 4_000);
  health.newConfig();
  assert.equal(health.view(A).state, "skipped", "the running backoff stays");
  now += 4_000;
  assert.equal(health.failed(A, refused()), 1_000, "not 8 s");
  assert.equal(health.failed(A, refused()), 2_000);
});

Deno.test("a long error message is kept bounded, and an unclassified one reads as other", () => {
  const health = new ProxyHealth(1_000, () => 0);
  health.failed(A, new Error("x".repeat(10_000)));
  const view = health.view(A);
  assert.equal(view.reason, "other");
  assert.ok((view.error ?? "").length <= 300);
});
