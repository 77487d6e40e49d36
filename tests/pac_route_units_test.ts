/**
 * The pure parts of pac= routes: the DNS bridge's shared-memory protocol,
 * the URL a PAC is shown, WPAD candidates, the credentials rule, and the
 * config grammar of pac= and its options.
 */
import assert from "node:assert/strict";
import { type ConfigContext, parseConfig } from "../lib/config/grammar.ts";
import { NO_ENVIRONMENT } from "../lib/config/expand.ts";
import {
  awaitAnswer,
  newBridgeBuffer,
  readQuestion,
  writeAnswer,
  writeQuestion,
} from "../lib/route/pac/dns_bridge.ts";
import {
  devolve,
  dnsSuffixes,
  pacCandidates,
} from "../lib/route/pac/discover.ts";
import { parseDefaultRoute, systemLookups } from "../lib/route/pac/lookups.ts";
import {
  alternativeRoutes,
  credentialHosts,
  proxyFor,
  UnsupportedAlternativeError,
} from "../lib/route/pac/proxies.ts";
import { requestQuery, tunnelQuery } from "../lib/route/pac/url.ts";
import { describeRoute, type PacRoute } from "../lib/route/types.ts";
import { routeFor } from "../lib/local/rules.ts";

Deno.test("dns bridge: a question and its answer cross the buffer", () => {
  const buffer = newBridgeBuffer();
  assert.equal(readQuestion(buffer), undefined);
  const sequence = writeQuestion(buffer, "resolveIpv4", "intranet.example");
  assert.deepEqual(readQuestion(buffer), {
    sequence,
    operation: "resolveIpv4",
    host: "intranet.example",
  });
  assert.equal(writeAnswer(buffer, sequence, ["10.1.2.3", "10.1.2.4"]), true);
  assert.deepEqual(awaitAnswer(buffer, sequence, 0), ["10.1.2.3", "10.1.2.4"]);
  assert.equal(readQuestion(buffer), undefined);
});

Deno.test("dns bridge: an answer after the Worker gave up is dropped", () => {
  const buffer = newBridgeBuffer();
  const first = writeQuestion(buffer, "resolveAll", "slow.example");
  // No answer in time: the Worker reads nothing and moves on.
  assert.deepEqual(awaitAnswer(buffer, first, 1), []);
  const second = writeQuestion(buffer, "myAddresses", "");
  assert.notEqual(first, second);
  assert.equal(writeAnswer(buffer, first, ["192.0.2.1"]), false);
  assert.equal(writeAnswer(buffer, second, ["192.0.2.9"]), true);
  assert.deepEqual(awaitAnswer(buffer, second, 0), ["192.0.2.9"]);
});

Deno.test("dns bridge: answers are bounded in count and size; names are cut", () => {
  const buffer = newBridgeBuffer();
  const sequence = writeQuestion(buffer, "resolveAll", "a".repeat(1000));
  assert.equal(readQuestion(buffer)!.host.length, 255);
  const many = Array.from(
    { length: 500 },
    (_, i) => `2001:db8::${i.toString(16)}`,
  );
  writeAnswer(buffer, sequence, many);
  const got = awaitAnswer(buffer, sequence, 0);
  assert.equal(got.length, 32);
  assert.deepEqual(got, many.slice(0, 32));
});

Deno.test("the URL a PAC sees: https://host:port/ for tunnels, the request's URL for plain HTTP", () => {
  assert.deepEqual(tunnelQuery({ host: "SSH.Example.com", port: 22 }), {
    url: "https://ssh.example.com:22/",
    host: "ssh.example.com",
    cacheKey: "https ssh.example.com 22",
  });
  assert.equal(
    tunnelQuery({ host: "example.com", port: 443 }).url,
    "https://example.com/",
  );
  assert.equal(
    tunnelQuery({ host: "2001:db8::1", port: 22 }).url,
    "https://[2001:db8::1]:22/",
  );
  assert.equal(
    tunnelQuery({ host: "2001:db8::1", port: 22 }).host,
    "2001:db8::1",
  );
  const plain = requestQuery("http://intranet:8080/a?b=1#frag", {
    host: "intranet",
    port: 8080,
  });
  assert.deepEqual(plain, {
    url: "http://intranet:8080/a?b=1",
    host: "intranet",
    cacheKey: "http http://intranet:8080/a?b=1",
  });
});

