import assert from "node:assert/strict";
import { DEFAULT_TUNNEL_OPTIONS } from "../lib/config/options.ts";
import { parseRouteArguments } from "../lib/cli/entry_args.ts";
import {
  DialError,
  ProxyAuthError,
  ProxyProtocolError,
  ProxyRefusedError,
  ProxyTlsError,
  SocksError,
  TimeoutError,
  WsRefusedError,
} from "../lib/errors.ts";
import { diagnose } from "../lib/probe/diagnose.ts";
import { parseSquidError } from "../lib/proxy/squid_error.ts";
import { type ProbeReport, probeRoute } from "../lib/probe/route_probe.ts";
import { freePort, startBannerServer } from "./_util/net.ts";
import {
  IN_CI,
  missing,
  startBlackHole,
  startSquid,
  startSquidWithBasic,
  startTlsFront,
} from "./_util/proxies.ts";
import { TEST_OPTIONS } from "./_util/tool.ts";

const P = "10.1.2.3:3128";

Deno.test("diagnoses: one sentence per failure, saying what to do", () => {
  const ask = { proxy: P, target: "ssh.example.com:22", step: "ask" } as const;
  assert.equal(
    diagnose(
      new ProxyRefusedError(
        P,
        "ssh.example.com:22",
        403,
        "HTTP/1.1 403 Forbidden",
      ),
      ask,
    ),
    "proxy 10.1.2.3:3128 refused CONNECT to port 22 (403 Forbidden): the proxy only allows some ports, ask for 22 or try port 443 on the destination",
  );
  assert.match(
    diagnose(
      new ProxyRefusedError(P, "x:22", 502, "HTTP/1.1 502 Bad Gateway"),
      ask,
    ),
    /could not reach ssh\.example\.com:22 \(502 Bad Gateway\): the destination may be down/,
  );
  assert.match(
    diagnose(
      new ProxyAuthError(
        P,
        "x:22",
        "HTTP/1.1 407 Auth",
        "credentials-needed",
        "NTLM, Basic",
      ),
      ask,
    ),
    /^proxy 10\.1\.2\.3:3128 requires authentication, and no credentials are configured: the proxy offers NTLM, Basic; add user:password to the proxy URL, e\.g\. http:\/\/user:password@10\.1\.2\.3:3128/,
  );
  assert.match(
    diagnose(
      new ProxyAuthError(
        P,
        "x:22",
        "HTTP/1.1 407 Auth",
        "credentials-rejected",
        "NTLM",
      ),
      ask,
    ),
    /rejected the credentials \(NTLM\): check the user name and password; NTLM wants DOMAIN\\user/,
  );
  assert.match(
    diagnose(
      new ProxyAuthError(
        P,
        "x:22",
        "HTTP/1.1 407 Auth",
        "unsupported-scheme",
        "Negotiate",
      ),
      ask,
    ),
    /only authentication this tool does not support \(Negotiate\)/,
  );
  const connect = { proxy: P, target: P, step: "connect" } as const;
  assert.equal(
    diagnose(
      new DialError(P, {
        cause: new Error("Connection refused (os error 111)"),
      }),
      connect,
    ),
    "nothing accepts connections at proxy 10.1.2.3:3128 (connection refused): check the host and port",
  );
  assert.match(
    diagnose(new TimeoutError(`TCP connect to ${P}`, 10_000), connect),
    /^proxy 10\.1\.2\.3:3128 did not accept the connection in time .*: a firewall may drop the traffic/,
  );
  assert.match(
    diagnose(
      new ProxyProtocolError(
        'proxy did not answer with HTTP: got "\u0005\u0000"',
      ),
      ask,
    ),
    /does not speak the expected protocol .*socks5:\/\/ for a SOCKS server/,
  );
  assert.match(
    diagnose(
      new ProxyTlsError(P, {
        cause: new Error("invalid peer certificate: UnknownIssuer"),
      }),
      { proxy: P, target: P, step: "tls" },
    ),
    /TLS certificate of proxy 10\.1\.2\.3:3128 is not trusted .*ca-file=FILE/,
  );
  assert.match(
    diagnose(new Error("getaddrinfo ENOTFOUND proxy.corp"), {
      proxy: "proxy.corp:3128",
      target: "proxy.corp:3128",
      step: "resolve",
    }),
    /does not resolve here: check its spelling/,
  );
});

