import assert from "node:assert/strict";
import { SourceIndex } from "../lib/config/entry.ts";
import { type ConfigContext, parseConfig } from "../lib/config/grammar.ts";
import { parseProxyUrlText } from "../lib/config/proxy_url.ts";
import type { Proxy, Route } from "../lib/route/types.ts";
import { runArgs } from "./_util/tool.ts";

/** The route of an entry with one plain HTTP proxy. */
function viaHttp(proxy: Omit<Proxy, "scheme">): Route {
  return { kind: "chain", hops: [[{ scheme: "http", ...proxy }]] };
}

function entriesOf(text: string) {
  const { entries, errors } = parseConfig(text, "t.conf");
  assert.deepEqual(errors.map((e) => e.message), []);
  return entries;
}

function errorsOf(text: string): string[] {
  return parseConfig(text, "t.conf").errors.map((e) => e.message);
}

Deno.test("the original five-field line is an entry through an HTTP proxy", () => {
  assert.deepEqual(
    entriesOf("2222 ssh.example.com 22 proxy.corp.example 3128\n"),
    [{
      kind: "forward",
      source: { host: "127.0.0.1", port: 2222 },
      destination: { host: "ssh.example.com", port: 22 },
      route: viaHttp({ host: "proxy.corp.example", port: 3128 }),
      options: {},
      line: 1,
    }],
  );
});

Deno.test("the original three-field line is a direct entry", () => {
  assert.deepEqual(entriesOf("5432 db.internal 5432"), [{
    kind: "forward",
    source: { host: "127.0.0.1", port: 5432 },
    destination: { host: "db.internal", port: 5432 },
    route: { kind: "direct" },
    options: {},
    line: 1,
  }]);
});

Deno.test("comments, blank lines, tabs, CRLF and a BOM are accepted", () => {
  const entries = entriesOf(
    "\uFEFF# tunnels\r\n\r\n   \t\r\n1000\tdb\t5432\t# trailing comment\r\n  2000 web 80 proxy 8080\r\n",
  );
  assert.deepEqual(entries.map((e) => [e.line, e.source.port]), [[4, 1000], [
    5,
    2000,
  ]]);
});

Deno.test("sources: bare port binds loopback; host:port and [v6]:port bind as written", () => {
  const entries = entriesOf(
    "1 a 1\n0.0.0.0:2 a 1\n[::]:3 a 1\n[::1]:4 a 1\nlocalhost:5 a 1\n127.0.0.2:6 a 1\n",
  );
  assert.deepEqual(entries.map((e) => e.source), [
    { host: "127.0.0.1", port: 1 },
    { host: "0.0.0.0", port: 2 },
    { host: "::", port: 3 },
    { host: "::1", port: 4 },
    { host: "localhost", port: 5 },
    { host: "127.0.0.2", port: 6 },
  ]);
});

Deno.test("IPv6 destinations and proxies, bare or in brackets", () => {
  const [entry] = entriesOf("22 [2001:DB8::1] 22 ::1 3128");
  assert.equal(
    entry.kind === "forward" && entry.destination.host,
    "2001:db8::1",
  );
  assert.deepEqual(entry.route, viaHttp({ host: "::1", port: 3128 }));
});

Deno.test("proxy URL with percent-decoded credentials", () => {
  const [entry] = entriesOf(
    "22 ssh 22 http://CORP%5Cjane:p%40ss%3Aw0rd@proxy.corp:8080/",
  );
  assert.deepEqual(
    entry.route,
    viaHttp({
      host: "proxy.corp",
      port: 8080,
      username: "CORP\\jane",
      password: "p@ss:w0rd",
    }),
  );
  const [plain] = entriesOf("22 ssh 22 HTTP://[::1]:3128");
  assert.deepEqual(plain.route, viaHttp({ host: "::1", port: 3128 }));
});

