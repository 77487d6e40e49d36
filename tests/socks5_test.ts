import assert from "node:assert/strict";
import {
  SOCKS_REPLIES,
  socksConnectRequest,
  socksGreeting,
  socksReplyLength,
  socksUserPass,
} from "../lib/proxy/socks5.ts";
import { ProxyProtocolError } from "../lib/errors.ts";

Deno.test("greeting offers no-auth, and username/password when credentials are set", () => {
  assert.deepEqual([...socksGreeting(false)], [5, 1, 0]);
  assert.deepEqual([...socksGreeting(true)], [5, 2, 0, 2]);
});

Deno.test("username/password request (RFC 1929), UTF-8, length-limited", () => {
  assert.deepEqual([...socksUserPass({ username: "jo", password: "pä" })], [
    1,
    2,
    0x6a,
    0x6f,
    3,
    0x70,
    0xc3,
    0xa4,
  ]);
  assert.throws(() =>
    socksUserPass({ username: "x".repeat(256), password: "" })
  );
});

Deno.test("CONNECT requests for IPv4, IPv6 and domain names", () => {
  assert.deepEqual([
    ...socksConnectRequest({ type: "ipv4", address: "10.1.2.3" }, 22),
  ], [
    5,
    1,
    0,
    1,
    10,
    1,
    2,
    3,
    0,
    22,
  ]);
  assert.deepEqual([
    ...socksConnectRequest({ type: "ipv6", address: "2001:db8::1" }, 443),
  ], [
    5,
    1,
    0,
    4,
    0x20,
    0x01,
    0x0d,
    0xb8,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0x01,
    1,
    187,
  ]);
  assert.deepEqual([
    ...socksConnectRequest({ type: "domain", name: "ab.c" }, 8080),
  ], [
    5,
    1,
    0,
    3,
    4,
    0x61,
    0x62,
    0x2e,
    0x63,
    0x1f,
    0x90,
  ]);
});

Deno.test("reply lengths by address type; not SOCKS5 is a protocol error", () => {
  assert.equal(socksReplyLength(Uint8Array.of(5, 0, 0)), undefined);
  assert.equal(socksReplyLength(Uint8Array.of(5, 0, 0, 1)), 10);
  assert.equal(socksReplyLength(Uint8Array.of(5, 0, 0, 4)), 22);
  assert.equal(socksReplyLength(Uint8Array.of(5, 0, 0, 3)), undefined);
  assert.equal(socksReplyLength(Uint8Array.of(5, 0, 0, 3, 9)), 16);
  assert.throws(
    () => socksReplyLength(Uint8Array.of(72, 84, 84, 80)),
    ProxyProtocolError,
  );
});

Deno.test("every reply code has a meaning for the log", () => {
  for (let code = 1; code <= 8; code++) assert.ok(SOCKS_REPLIES[code]);
});