Deno.test("the README's Troubleshooting table has a row for each of probe's diagnoses", async () => {
  const readme = await Deno.readTextFile(
    new URL("../README.md", import.meta.url),
  );
  const section = readme.slice(readme.indexOf("\n## Troubleshooting\n"));
  assert.ok(section.length > 0, "no Troubleshooting section");
  const table = section.slice(section.indexOf("| `probe` says"));
  // Each row's first cell, "…" standing for any text.
  const rows = table.slice(0, table.indexOf("\n\n")).split("\n").slice(2)
    .map((row) => row.split("|")[1].trim().replaceAll("`", ""))
    .map((cell) =>
      new RegExp(
        cell.split("…").map((part) =>
          part.trim().replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
        ).join(".*"),
      )
    );
  const ask = { proxy: P, target: "ssh.example.com:22", step: "ask" } as const;
  const connect = { proxy: P, target: P, step: "connect" } as const;
  const auth = (failure: ConstructorParameters<typeof ProxyAuthError>[3]) =>
    diagnose(
      new ProxyAuthError(P, "x:22", "HTTP/1.1 407 A", failure, "NTLM"),
      ask,
    );
  const refused = (target: string, status: number, squid?: string) =>
    diagnose(
      new ProxyRefusedError(P, target, status, `HTTP/1.1 ${status} X`, squid),
      { ...ask, target },
    );
  const diagnoses = [
    diagnose(new Error("getaddrinfo ENOTFOUND a"), {
      ...connect,
      step: "resolve",
    }),
    diagnose(
      new DialError(P, { cause: new Error("Connection refused") }),
      connect,
    ),
    diagnose(
      new DialError(P, { cause: new Error("No route to host") }),
      connect,
    ),
    diagnose(new TimeoutError(`TCP connect to ${P}`, 10_000), connect),
    diagnose(new TimeoutError("proxy answer", 10_000), ask),
    auth("credentials-needed"),
    auth("credentials-rejected"),
    auth("negotiate-failed"),
    auth("unsupported-scheme"),
    auth("handshake-failed"),
    refused("ssh.example.com:22", 403),
    refused("ssh.example.com:443", 403),
    refused("ssh.example.com:22", 502),
    refused("ssh.example.com:22", 503, "ERR_CONNECT_FAIL 111"),
    diagnose(
      new ProxyTlsError(P, { cause: new Error("UnknownIssuer") }),
      { ...connect, step: "tls" },
    ),
    diagnose(
      new ProxyTlsError(P, { cause: new Error("received corrupt message") }),
      { ...connect, step: "tls" },
    ),
    diagnose(new ProxyProtocolError("proxy did not answer with HTTP"), ask),
    diagnose(
      new SocksError(`SOCKS5 proxy ${P} rejected the user name or password`),
      ask,
    ),
    diagnose(
      new WsRefusedError("t.example:443/", "x:22", 401, "auth", ""),
      ask,
    ),
  ];
  for (const said of diagnoses) {
    assert.ok(
      rows.some((row) => row.test(said)),
      `no row of the README's Troubleshooting table for: ${said}`,
    );
  }
});