Deno.test("every error names file:line:column and what to fix", () => {
  assert.deepEqual(errorsOf("22x host 22"), [
    't.conf:1:1: invalid source port "22x": use a number from 1 to 65535',
  ]);
  assert.deepEqual(errorsOf("\n22 host 0"), [
    't.conf:2:9: invalid destination port "0": use a number from 1 to 65535',
  ]);
  assert.deepEqual(errorsOf("22 host 22 proxy 65536"), [
    't.conf:1:18: invalid proxy port "65536": use a number from 1 to 65535',
  ]);
  assert.deepEqual(errorsOf("22 host"), [
    "t.conf:1:1: expected <source> <destination host> <destination port> [<proxy host> <proxy port> | <proxy URL>[,<alternative>] ... | direct | env] [key=value ...], found 2 fields; or <source> proxy|socks [<route>] for a local proxy",
  ]);
  assert.deepEqual(errorsOf("22 host 22 proxy 3128 extra"), [
    "t.conf:1:23: expected <source> <destination host> <destination port> [<proxy host> <proxy port> | <proxy URL>[,<alternative>] ... | direct | env] [key=value ...], found 6 fields",
  ]);
  assert.deepEqual(errorsOf("22 host 22 proxy"), [
    "t.conf:1:12: expected a proxy URL (http://host:port) or the proxy host followed by its port",
  ]);
  assert.deepEqual(errorsOf("22 host 22 http://proxy:3128 3128"), [
    "t.conf:1:30: a proxy URL already has its port: remove the field after it",
  ]);
  assert.deepEqual(errorsOf("22 host 22 ftp://proxy:21"), [
    't.conf:1:12: unsupported proxy scheme "ftp": use http://, https://, socks5://, socks5h://, ws://, wss://',
  ]);
  assert.deepEqual(errorsOf("22 host 22 http://proxy"), [
    "t.conf:1:19: the proxy URL needs a host and a port and nothing after them: http://host:port",
  ]);
  assert.deepEqual(errorsOf("22 host 22 http://proxy:3128/path"), [
    "t.conf:1:19: the proxy URL needs a host and a port and nothing after them: http://host:port",
  ]);
  assert.deepEqual(errorsOf("1.2.3.4 host 22"), [
    't.conf:1:1: cannot parse source "1.2.3.4": write a port (2222), host:port (0.0.0.0:2222) or [v6]:port ([::1]:2222)',
  ]);
  assert.deepEqual(errorsOf("[::g]:22 host 22"), [
    't.conf:1:1: invalid source address "[::g]": not an IPv6 address',
  ]);
});

Deno.test("host names that could inject text into a CONNECT request are rejected", () => {
  for (
    const host of ["a/b", "a@b", "a%0d", "ex ample", "a..b", "-a", "a\u00e9"]
  ) {
    const errors = errorsOf(`22 ${host} 22`);
    assert.equal(errors.length, 1, host);
  }
  assert.deepEqual(errorsOf("22 evil\rX-Injected:1 22"), [
    "t.conf:1:8: control character in the entry: use spaces or tabs between fields",
  ]);
  assert.deepEqual(errorsOf("22 a\x00b 22"), [
    "t.conf:1:5: control character in the entry: use spaces or tabs between fields",
  ]);
  assert.equal(errorsOf("22 host 22 http://pro\u0000xy:1").length, 1);
});

Deno.test("a password never appears in an error message", () => {
  const errors = errorsOf(
    "22 host 22 http://jane:s3cret%zz@proxy:3128\n23 host 22 ftp://jane:s3cret@proxy:3128\n24 host 22 http://jane:s3cret@proxy:99999\n",
  );
  assert.equal(errors.length, 3);
  for (const error of errors) assert.doesNotMatch(error, /s3cret/);
  assert.match(
    errors[0],
    /^t\.conf:1:19: cannot decode the user name or password/,
  );
});

Deno.test("two entries on the same source address are an error", () => {
  assert.deepEqual(
    errorsOf("2222 a 1\n127.0.0.1:2222 b 2\n0.0.0.0:3333 a 1\n3333 b 2\n"),
    [
      "t.conf:2:1: source 127.0.0.1:2222 is already used by line 1: give each entry its own port",
      "t.conf:4:1: source 127.0.0.1:3333 is already used by line 3: give each entry its own port",
    ],
  );
  assert.equal(errorsOf("127.0.0.1:2222 a 1\n127.0.0.2:2222 b 2\n").length, 0);
});

