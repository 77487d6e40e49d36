import assert from "node:assert/strict";
import { usesSession } from "../lib/route/dial.ts";
import {
  RECONNECT_BASE_MS,
  RECONNECT_MAX_MS,
  reconnectDelay,
} from "../lib/route/session_pool.ts";
import type { Hop } from "../lib/route/types.ts";

Deno.test("reconnect delays double from the base up to the cap, half of each random", () => {
  assert.equal(reconnectDelay(1, 0), RECONNECT_BASE_MS / 2);
  assert.equal(reconnectDelay(1, 0.999999), RECONNECT_BASE_MS);
  assert.equal(reconnectDelay(3, 0), 2 * RECONNECT_BASE_MS);
  assert.equal(reconnectDelay(4, 0.5), 6 * RECONNECT_BASE_MS);
  assert.equal(reconnectDelay(40, 0), RECONNECT_MAX_MS / 2);
  assert.equal(reconnectDelay(1000, 0.999999), RECONNECT_MAX_MS);
});

Deno.test("a chain goes over a session when its last hop, and only that one, is a ws:// or wss:// server", () => {
  const http: Hop = [{ scheme: "http", host: "squid", port: 3128 }];
  const ws: Hop = [{ scheme: "ws", host: "far", port: 80, path: "/" }];
  const wss: Hop = [
    { scheme: "wss", host: "a", port: 443, path: "/t" },
    { scheme: "wss", host: "b", port: 443, path: "/t" },
  ];
  assert.equal(usesSession([ws], {}), true);
  assert.equal(usesSession([http, wss], {}), true);
  assert.equal(usesSession([http, ws], { mux: false }), true);
  assert.equal(usesSession([http, ws], { resume: false }), true);
  assert.equal(usesSession([http, ws], { mux: false, resume: false }), false);
  assert.equal(usesSession([http], {}), false);
  assert.equal(usesSession([ws, http], {}), false);
  assert.equal(usesSession([ws, wss], {}), false);
  assert.equal(usesSession([[...http, ...ws]], {}), false);
});