Deno.test("squid's X-Squid-Error in plain words, and in the diagnosis", () => {
  const meaning = (value: string) => parseSquidError(value)?.meaning;
  assert.equal(
    meaning("ERR_CONNECT_FAIL 111"),
    "the proxy could not connect to the destination: connection refused",
  );
  assert.equal(
    meaning("ERR_CONNECT_FAIL 110"),
    "the proxy could not connect to the destination: connection timed out",
  );
  assert.equal(
    meaning("ERR_CONNECT_FAIL 113"),
    "the proxy could not connect to the destination: no route to host",
  );
  assert.equal(
    meaning("ERR_CONNECT_FAIL 101"),
    "the proxy could not connect to the destination: error 101",
  );
  assert.equal(
    meaning("ERR_DNS_FAIL 0"),
    "the proxy could not resolve the destination's name",
  );
  assert.equal(
    meaning("ERR_ACCESS_DENIED 0"),
    "the proxy's access rules deny this request",
  );
  assert.match(meaning("ERR_CACHE_ACCESS_DENIED 0")!, /authenticate/);
  assert.deepEqual(parseSquidError("ERR_SHUTTING_DOWN 0"), {
    raw: "ERR_SHUTTING_DOWN 0",
    code: "ERR_SHUTTING_DOWN",
  });
  assert.equal(parseSquidError("  "), undefined);
  assert.equal(parseSquidError("ERR_X\x1b[2J")!.raw, "ERR_X?[2J");
  assert.equal(parseSquidError("E".repeat(500))!.raw.length, 80);

  const ask = { proxy: P, target: "db.example:5432", step: "ask" } as const;
  const refused = new ProxyRefusedError(
    P,
    "db.example:5432",
    503,
    "HTTP/1.1 503 Service Unavailable",
    "ERR_CONNECT_FAIL 111",
  );
  assert.equal(
    refused.message,
    'Proxy 10.1.2.3:3128 refused CONNECT to db.example:5432: "HTTP/1.1 503 Service Unavailable": the proxy could not connect to the destination: connection refused (ERR_CONNECT_FAIL 111)',
  );
  assert.equal(
    diagnose(refused, ask),
    "proxy 10.1.2.3:3128 could not reach db.example:5432 (503 Service Unavailable): the proxy could not connect to the destination: connection refused; nothing listens on that port there, or the destination is down",
  );
  assert.match(
    diagnose(
      new ProxyRefusedError(
        P,
        "db.example:5432",
        503,
        "HTTP/1.1 503 Service Unavailable",
        "ERR_DNS_FAIL 0",
      ),
      ask,
    ),
    /\(503 Service Unavailable\): the proxy could not resolve the destination's name; check its spelling/,
  );
  assert.equal(
    diagnose(
      new ProxyRefusedError(
        P,
        "db.example:5432",
        403,
        "HTTP/1.1 403 Forbidden",
        "ERR_ACCESS_DENIED 0",
      ),
      ask,
    ),
    "proxy 10.1.2.3:3128 refused CONNECT to port 5432 (403 Forbidden; the proxy's access rules deny this request): the proxy only allows some ports, ask for 5432 or try port 443 on the destination",
  );
});

const noSquid = missing("squid");

async function probe(
  route: string[],
  host: string,
  port: number,
): Promise<ProbeReport[]> {
  return (await probeRoute(
    parseRouteArguments(route),
    { host, port },
    TEST_OPTIONS,
    { noProxy: [] },
  )).paths;
}

Deno.test({
  name:
    "probe: a working route through real squid with Basic, and the SSH banner shown",
  ignore: noSquid || (!IN_CI && missing("htpasswd")),
  async fn() {
    await using squid = await startSquidWithBasic("jane", "s3cret");
    await using ssh = startBannerServer("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n");
    const [report] = await probe(
      [`http://jane:s3cret@127.0.0.1:${squid.port}`],
      "127.0.0.1",
      ssh.port,
    );
    assert.equal(report.ok, true);
    assert.deepEqual(report.steps.map((step) => step.step.split(" ")[0]), [
      "resolve",
      "connect",
      "CONNECT",
      "first",
    ]);
    assert.match(
      report.steps[2].detail,
      /^HTTP\/1\.1 200 Connection established; authentication offered: Basic, used: Basic$/,
    );
    assert.equal(
      report.steps[3].detail,
      'spoke first: "SSH-2.0-OpenSSH_9.2p1 Debian-2"',
    );
    assert.ok(!JSON.stringify(report).includes("s3cret"));
  },
});

