import assert from "node:assert/strict";
import { type ConfigContext, parseConfig } from "../lib/config/grammar.ts";
import { parseFingerprint } from "../lib/config/options.ts";
import { parseProxyUrlText } from "../lib/config/proxy_url.ts";
import { describeRoute } from "../lib/route/types.ts";
import { transportFor } from "../lib/route/transport.ts";
import { wsConnector } from "../lib/proxy/ws_connect.ts";
import { wssDialer } from "../lib/ws/pinned_tls.ts";
import { tcpDialer } from "../lib/net/tcp.ts";
import { tunnelOptionsFrom } from "../lib/cli/flags.ts";

const SECRETS: Record<string, string> = {
  PROXY_PASSWORD: "pr0xy",
  TUNNEL_TOKEN: "t0ken-Value",
};
const CONTEXT: ConfigContext = {
  env: (name) => SECRETS[name],
  readFile: () => {
    throw new Error("no files here");
  },
};

Deno.test("issue #19's line: a chain ending in a wss:// hop, with token= from the environment", () => {
  const { entries, errors } = parseConfig(
    "2222 git.internal 22 http://CORP%5Cjane:${PROXY_PASSWORD}@proxy.corp:3128 wss://tunnel.example.org/t token=${TUNNEL_TOKEN}\n",
    "t.conf",
    CONTEXT,
  );
  assert.deepEqual(errors, []);
  const [entry] = entries;
  assert.deepEqual(entry.route, {
    kind: "chain",
    hops: [
      [{
        scheme: "http",
        host: "proxy.corp",
        port: 3128,
        username: "CORP\\jane",
        password: "pr0xy",
      }],
      [{ scheme: "wss", host: "tunnel.example.org", port: 443, path: "/t" }],
    ],
  });
  assert.equal(entry.options.token, "t0ken-Value");
  const shown = describeRoute(entry.route);
  assert.equal(
    shown,
    "via http://CORP%5Cjane:***@proxy.corp:3128 -> wss://tunnel.example.org:443/t",
  );
  assert.ok(!shown.includes("t0ken"));
});

Deno.test("ws:// and wss:// URLs keep their path and default to ports 80 and 443", () => {
  assert.deepEqual(parseProxyUrlText("ws://tunnel.example.org"), {
    scheme: "ws",
    host: "tunnel.example.org",
    port: 80,
    path: "/",
  });
  assert.deepEqual(parseProxyUrlText("wss://[2001:db8::1]:8443/a/b?x=1"), {
    scheme: "wss",
    host: "2001:db8::1",
    port: 8443,
    path: "/a/b?x=1",
  });
  assert.throws(
    () => parseProxyUrlText("wss://user:pw@tunnel.example.org/t"),
    /takes no user:password: give the server's token with token=/,
  );
  assert.throws(
    () => parseProxyUrlText("wss://h/#frag"),
    /without spaces or #/,
  );
  // The other schemes still take no path.
  assert.throws(
    () => parseProxyUrlText("http://proxy:3128/x"),
    /nothing after them/,
  );
  assert.equal(transportFor("ws").connector, wsConnector);
  assert.equal(transportFor("ws").dialer, tcpDialer);
  assert.equal(transportFor("wss").dialer, wssDialer);
});

Deno.test("heartbeat= and fingerprint= are read; a bad token is refused without being shown", () => {
  const hex =
    "92:54:F2:78:54:02:C6:5B:27:FB:DF:0B:5E:77:E6:6B:F2:51:C2:68:4E:4D:2F:CD:97:A8:D3:66:AF:D3:82:B3";
  const pin = parseFingerprint(`sha256:${hex}`)!;
  assert.equal(pin.length, 32);
  assert.equal(pin[0], 0x92);
  assert.deepEqual(
    parseFingerprint(`SHA256:${hex.replaceAll(":", "").toLowerCase()}`),
    pin,
  );
  const base64 = btoa(String.fromCharCode(...pin));
  assert.deepEqual(parseFingerprint(`sha256:${base64}`), pin);
  assert.deepEqual(parseFingerprint(`sha256:${base64.replace(/=$/, "")}`), pin);
  assert.equal(parseFingerprint("sha256:abcd"), undefined);
  assert.equal(parseFingerprint(hex), undefined);
  const { entries, errors } = parseConfig(
    `2222 h 22 ws://t/x heartbeat=1s fingerprint=sha256:${base64}\n2223 h 22 wss://t/x fingerprint=md5:00\n2224 h 22 wss://t/x token=\${BAD}\n2225 h 22 wss://t/x heartbeat=never`,
    "t.conf",
    { ...CONTEXT, env: (name) => name === "BAD" ? "two words" : undefined },
  );
  assert.equal(entries[0].options.heartbeatMs, 1000);
  assert.deepEqual(entries[0].options.fingerprint, pin);
  assert.deepEqual(errors.map((e) => e.message), [
    "t.conf:2:33: fingerprint=md5:00 is not valid: use sha256: followed by the certificate's SHA-256 in hex or base64 such as sha256:<64 hex digits>",
    "t.conf:3:27: token=… is not valid: use a token of visible ASCII characters without spaces",
    "t.conf:4:31: heartbeat=never is not valid: use a duration such as 30s",
  ]);
  assert.ok(!errors.some((e) => e.message.includes("two words")));
  assert.throws(
    () => tunnelOptionsFrom({ token: "a b" }),
    (error: Error) =>
      !error.message.includes("a b") && /--token/.test(error.message),
  );
  assert.equal(tunnelOptionsFrom({ heartbeat: "5s" }).heartbeatMs, 5000);
});

Deno.test("token=, heartbeat= and fingerprint= on an entry without a ws:// or wss:// hop are refused", () => {
  const { errors } = parseConfig(
    "2222 h 22 http://p:3128 token=${TUNNEL_TOKEN}\n2223 h 22 heartbeat=5s\n",
    "t.conf",
    CONTEXT,
  );
  assert.deepEqual(errors.map((e) => e.message), [
    "t.conf:1:25: option token applies to ws:// and wss:// hops, and this entry has none",
    "t.conf:2:11: option heartbeat applies to ws:// and wss:// hops, and this entry has none",
  ]);
});

Deno.test("transport= is auto, ws or poll, with a suggestion for a typo; --transport too; only on ws:// and wss:// routes", () => {
  const { entries, errors } = parseConfig(
    "2222 h 22 ws://t/x transport=poll\n2223 h 22 wss://t/x transport=ws\n2224 h 22 wss://t/x\n2225 h 22 wss://t/x transport=pol\n2226 h 22 http://p:3128 transport=poll\n",
    "t.conf",
    CONTEXT,
  );
  assert.equal(entries[0].options.transport, "poll");
  assert.equal(entries[1].options.transport, "ws");
  assert.equal(entries[2].options.transport, undefined);
  assert.deepEqual(errors.map((e) => e.message), [
    "t.conf:4:31: transport=pol is not valid: use auto, ws or poll (did you mean transport=poll?)",
    "t.conf:5:25: option transport applies to ws:// and wss:// hops, and this entry has none",
  ]);
  assert.equal(tunnelOptionsFrom({ transport: "auto" }).transport, "auto");
  assert.throws(
    () => tunnelOptionsFrom({ transport: "http" }),
    /--transport/,
  );
});