Deno.test("errors on some lines do not hide the valid ones", () => {
  const { entries, errors } = parseConfig("1 a 1\nbad\n3 c 3\n", "t.conf");
  assert.deepEqual(entries.map((e) => e.line), [1, 3]);
  assert.equal(errors.length, 1);
});

const CONTEXT: ConfigContext = {
  env: (name) =>
    ({
      PROXY_USER: "CORP\\jane",
      PROXY_PASS: "p@ss:w%rd",
      PROXY_HOST: "proxy.corp",
    })[name],
  readFile: (path) => {
    if (path === "creds.txt") return "\nCORP\\jane:s3cret:with:colons\n";
    if (path === "bad.txt") return "no colon here\n";
    throw new Error("No such file or directory");
  },
};

function parseWith(text: string) {
  return parseConfig(text, "t.conf", CONTEXT);
}

Deno.test("${NAME} takes environment variables; a URL's credentials are taken as they are", () => {
  const { entries, errors } = parseWith(
    "22 ssh 22 http://${PROXY_USER}:${PROXY_PASS}@${PROXY_HOST}:3128\n23 ssh 22 ${PROXY_HOST} 3128\n",
  );
  assert.deepEqual(errors, []);
  assert.deepEqual(
    entries[0].route,
    viaHttp({
      host: "proxy.corp",
      port: 3128,
      username: "CORP\\jane",
      password: "p@ss:w%rd",
    }),
  );
  assert.deepEqual(
    entries[1].route,
    viaHttp({ host: "proxy.corp", port: 3128 }),
  );
});

Deno.test("an unset environment variable is an error at its column", () => {
  assert.deepEqual(
    parseWith("22 ssh 22 http://jane:${NOPE}@proxy:3128").errors.map((e) =>
      e.message
    ),
    [
      "t.conf:1:23: environment variable NOPE is not set: set it, or write the value here",
    ],
  );
  assert.deepEqual(parseWith("22 ${NOPE} 22").errors.map((e) => e.message), [
    "t.conf:1:4: environment variable NOPE is not set: set it, or write the value here",
  ]);
  const denied = parseConfig("22 ${X} 22", "t.conf", {
    ...CONTEXT,
    env: () => {
      throw new Error(
        'Requires env access to "X", run again with the --allow-env flag',
      );
    },
  });
  assert.match(
    denied.errors[0].message,
    /^t\.conf:1:4: cannot read environment variable X: Requires env access/,
  );
});

Deno.test("options: auth=basic and credentials=FILE", () => {
  const { entries, errors } = parseWith(
    "22 ssh 22 proxy 3128 auth=basic\n23 ssh 22 http://proxy:3128 credentials=creds.txt auth=basic\n",
  );
  assert.deepEqual(errors, []);
  assert.deepEqual(
    entries[0].route,
    viaHttp({
      host: "proxy",
      port: 3128,
      preemptiveBasic: true,
      auth: "basic",
    }),
  );
  assert.deepEqual(
    entries[1].route,
    viaHttp({
      host: "proxy",
      port: 3128,
      username: "CORP\\jane",
      password: "s3cret:with:colons",
      credentialsFile: "creds.txt",
      preemptiveBasic: true,
      auth: "basic",
    }),
  );
});

Deno.test("option errors point at the option and never show a secret", () => {
  const messages = parseWith(
    "22 ssh 22 proxy 3128 colour=blue\n23 ssh 22 auth=basic\n24 ssh 22 proxy 3128 auth=kerberos\n25 ssh 22 proxy 3128 credentials=missing.txt\n26 ssh 22 proxy 3128 credentials=bad.txt\n",
  ).errors.map((e) => e.message);
  assert.deepEqual(messages, [
    't.conf:1:22: unknown option "colour": the options are connect-timeout, handshake-timeout, idle-timeout, linger-timeout, drain-timeout, max-connections, keepalive, ca-file, token, heartbeat, fingerprint, client-cert, client-key, mux, resume, resume-window, max-streams, transport, auth, credentials, spn-host, pac-timeout, pac-cache, pac-refresh, pac-fallback, credentials-for, direct-for, allow, client-auth',
    "t.conf:2:11: option auth applies to a proxy, and this entry has none",
    "t.conf:3:27: auth=kerberos is not an option: write auth=negotiate|ntlm|digest|basic to answer the proxy with that scheme only (auth=basic also sends it before the proxy asks)",
    "t.conf:4:34: cannot read credentials file missing.txt: No such file or directory",
    "t.conf:5:34: credentials file bad.txt must hold one line user:password",
  ]);
});