Deno.test({
  name:
    "probe: closed proxy port, a port squid denies, wrong credentials, a destination that is down",
  ignore: noSquid || (!IN_CI && missing("htpasswd")),
  async fn() {
    await using squid = await startSquid(
      "acl smtp port 25\nhttp_access deny smtp",
    );
    await using authed = await startSquidWithBasic("jane", "s3cret");
    const closed = freePort();
    const [down] = await probe(
      [`http://127.0.0.1:${closed}`],
      "example.com",
      22,
    );
    assert.equal(down.ok, false);
    assert.match(
      down.diagnosis!,
      new RegExp(
        `^nothing accepts connections at proxy 127\\.0\\.0\\.1:${closed}`,
      ),
    );
    const [denied] = await probe(
      [`http://127.0.0.1:${squid.port}`],
      "127.0.0.1",
      25,
    );
    assert.match(
      denied.diagnosis!,
      /refused CONNECT to port 25 \(403 Forbidden; the proxy's access rules deny this request\): the proxy only allows some ports/,
    );
    const [wrong] = await probe(
      [`http://jane:nope@127.0.0.1:${authed.port}`],
      "127.0.0.1",
      22,
    );
    assert.match(wrong.diagnosis!, /rejected the credentials \(Basic\)/);
    const [unreachable] = await probe(
      [`http://127.0.0.1:${squid.port}`],
      "127.0.0.1",
      freePort(),
    );
    assert.match(
      unreachable.diagnosis!,
      /could not reach 127\.0\.0\.1:\d+ \(503 Service Unavailable\): the proxy could not connect to the destination: connection refused; nothing listens on that port there/,
    );
    assert.match(
      unreachable.steps.at(-1)!.detail,
      /"HTTP\/1\.1 503 Service Unavailable": the proxy could not connect to the destination: connection refused \(ERR_CONNECT_FAIL 111\)$/,
    );
  },
});

Deno.test({
  name:
    "probe: squid timing out on a destination that drops SYNs says so (ERR_CONNECT_FAIL 110)",
  ignore: noSquid || (!IN_CI && missing("python3")),
  async fn() {
    await using hole = await startBlackHole();
    await using squid = await startSquid("connect_timeout 1 second");
    const [report] = await probe(
      [`http://127.0.0.1:${squid.port}`],
      "127.0.0.1",
      hole.port,
    );
    assert.equal(report.ok, false);
    assert.match(
      report.diagnosis!,
      /could not reach 127\.0\.0\.1:\d+ \(503 Service Unavailable\): the proxy could not connect to the destination: connection timed out; a firewall between the proxy and the destination may drop the traffic/,
    );
  },
});

Deno.test({
  name:
    "probe: an https:// proxy with an untrusted certificate, then trusted with its CA",
  ignore: noSquid || (!IN_CI && missing("stunnel4")),
  async fn() {
    await using squid = await startSquid();
    await using front = await startTlsFront(squid.port);
    await using ssh = startBannerServer("SSH-2.0-test\r\n");
    const url = `https://127.0.0.1:${front.port}`;
    const [untrusted] = await probe([url], "127.0.0.1", ssh.port);
    assert.equal(untrusted.ok, false);
    assert.match(
      untrusted.diagnosis!,
      /TLS certificate of proxy 127\.0\.0\.1:\d+ is not trusted .*ca-file=FILE/,
    );
    const [trusted] = (await probeRoute(
      parseRouteArguments([url]),
      { host: "127.0.0.1", port: ssh.port },
      { ...DEFAULT_TUNNEL_OPTIONS, caCerts: [front.caPem] },
      { noProxy: [] },
    )).paths;
    assert.equal(trusted.ok, true, JSON.stringify(trusted));
    assert.match(
      trusted.steps.find((step) => step.step.startsWith("TLS"))!.detail,
      /^certificate CN=127\.0\.0\.1, expires .*\d{4} GMT, trusted$/,
    );
  },
});

Deno.test({
  name:
    "probe: escape sequences in an https:// proxy's certificate subject never reach the terminal",
  ignore: noSquid || (!IN_CI && missing("stunnel4")),
  async fn() {
    await using squid = await startSquid();
    await using front = await startTlsFront(
      squid.port,
      "/O=\x1b]0;pwned\x07\x1b[2J/CN=127.0.0.1",
    );
    await using ssh = startBannerServer("SSH-2.0-test\r\n");
    const [report] = (await probeRoute(
      parseRouteArguments([`https://127.0.0.1:${front.port}`]),
      { host: "127.0.0.1", port: ssh.port },
      { ...DEFAULT_TUNNEL_OPTIONS, caCerts: [front.caPem] },
      { noProxy: [] },
    )).paths;
    const detail = report.steps.find((step) => step.step.startsWith("TLS"))!
      .detail;
    assert.match(detail, /^certificate O=\?\]0;pwned\?\?\[2J, CN=127\.0\.0\.1/);
    // deno-lint-ignore no-control-regex -- control characters are what must not appear
    assert.doesNotMatch(detail, /[\x00-\x1f]/);
  },
});