Deno.test("WPAD: suffixes from resolv.conf and the host name, devolved to the organisation, never a TLD", () => {
  const inputs = {
    env: {},
    resolvConf:
      "# generated\nnameserver 10.0.0.1\nsearch dept.corp.example.com corp.example.com\ndomain lab.example.org\n",
    hostname: "pc1.dept.corp.example.com",
  };
  assert.deepEqual(dnsSuffixes(inputs), [
    "dept.corp.example.com",
    "corp.example.com",
    "lab.example.org",
  ]);
  assert.deepEqual(devolve("dept.corp.example.com"), [
    "dept.corp.example.com",
    "corp.example.com",
    "example.com",
  ]);
  assert.deepEqual(devolve("com"), []);
  assert.deepEqual(devolve("corp.example.co.uk"), [
    "corp.example.co.uk",
    "example.co.uk",
  ]);
  assert.deepEqual(devolve("example.co.uk"), ["example.co.uk"]);
  const urls = pacCandidates(inputs);
  assert.deepEqual(urls, [
    "http://wpad.dept.corp.example.com/wpad.dat",
    "http://wpad.corp.example.com/wpad.dat",
    "http://wpad.example.com/wpad.dat",
    "http://wpad.lab.example.org/wpad.dat",
    "http://wpad.example.org/wpad.dat",
  ]);
  assert.ok(urls.every((url) => !/wpad\.(com|org|uk|co\.uk)\//.test(url)));
});

Deno.test("WPAD: PAC_URL, then AUTO_PROXY_URL, come first; a host without a domain gives none", () => {
  assert.deepEqual(
    pacCandidates({
      env: {
        PAC_URL: "http://pac.example/p.pac",
        AUTO_PROXY_URL: "http://a/b",
      },
      hostname: "laptop",
    }),
    ["http://pac.example/p.pac", "http://a/b"],
  );
  assert.deepEqual(pacCandidates({ env: {}, hostname: "laptop" }), []);
});

Deno.test("/proc/net/route: the default route's interface", () => {
  const table =
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
    "docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n" +
    "eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n";
  assert.equal(parseDefaultRoute(table), "eth0");
  assert.equal(
    parseDefaultRoute(table.split("\n").slice(0, 2).join("\n")),
    undefined,
  );
});

Deno.test("lookups: each bounded in time and cached; without leave to read this machine's addresses, loopback and one warning", async () => {
  const asked: string[] = [];
  const warnings: string[] = [];
  const lookups = systemLookups({
    timeoutMs: 100,
    cacheMs: 300,
    resolve: (host, family) => {
      asked.push(`${family} ${host}`);
      return host === "slow.test"
        ? new Promise(() => {})
        : Promise.resolve(host === "fails.test" ? [] : ["10.1.2.3"]);
    },
    addresses: () => undefined,
    log: (_level, message) => warnings.push(message),
  });
  const started = performance.now();
  assert.deepEqual(await lookups.resolveIpv4("slow.test"), []);
  assert.ok(performance.now() - started < 1_000);
  assert.deepEqual(await lookups.resolveIpv4("intranet.test"), ["10.1.2.3"]);
  assert.deepEqual(await lookups.resolveAll("intranet.test"), ["10.1.2.3"]);
  // Within the cache time, neither an answer nor a failure is asked again.
  assert.deepEqual(await lookups.resolveIpv4("intranet.test"), ["10.1.2.3"]);
  assert.deepEqual(await lookups.resolveIpv4("slow.test"), []);
  assert.deepEqual(asked, [
    "4 slow.test",
    "4 intranet.test",
    "0 intranet.test",
  ]);
  await new Promise((resolve) => setTimeout(resolve, 350));
  await lookups.resolveIpv4("intranet.test");
  assert.equal(asked.at(-1), "4 intranet.test");
  assert.equal(asked.length, 4);

  assert.deepEqual(await lookups.myAddresses(), ["127.0.0.1"]);
  await new Promise((resolve) => setTimeout(resolve, 350));
  assert.deepEqual(await lookups.myAddresses(), ["127.0.0.1"]);
  assert.deepEqual(warnings, [
    "a PAC's myIpAddress() answers 127.0.0.1: the tool may not read this machine's addresses (give it --allow-sys=networkInterfaces, as deno task start and the binary have)",
  ]);
});

const CREDENTIALS = { username: "jane", password: "s3cret" };

Deno.test("credentials: only to proxies credentials-for= names", () => {
  const route: PacRoute = {
    kind: "pac",
    source: "corp.pac",
    credentials: CREDENTIALS,
    credentialsFor: ["proxy.corp.example", "10.9.0.0/16"],
  };
  const at = (host: string) =>
    proxyFor(
      { kind: "proxy", scheme: "http", host, port: 3128 },
      route,
      "corp.pac",
    );
  assert.equal(at("proxy.corp.example").password, "s3cret");
  assert.equal(at("a.proxy.corp.example").password, "s3cret");
  assert.equal(at("10.9.1.1").password, "s3cret");
  assert.equal(at("evil.example").password, undefined);
  assert.equal(at("proxy.corp.example.evil.example").password, undefined);
  assert.equal(at("10.8.1.1").username, undefined);
});

Deno.test("credentials: without credentials-for=, a PAC URL's own domain only; a file, none", () => {
  const route: PacRoute = {
    kind: "pac",
    source: "http://wpad.corp.example.com/wpad.dat",
    credentials: CREDENTIALS,
  };
  assert.deepEqual(credentialHosts(route, route.source), ["corp.example.com"]);
  assert.deepEqual(credentialHosts(route, "http://wpad.example.com/wpad.dat"), [
    "example.com",
  ]);
  // Never a bare TLD or public suffix: the PAC server itself only.
  assert.deepEqual(credentialHosts(route, "http://wpad.com/wpad.dat"), [
    "wpad.com",
  ]);
  assert.deepEqual(credentialHosts(route, "http://wpad.co.uk/"), [
    "wpad.co.uk",
  ]);
  assert.deepEqual(credentialHosts(route, "http://127.0.0.1:8080/p.pac"), [
    "127.0.0.1",
  ]);
  assert.deepEqual(credentialHosts(route, "http://pacserver/p.pac"), [
    "pacserver",
  ]);
  assert.deepEqual(
    credentialHosts({ ...route, source: "corp.pac" }, "corp.pac"),
    [],
  );
  const proxy = (host: string) =>
    proxyFor(
      { kind: "proxy", scheme: "https", host, port: 443 },
      route,
      route.source,
    );
  assert.equal(proxy("proxy1.corp.example.com").username, "jane");
  assert.equal(proxy("proxy.elsewhere.example").username, undefined);
});

Deno.test("PAC alternatives: PROXY http, HTTPS https, SOCKS5 socks5h; SOCKS4 refused", () => {
  const route: PacRoute = { kind: "pac", source: "p.pac" };
  assert.deepEqual(
    proxyFor(
      { kind: "proxy", scheme: "socks5", host: "s", port: 1080 },
      route,
      "p.pac",
    ),
    { scheme: "socks5h", host: "s", port: 1080 },
  );
  assert.throws(
    () =>
      proxyFor(
        { kind: "proxy", scheme: "socks4", host: "s", port: 1080 },
        route,
        "p.pac",
      ),
    UnsupportedAlternativeError,
  );
  assert.deepEqual(
    alternativeRoutes(
      [
        { kind: "proxy", scheme: "http", host: "p", port: 3128 },
        { kind: "proxy", scheme: "socks4", host: "s", port: 1080 },
        { kind: "direct" },
      ],
      route,
      "p.pac",
    ).map(describeRoute),
    ["via http://p:3128", "direct"],
  );
});

const FILES: ConfigContext = {
  ...NO_ENVIRONMENT,
  readFile: (path) => {
    if (path === "cred") return "jane:s3cret\n";
    throw new Error("no such file");
  },
};

Deno.test("config: pac= is a route, for forwards and local proxies, with its options", () => {
  const { entries, errors } = parseConfig(
    "2222 ssh.example.com 22 pac=http://wpad.corp/wpad.dat\n" +
      "3128 proxy pac=/etc/httptunneling/corp.pac credentials=cred credentials-for=proxy.corp,10.0.0.0/8 pac-timeout=2s pac-cache=30s pac-refresh=5m pac-fallback=direct\n" +
      "1080 socks pac=auto\n",
    "t.conf",
    FILES,
  );
  assert.deepEqual(errors.map((e) => e.message), []);
  assert.deepEqual(entries[0].route, {
    kind: "pac",
    source: "http://wpad.corp/wpad.dat",
  });
  assert.deepEqual(entries[1].route, {
    kind: "pac",
    source: "/etc/httptunneling/corp.pac",
    credentials: CREDENTIALS,
    credentialsFor: ["proxy.corp", "10.0.0.0/8"],
    timeoutMs: 2000,
    cacheMs: 30000,
    refreshMs: 300000,
    fallback: "direct",
  });
  assert.equal(entries[2].kind, "socks");
  assert.equal(
    describeRoute(entries[0].route),
    "via pac http://wpad.corp/wpad.dat",
  );
});

Deno.test("config: pac= mistakes are located and say what to write", () => {
  const errors = parseConfig(
    [
      "1 h 1 pac=a.pac http://p:3128",
      "2 h 2 pac=",
      "3 h 3 pac=a.pac credentials=cred",
      "4 h 4 pac=a.pac pac-fallback=proxy",
      "5 h 5 http://p:3128 pac-timeout=1s",
      "6 h 6 pac=a.pac auth=basic",
      "7 h 7 pac=a.pac credentials-for=p",
      "8 h 8 pac=a.pac pac-cache=soon",
      "9 h 9 pac=a.pac credentials=cred credentials-for=*",
      "10 h 10 pac=http://jane:pw@wpad/wpad.dat",
    ].join("\n"),
    "t.conf",
    FILES,
  ).errors.map((e) => e.message);
  assert.deepEqual(errors, [
    "t.conf:1:17: pac= is the whole route: the PAC names the proxies; remove what follows it, or write options as key=value",
    "t.conf:2:7: pac= needs a PAC file, an http(s):// URL, or auto",
    "t.conf:3:17: a PAC read from a file can name any proxy: add credentials-for=HOST,... naming the proxies that may receive these credentials (e.g. credentials-for=proxy.corp.example)",
    "t.conf:4:30: pac-fallback=proxy is not an option: write pac-fallback=error (the default: refuse the connection while the PAC cannot answer) or pac-fallback=direct",
    "t.conf:5:21: option pac-timeout applies to a pac= route, and this entry has none",
    "t.conf:6:17: option auth does not apply to pac= routes: the PAC names the proxies, and they get credentials=FILE only",
    "t.conf:7:17: credentials-for= says which proxies get the credentials=FILE of the entry; add credentials=FILE",
    "t.conf:8:27: pac-cache=soon is not valid: use a duration such as 60s",
    "t.conf:9:50: credentials-for= lists the proxy hosts that may receive credentials (names, which match their subdomains, addresses or CIDR ranges) separated by commas, none empty and not *",
    "t.conf:10:13: a pac= URL cannot carry user:password@ (a PAC is fetched without authentication, and the URL is logged): remove it",
  ]);
});

Deno.test("a local proxy's direct-for= applies before its pac= route", () => {
  const { entries } = parseConfig(
    "3128 proxy pac=corp.pac direct-for=*.corp,10.0.0.0/8\n",
    "t.conf",
  );
  const [entry] = entries;
  assert.ok(entry.kind === "http-proxy");
  assert.deepEqual(routeFor(entry, { host: "wiki.corp", port: 443 }), {
    kind: "direct",
  });
  assert.deepEqual(routeFor(entry, { host: "10.2.3.4", port: 22 }), {
    kind: "direct",
  });
  assert.deepEqual(routeFor(entry, { host: "example.com", port: 443 }), {
    kind: "pac",
    source: "corp.pac",
  });
});