Deno.test("routes: chains, alternatives, every scheme, direct and env", () => {
  const { entries, errors } = parseWith(
    "1 d 1 http://a:3128,https://b:443 socks5h://u:p@c:1080 idle-timeout=5m\n" +
      "2 d 2 direct\n3 d 3 env\n4 d 4 socks5://[::1]:1080 credentials=creds.txt\n",
  );
  assert.deepEqual(errors, []);
  const [chain, direct, env, socks] = entries;
  assert.deepEqual(chain.route, {
    kind: "chain",
    hops: [
      [{ scheme: "http", host: "a", port: 3128 }, {
        scheme: "https",
        host: "b",
        port: 443,
      }],
      [{
        scheme: "socks5h",
        host: "c",
        port: 1080,
        username: "u",
        password: "p",
      }],
    ],
  });
  assert.deepEqual(chain.options, { idleTimeoutMs: 300_000 });
  assert.deepEqual(direct.route, { kind: "direct" });
  assert.deepEqual(env.route, { kind: "env" });
  assert.deepEqual(socks.route, {
    kind: "chain",
    hops: [[{
      scheme: "socks5",
      host: "::1",
      port: 1080,
      username: "CORP\\jane",
      password: "s3cret:with:colons",
      credentialsFile: "creds.txt",
    }]],
  });
});

Deno.test("route errors point at the offending token", () => {
  assert.deepEqual(
    parseWith(
      "1 d 1 direct http://p:1\n2 d 2 http://p:1 proxyhost\n3 d 3 http://a:1,ftp://b:2\n4 d 4 env ca-file=nope.pem\n",
    )
      .errors.map((e) => e.message),
    [
      't.conf:1:14: "direct" is the whole route: remove what follows it, or write options as key=value',
      "t.conf:2:18: a chain lists proxy URLs only: write every hop as scheme://host:port",
      't.conf:3:18: unsupported proxy scheme "ftp": use http://, https://, socks5://, socks5h://, ws://, wss://',
      "t.conf:4:19: cannot read CA file nope.pem: No such file or directory",
    ],
  );
});

Deno.test("local proxies: proxy and socks with a route, rules, and the original lines unchanged", () => {
  const [http, socks, forward, direct] = entriesOf(
    "3128 proxy http://u:p@proxy.corp:3128,http://b.corp:3128 direct-for=*.corp,10.0.0.0/8,git.lan:22\n" +
      "0.0.0.0:1080 socks socks5://s.corp:1080 allow=10.1.0.0/16,192.0.2.7 client-auth=me:secret\n" +
      "8080 proxy 3128\n" +
      "1081 socks\n",
  );
  assert.equal(http.kind, "http-proxy");
  assert.deepEqual(http.kind === "http-proxy" && http.directFor, [
    ".corp",
    "10.0.0.0/8",
    "git.lan:22",
  ]);
  assert.equal(http.route.kind === "chain" && http.route.hops[0].length, 2);
  assert.equal(socks.kind, "socks");
  assert.deepEqual(socks.kind === "socks" && socks.allow, [
    "10.1.0.0/16",
    "192.0.2.7",
  ]);
  assert.deepEqual(socks.kind === "socks" && socks.clientCredentials, {
    username: "me",
    password: "secret",
  });
  // A port in the third field keeps the original meaning: a forward to a
  // host named "proxy".
  assert.deepEqual(
    forward.kind === "forward" && forward.destination,
    { host: "proxy", port: 3128 },
  );
  assert.deepEqual([direct.kind, direct.route], ["socks", { kind: "direct" }]);
});

