import assert from "node:assert/strict";
import {
  DialError,
  ProxyAuthError,
  ProxyProtocolError,
  ProxyRefusedError,
  ProxyTlsError,
  routeFailure,
  SocksError,
  TimeoutError,
} from "../lib/errors.ts";
import { failureReason } from "../lib/observe/metrics.ts";

const P = "proxy.example:3128";

Deno.test("route errors say their metric reason and whether another proxy may do better", () => {
  const cases = [
    [new DialError(P), "connect", true, false],
    [new TimeoutError(`CONNECT via ${P}`, 1000), "timeout", true, false],
    [
      new ProxyRefusedError(P, "x:22", 403, "HTTP/1.1 403 Forbidden"),
      "refused",
      false,
      false,
    ],
    [
      new ProxyRefusedError(P, "x:22", 502, "HTTP/1.1 502 Bad Gateway"),
      "refused",
      true,
      true,
    ],
    [
      new ProxyAuthError(
        P,
        "x:22",
        "HTTP/1.1 407 x",
        "credentials-rejected",
        "Basic",
      ),
      "auth",
      false,
      false,
    ],
    [
      new SocksError("rejected the user name or password"),
      "refused",
      false,
      false,
    ],
    [new SocksError("not allowed", { reply: 2 }), "refused", false, false],
    [new SocksError("host unreachable", { reply: 4 }), "refused", true, true],
    [
      new ProxyTlsError(P, { cause: new Error("UnknownIssuer") }),
      "tls",
      true,
      false,
    ],
    [new ProxyProtocolError("not HTTP"), "protocol", true, false],
  ] as const;
  for (const [error, reason, proxyFault, unreachable] of cases) {
    assert.equal(failureReason(error), reason, error.message);
    assert.equal(error.proxyFault, proxyFault, error.message);
    assert.equal(error.unreachable, unreachable, error.message);
    assert.equal(routeFailure(error), error);
  }
  assert.equal(failureReason(new Error("something else")), "other");
  assert.equal(routeFailure("a string"), undefined);
});

Deno.test("a tunnel server's refused certificate: the message names the server, and for a pin mismatch says interception may be why, not ca-file=", () => {
  const unknown = new ProxyTlsError(P, {
    cause: new Error("invalid peer certificate: UnknownIssuer"),
    peer: "tunnel server",
  });
  assert.ok(unknown.untrusted);
  assert.ok(
    unknown.message.startsWith(`TLS with tunnel server ${P} failed: `),
    unknown.message,
  );
  assert.match(unknown.message, /fingerprint=.*ca-file=.*intercepts TLS/);
  const pinned = new ProxyTlsError(P, {
    cause: new Error(
      "the server's certificate (sha256:00) is not the one fingerprint= pins",
    ),
    peer: "tunnel server",
    pinMismatch: true,
  });
  assert.ok(pinned.untrusted);
  assert.match(pinned.message, /pin its new fingerprint; .*intercepts TLS/);
  assert.doesNotMatch(pinned.message, /ca-file/);
  assert.equal(pinned.peer, "tunnel server");
});

Deno.test("an untrusted proxy certificate is told apart and its message says how to trust it", () => {
  const untrusted = new ProxyTlsError(P, {
    cause: new Error("invalid peer certificate: UnknownIssuer"),
  });
  assert.ok(untrusted.untrusted);
  assert.match(untrusted.message, /ca-file=FILE/);
  const other = new ProxyTlsError(P, {
    cause: new Error("received corrupt message"),
  });
  assert.ok(!other.untrusted);
  assert.doesNotMatch(other.message, /ca-file/);
});