Deno.test("local proxy errors: an open listener without allow=, rules on a forward, bad patterns", () => {
  assert.deepEqual(
    errorsOf(
      "0.0.0.0:3128 proxy http://proxy.corp:3128\n" +
        "2222 host 22 direct-for=.corp\n" +
        "1080 socks allow=10.0.0.0/33\n" +
        "1081 socks client-auth=nocolon\n",
    ),
    [
      "t.conf:1:1: a proxy entry on 0.0.0.0 lets other machines use your proxy credentials: add allow=CIDR,... naming the clients (e.g. allow=10.1.0.0/16), or listen on 127.0.0.1",
      "t.conf:2:14: option direct-for applies to local proxies (<source> proxy|socks <route>), and this entry is a fixed forward",
      "t.conf:3:18: allow=10.0.0.0/33 is not an address or CIDR range: write e.g. allow=10.1.0.0/16,192.0.2.7",
      "t.conf:4:24: client-auth must be user:password, e.g. client-auth=me:${LOCAL_PROXY_PASSWORD}",
    ],
  );
});

Deno.test("a password written without @host:port is never shown: config, --proxy and HTTPS_PROXY", async () => {
  const [error] = errorsOf("2222 host 22 http://jane:S3cret\n");
  assert.match(error, /^t\.conf:1:26: invalid proxy port \(not shown/);
  assert.doesNotMatch(error, /S3cret/);
  assert.throws(
    () => parseProxyUrlText("http://jane:S3cret"),
    (thrown: Error) =>
      /invalid proxy port/.test(thrown.message) &&
      !thrown.message.includes("S3cret"),
  );
  const run = await new Deno.Command(Deno.execPath(), {
    args: runArgs(["probe", "h", "22", "--proxy", "http://jane:S3cret"]),
    env: { HTTPS_PROXY: "http://jane:S3cret" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const output = new TextDecoder().decode(run.stdout) +
    new TextDecoder().decode(run.stderr);
  assert.equal(run.code, 2);
  assert.doesNotMatch(output, /S3cret/);
  assert.match(output, /HTTPS_PROXY is not a proxy URL: invalid proxy port/);
  assert.match(output, /--proxy: invalid proxy port/);
});

Deno.test("source clashes: same address and port, or a wildcard on either side; checked per port", () => {
  const index = new SourceIndex();
  const [a, b, wild, other] = entriesOf(
    "127.0.0.1:80 a 1\n127.0.0.2:80 b 1\n0.0.0.0:81 c 1\n127.0.0.1:82 d 1\n",
  );
  for (const entry of [a, b, wild, other]) {
    assert.equal(index.clash(entry), undefined);
    index.add(entry);
  }
  const [again, onWildcardPort, wildcardOverTaken, freshPort] = [
    "127.0.0.1:80 e 1",
    "127.0.0.9:81 f 1",
    "[::]:80 g 1",
    "127.0.0.1:83 h 1",
  ].map((line) => entriesOf(line)[0]);
  assert.equal(index.clash(again), a);
  assert.equal(index.clash(onWildcardPort), wild);
  assert.equal(index.clash(wildcardOverTaken), a);
  assert.equal(index.clash(freshPort), undefined);
});

Deno.test("credentials that would break a header are refused at config time: control characters, oversize", () => {
  const long = "p".repeat(5000);
  const errors = errorsOf(
    "22 h 22 http://bob%0D%0AX-Injected:%20yes:pw@proxy:3128\n" +
      `23 h 22 http://jane:${long}@proxy:3128\n` +
      "24 h 22 http://proxy:3128 auth=basic\n",
  );
  assert.deepEqual(errors, [
    "t.conf:1:16: the user name or password holds a control character (such as %0D or %0A): remove it",
    "t.conf:2:21: the user name or password is longer than 1024 characters",
  ]);
  assert.ok(errors.every((error) => !error.includes(long)));
});

Deno.test("spn-host=canonical marks the route's HTTP proxies; other values are refused", () => {
  const [entry] = entriesOf(
    "22 h 22 http://proxy:3128 socks5://s:1080 spn-host=canonical\n",
  );
  assert.deepEqual(
    entry.route.kind === "chain" &&
      entry.route.hops.map((hop) => hop[0].spnHost),
    ["canonical", undefined],
  );
  assert.match(
    errorsOf("22 h 22 http://proxy:3128 spn-host=reverse\n")[0],
    /spn-host=reverse is not an option: write spn-host=as-written/,
  );
});
