/**
 * pac= routes in real processes: a real-world-shaped PAC choosing per
 * connection between direct and a real squid, failover over two PROXY
 * results, a PAC served over HTTP and refreshed, a hostile PAC contained
 * in a running tool, and the `pac`, `check` and `probe` commands.
 */
import assert from "node:assert/strict";
import { squidAccessLog, squidLogged } from "./_util/local.ts";
import {
  bytes,
  eventually,
  freePort,
  readExactly,
  text,
  within,
  writeAll,
} from "./_util/net.ts";
import { curl } from "./_util/clients.ts";
import { startHttpOrigin } from "./_util/origins.ts";
import {
  missing,
  startSquid,
  startSquidWithBasic,
  startTlsFront,
} from "./_util/proxies.ts";
import {
  childPids,
  cpuSeconds,
  ROOT,
  runArgs,
  startRun,
  tempConfig,
  tool,
  waitForLog,
} from "./_util/tool.ts";

/**
 * Run from source, the PAC Worker's code must be readable besides the
 * working directory (a compiled binary carries it), and the PAC sandbox
 * process is `deno` itself.
 */
const READ_SOURCE = [`--allow-read=.,${ROOT}`, "--allow-run=deno"];

async function runTool(args: string[], cwd: string) {
  const { code, stdout, stderr } = await tool(args, cwd, {}, READ_SOURCE)
    .output();
  return { code, stdout: text(stdout), stderr: text(stderr) };
}

/** An echo server on another loopback address, 127.0.0.x. */
function startEchoOn(hostname: string) {
  const listener = Deno.listen({ hostname, port: 0 });
  const conns = new Set<Deno.Conn>();
  const loop = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      (async () => {
        const buffer = new Uint8Array(4096);
        try {
          while (true) {
            const n = await conn.read(buffer);
            if (n === null) break;
            await writeAll(conn, buffer.subarray(0, n));
          }
        } catch { /* closed */ }
        conns.delete(conn);
        try {
          conn.close();
        } catch { /* closed */ }
      })();
    }
  })().catch(() => {});
  return {
    port: listener.addr.port,
    async [Symbol.asyncDispose]() {
      listener.close();
      await loop;
      for (const conn of conns) {
        try {
          conn.close();
        } catch { /* closed */ }
      }
    },
  };
}

async function echoThrough(port: number, word: string): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await writeAll(conn, bytes(word));
    assert.equal(
      text(await within(readExactly(conn, word.length), 10_000, "echo")),
      word,
    );
  } finally {
    conn.close();
  }
}

/**
 * A PAC shaped like a corporation's: several hundred lines of intranet
 * ranges tested with isInNet, domain lists tested with shExpMatch and
 * dnsDomainIs, and working-hours rules with weekdayRange and timeRange
 * that hold at any time. 127.0.0.2 is "intranet"; everything else goes to
 * the proxy.
 */
export function corporatePac(proxy: string): string {
  const lines = [
    "// Generated: a corporate-style PAC for tests.",
    'var PROXY = "PROXY ' + proxy + '";',
    "var INTRANET_NETS = [",
  ];
  for (let i = 0; i < 120; i++) {
    lines.push(`  ["10.${i}.0.0", "255.255.0.0"],`);
  }
  lines.push(
    '  ["172.16.0.0", "255.240.0.0"],',
    '  ["192.168.0.0", "255.255.0.0"],',
  );
  lines.push('  ["127.0.0.2", "255.255.255.255"]', "];");
  lines.push("var DIRECT_DOMAINS = [");
  for (let i = 0; i < 150; i++) lines.push(`  "*.dept${i}.corp.example",`);
  lines.push('  "*.intranet.example"', "];");
  lines.push("var BLOCKED = [");
  for (let i = 0; i < 60; i++) lines.push(`  "ads${i}.example.net",`);
  lines.push('  "tracker.example.net"', "];");
  lines.push(
    "function inIntranet(host) {",
    "  if (!isResolvable(host)) return false;",
    "  var ip = dnsResolve(host);",
    "  for (var i = 0; i < INTRANET_NETS.length; i++) {",
    "    if (isInNet(ip, INTRANET_NETS[i][0], INTRANET_NETS[i][1])) return true;",
    "  }",
    "  return false;",
    "}",
    "function directDomain(host) {",
    "  for (var i = 0; i < DIRECT_DOMAINS.length; i++) {",
    "    if (shExpMatch(host, DIRECT_DOMAINS[i])) return true;",
    "  }",
    '  return dnsDomainIs(host, ".corp.example") && !localHostOrDomainIs(host, "www.corp.example");',
    "}",
    "function FindProxyForURL(url, host) {",
    "  host = host.toLowerCase();",
    '  if (isPlainHostName(host)) return "DIRECT";',
    "  for (var i = 0; i < BLOCKED.length; i++) {",
    '    if (host == BLOCKED[i]) return "PROXY 0.0.0.0:1";',
    "  }",
    '  if (directDomain(host)) return "DIRECT";',
    '  if (inIntranet(host)) return "DIRECT";',
    "  // Working hours and off hours, every day: the same proxy.",
    '  if (weekdayRange("MON", "FRI") && timeRange(0, 23)) return PROXY + "; DIRECT";',
    '  if (weekdayRange("SAT", "SUN") || dateRange(1, 31)) return PROXY + "; DIRECT";',
    "  return PROXY;",
    "}",
  );
  return lines.join("\n") + "\n";
}

Deno.test({
  name:
    "a corporate-shaped PAC sends the intranet host direct and the Internet host through squid, per connection",
  ignore: missing("squid"),
  async fn() {
    await using squid = await startSquid();
    await using intranet = startEchoOn("127.0.0.2");
    await using internet = startEchoOn("127.0.0.3");
    const pac = corporatePac(`127.0.0.1:${squid.port}`);
    assert.ok(pac.split("\n").length > 300);
    const [a, b] = [freePort(), freePort()];
    const dir = await tempConfig(
      `${a} 127.0.0.2 ${intranet.port} pac=corp.pac\n${b} 127.0.0.3 ${internet.port} pac=corp.pac\n`,
    );
    await Deno.writeTextFile(`${dir}/corp.pac`, pac);
    await using run = startRun(dir, [], READ_SOURCE);
    await waitForLog(run.log, /config applied/);
    await echoThrough(a, "intranet");
    await echoThrough(b, "internet");
    await echoThrough(a, "intranet again");
    const log = await squidLogged(squid.dir, /CONNECT 127\.0\.0\.3:/);
    assert.equal(
      log.filter((line) => line.includes("127.0.0.2")).length,
      0,
      "the intranet host went through squid",
    );
    const tool = await Deno.readTextFile(run.log);
    assert.match(tool, /open .*127\.0\.0\.2:\d+ direct \(pac corp\.pac\)/);
    assert.match(
      tool,
      new RegExp(
        `open .*127\\.0\\.0\\.3:\\d+ via http://127\\.0\\.0\\.1:${squid.port} \\(pac corp\\.pac\\)`,
      ),
    );
  },
});

/** A SOCKS5 CONNECT to an IPv4 address, without authentication. */
async function socksConnect(
  port: number,
  host: string,
  hostPort: number,
): Promise<Deno.Conn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await writeAll(conn, new Uint8Array([5, 1, 0]));
    assert.deepEqual(
      [...await within(readExactly(conn, 2), 10_000, "SOCKS method")],
      [5, 0],
    );
    await writeAll(
      conn,
      new Uint8Array([
        5,
        1,
        0,
        1,
        ...host.split(".").map(Number),
        hostPort >> 8,
        hostPort & 0xff,
      ]),
    );
    const reply = await within(readExactly(conn, 10), 10_000, "SOCKS reply");
    assert.equal(reply[1], 0, `SOCKS reply ${reply[1]}`);
    return conn;
  } catch (error) {
    conn.close();
    throw error;
  }
}

/** Sends `word` on an open tunnel and reads it back. */
async function echoOn(conn: Deno.Conn, word: string): Promise<void> {
  await writeAll(conn, bytes(word));
  assert.equal(
    text(await within(readExactly(conn, word.length), 10_000, "echo")),
    word,
  );
}

Deno.test({
  name:
    "one PAC URL, as a company gives it: a local HTTP proxy and a SOCKS entry send the intranet host direct and the Internet host through squid; the PAC sees https://host:port/ for CONNECT and SOCKS",
  ignore: missing("squid"),
  async fn() {
    await using squid = await startSquid();
    await using intranet = startEchoOn("127.0.0.2");
    await using internet = startEchoOn("127.0.0.3");
    // The corporate PAC, and alert() naming the URL each call is shown.
    const pac = corporatePac(`127.0.0.1:${squid.port}`) +
      "var corporate = FindProxyForURL;\n" +
      'FindProxyForURL = function (url, host) { alert("shown " + url); return corporate(url, host); };\n';
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      () => new Response(pac),
    );
    try {
      const [proxy, socks] = [freePort(), freePort()];
      const url = `http://127.0.0.1:${server.addr.port}/wpad.dat`;
      const dir = await tempConfig(
        `${proxy} proxy pac=${url}\n${socks} socks pac=${url}\n`,
      );
      await using run = startRun(dir, [], READ_SOURCE);
      await waitForLog(run.log, /config applied/);
      for (
        const [host, echo] of [
          ["127.0.0.2", intranet],
          ["127.0.0.3", internet],
        ] as const
      ) {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy });
        try {
          await writeAll(
            conn,
            bytes(
              `CONNECT ${host}:${echo.port} HTTP/1.1\r\nHost: ${host}:${echo.port}\r\n\r\n`,
            ),
          );
          const head = text(
            await within(readExactly(conn, 12), 10_000, "answer"),
          );
          assert.equal(head, "HTTP/1.1 200");
          // Skip the rest of the head, then echo.
          let rest = "";
          while (!rest.endsWith("\r\n\r\n")) {
            rest += text(await within(readExactly(conn, 1), 5_000, "head"));
          }
          await echoOn(conn, "ping");
        } finally {
          conn.close();
        }
        const viaSocks = await socksConnect(socks, host, echo.port);
        try {
          await echoOn(viaSocks, "socks ping");
        } finally {
          viaSocks.close();
        }
      }
      const log = await squidLogged(squid.dir, /CONNECT 127\.0\.0\.3:/, 2);
      assert.equal(
        log.filter((line) => line.includes("CONNECT 127.0.0.3:")).length,
        2,
      );
      assert.ok(!log.some((line) => line.includes("127.0.0.2")));
      const tool = await waitForLog(
        run.log,
        /open .*127\.0\.0\.3:\d+ via http:\/\/127\.0\.0\.1:\d+ \(pac http:[^)]*\)[^]*open .*127\.0\.0\.3:\d+ via http:\/\/127\.0\.0\.1:\d+ \(pac http:/,
      );
      for (
        const [host, echo] of [["127.0.0.2", intranet], [
          "127.0.0.3",
          internet,
        ]] as const
      ) {
        assert.match(
          tool,
          new RegExp(
            `alert\\(\\): shown https://${
              host.replaceAll(".", "\\.")
            }:${echo.port}/\n`,
          ),
        );
      }
      assert.equal(
        tool.match(/open .*127\.0\.0\.2:\d+ direct \(pac http:/g)?.length,
        2,
      );
    } finally {
      await server.shutdown();
    }
  },
});

Deno.test({
  name:
    "failover: the PAC's first PROXY is down, the second (squid) carries the tunnel",
  ignore: missing("squid"),
  async fn() {
    await using squid = await startSquid();
    await using echo = startEchoOn("127.0.0.3");
    const dead = freePort();
    const port = freePort();
    const dir = await tempConfig(
      `${port} 127.0.0.3 ${echo.port} pac=two.pac\n`,
    );
    await Deno.writeTextFile(
      `${dir}/two.pac`,
      `function FindProxyForURL(url, host) { return "PROXY 127.0.0.1:${dead}; PROXY 127.0.0.1:${squid.port}"; }\n`,
    );
    await using run = startRun(dir, [], READ_SOURCE);
    await waitForLog(run.log, /config applied/);
    await echoThrough(port, "failover");
    const log = await waitForLog(
      run.log,
      /open .* via http:\/\/127\.0\.0\.1:\d+ \(pac two\.pac\)/,
    );
    assert.match(
      log,
      new RegExp(
        `http://127\\.0\\.0\\.1:${dead} failed .*; trying http://127\\.0\\.0\\.1:${squid.port}`,
      ),
    );
    await squidLogged(squid.dir, /CONNECT 127\.0\.0\.3:/);
  },
});

Deno.test({
  name:
    "a PAC over HTTP is refreshed; a failed refresh keeps the last good script",
  ignore: missing("squid"),
  async fn() {
    await using squid = await startSquid();
    await using echo = startEchoOn("127.0.0.3");
    let served = 'function FindProxyForURL() { return "DIRECT"; }';
    let status = 200;
    let fetches = 0;
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      () => {
        fetches++;
        return new Response(served, { status });
      },
    );
    try {
      const port = freePort();
      const dir = await tempConfig(
        `${port} 127.0.0.3 ${echo.port} pac=http://127.0.0.1:${server.addr.port}/proxy.pac pac-refresh=1s pac-cache=200ms\n`,
      );
      await using run = startRun(dir, [], READ_SOURCE);
      await waitForLog(run.log, /config applied/);
      await echoThrough(port, "first");
      await waitForLog(run.log, /open .* direct \(pac http:/);
      served =
        `function FindProxyForURL() { return "PROXY 127.0.0.1:${squid.port}"; }`;
      await waitForLog(
        run.log,
        /PAC http:\/\/127\.0\.0\.1:\d+\/proxy\.pac changed; reloaded/,
      );
      await eventually(
        async () => {
          await echoThrough(port, "second");
          return (await squidAccessLog(squid.dir)).some((line) =>
            line.includes("CONNECT 127.0.0.3:")
          );
        },
        10_000,
        "a tunnel through squid after the refresh",
      );
      status = 500;
      const before = fetches;
      await waitForLog(
        run.log,
        /the server answered HTTP\/1\.1 500 .*; keeping the last good script/,
      );
      assert.ok(fetches > before);
      const squidLines = (await squidAccessLog(squid.dir)).length;
      await echoThrough(port, "third");
      await squidLogged(squid.dir, /CONNECT 127\.0\.0\.3:/, squidLines + 1);
    } finally {
      await server.shutdown();
    }
  },
});

Deno.test("a PAC that loops for ever: the call is abandoned, its process killed, nothing spins, the entry falls back direct, other entries are unaffected", async () => {
  await using echo = startEchoOn("127.0.0.2");
  const [looping, plain] = [freePort(), freePort()];
  const dir = await tempConfig(
    `${looping} 127.0.0.2 ${echo.port} pac=loop.pac pac-timeout=500ms pac-fallback=direct\n` +
      `${plain} 127.0.0.2 ${echo.port}\n`,
  );
  await Deno.writeTextFile(
    `${dir}/loop.pac`,
    'function FindProxyForURL(url, host) {\n  while (true) {}\n  return "DIRECT";\n}\n',
  );
  await using run = startRun(dir, [], READ_SOURCE);
  await waitForLog(run.log, /config applied/);
  await echoThrough(looping, "fallback");
  await echoThrough(plain, "unaffected");
  const log = await waitForLog(
    run.log,
    /direct \(pac loop\.pac failed; pac-fallback=direct\)/,
  );
  assert.match(
    log,
    /loop\.pac: FindProxyForURL\("https:\/\/127\.0\.0\.2:\d+\/", "127\.0\.0\.2"\) took longer than 500 ms and was abandoned .*; its sandbox process was killed/,
  );
  // The loop died with its process: the tool has no child left, and over
  // two seconds it uses a small share of one core (a spinning thread would
  // use all of it).
  assert.deepEqual(await childPids(run.pid), []);
  const before = await cpuSeconds(run.pid);
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  const used = await cpuSeconds(run.pid) - before;
  assert.ok(used < 0.8, `the tool used ${used} s of CPU in 2 s`);
  await echoThrough(looping, "again");
});

Deno.test("a PAC that cannot answer refuses the connection by default (pac-fallback=error)", async () => {
  await using echo = startEchoOn("127.0.0.2");
  const port = freePort();
  const dir = await tempConfig(`${port} 127.0.0.2 ${echo.port} pac=bad.pac\n`);
  await Deno.writeTextFile(
    `${dir}/bad.pac`,
    "function FindProxyForURL(url, host) {\n  return 42;\n}\n",
  );
  await using run = startRun(dir, [], READ_SOURCE);
  await waitForLog(run.log, /config applied/);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const buffer = new Uint8Array(16);
    assert.equal(await within(conn.read(buffer), 10_000, "close"), null);
  } finally {
    conn.close();
  }
  const log = await waitForLog(run.log, /failed .*via pac bad\.pac/);
  assert.match(
    log,
    /bad\.pac: FindProxyForURL\(.*\) returned an answer that is not a PAC result/,
  );
  assert.match(log, /no connection is made while the PAC cannot answer/);
});

Deno.test("the pac command prints the answer, like pactester; a looping PAC ends in a timeout error", async () => {
  const dir = await tempConfig("");
  try {
    await Deno.writeTextFile(
      `${dir}/corp.pac`,
      corporatePac("proxy.corp.example:8080"),
    );
    await Deno.writeTextFile(
      `${dir}/loop.pac`,
      "function FindProxyForURL() { for (;;) {} }\n",
    );
    const internet = await runTool([
      "pac",
      "corp.pac",
      "www.example.com",
      "443",
    ], dir);
    assert.equal(internet.code, 0, internet.stderr);
    assert.equal(internet.stdout, "PROXY proxy.corp.example:8080; DIRECT\n");
    assert.equal(
      internet.stderr,
      'corp.pac: FindProxyForURL("https://www.example.com/", "www.example.com")\n',
    );
    const intranet = await runTool([
      "pac",
      "corp.pac",
      "app.dept7.corp.example",
    ], dir);
    assert.equal(intranet.stdout, "DIRECT\n");
    assert.match(
      intranet.stderr,
      /FindProxyForURL\("http:\/\/app\.dept7\.corp\.example\/"/,
    );
    // alert() text goes to stderr, as pactester prints it.
    await Deno.writeTextFile(
      `${dir}/alert.pac`,
      'function FindProxyForURL(url) { alert("seen " + url); return "DIRECT"; }\n',
    );
    const alerted = await runTool(["pac", "alert.pac", "a.example", "22"], dir);
    assert.equal(alerted.stdout, "DIRECT\n");
    assert.match(
      alerted.stderr,
      /^info: alert\.pac: alert\(\): seen https:\/\/a\.example:22\/\n/,
    );
    const started = Date.now();
    const loop = await runTool(["pac", "loop.pac", "a.example", "22"], dir);
    assert.equal(loop.code, 1);
    assert.match(
      loop.stderr,
      /error: loop\.pac: FindProxyForURL\("https:\/\/a\.example:22\/", "a\.example"\) took longer than 1000 ms/,
    );
    assert.ok(Date.now() - started < 30_000);
    const wrong = await runTool(["pac", "corp.pac"], dir);
    assert.equal(wrong.code, 2);
    assert.match(
      wrong.stderr,
      /^error: pac takes a PAC file, a URL or auto, then a host and optionally a port: pac corp\.pac intranet\.example 443\n/,
    );
    const help = await runTool(["pac", "--help"], dir);
    assert.match(
      help.stdout,
      /^Usage: httptunneling pac FILE\|URL\|auto HOST \[PORT\]/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("check compiles the PACs a config names and reports a syntax error at its line", async () => {
  const dir = await tempConfig(
    "2222 ssh.example.com 22 pac=corp.pac\n3333 h 1 pac=ok.pac\n",
  );
  try {
    await Deno.writeTextFile(
      `${dir}/corp.pac`,
      'function FindProxyForURL(url, host) {\n  if (isPlainHostName(host) {\n    return "DIRECT";\n  }\n}\n',
    );
    await Deno.writeTextFile(
      `${dir}/ok.pac`,
      'function FindProxyForURL() { return "DIRECT"; }\n',
    );
    const { code, stdout, stderr } = await runTool(
      ["check", "tunnels.conf"],
      dir,
    );
    assert.equal(code, 1);
    assert.match(stderr, /^tunnels\.conf:1: corp\.pac:2: SyntaxError: /);
    assert.match(
      stdout,
      /127\.0\.0\.1:2222 +ssh\.example\.com:22 +via pac corp\.pac/,
    );
    assert.match(stdout, /tunnels\.conf:2: PAC ok\.pac compiles/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "probe --proxy pac=: prints the PAC's answer, then tests each alternative",
  ignore: missing("squid"),
  async fn() {
    await using squid = await startSquid();
    await using echo = startEchoOn("127.0.0.3");
    const dir = await tempConfig("");
    try {
      await Deno.writeTextFile(
        `${dir}/p.pac`,
        `function FindProxyForURL() { return "PROXY 127.0.0.1:${squid.port}; DIRECT"; }\n`,
      );
      const { code, stdout } = await runTool([
        "probe",
        "127.0.0.3",
        String(echo.port),
        "--proxy",
        "pac=p.pac",
      ], dir);
      assert.equal(code, 0, stdout);
      assert.match(
        stdout,
        new RegExp(
          `^PAC p\\.pac: FindProxyForURL\\("https://127\\.0\\.0\\.3:${echo.port}/", "127\\.0\\.0\\.3"\\) = "PROXY 127\\.0\\.0\\.1:${squid.port}; DIRECT"\\n`,
        ),
      );
      // One route, its alternatives each probed, as a hop's are.
      assert.match(
        stdout,
        new RegExp(
          `-> 127\\.0\\.0\\.3:${echo.port} via pac p\\.pac\\n  alternative 1 of 2: via http://127\\.0\\.0\\.1:${squid.port}\\n`,
        ),
      );
      assert.match(stdout, /\n {2}alternative 2 of 2: direct\n/);
      assert.equal(stdout.match(/ {4}=> works/g)?.length, 2);
      assert.match(stdout, /\n {2}=> works\n/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "a plain http:// request through the local proxy shows the PAC its real URL, chosen per path",
  ignore: missing("squid") || missing("curl"),
  async fn() {
    await using squid = await startSquid();
    await using origin = startHttpOrigin();
    const port = freePort();
    const dir = await tempConfig(`${port} proxy pac=path.pac\n`);
    await Deno.writeTextFile(
      `${dir}/path.pac`,
      `function FindProxyForURL(url, host) {
         if (shExpMatch(url, "http://*/hello?via-squid*")) return "PROXY 127.0.0.1:${squid.port}";
         return "DIRECT";
       }\n`,
    );
    await using run = startRun(dir, [], READ_SOURCE);
    await waitForLog(run.log, /config applied/);
    for (
      const path of [
        "/hello?via-squid-a",
        "/hello?direct-b",
        "/hello?via-squid-c",
      ]
    ) {
      const got = await curl([
        "-x",
        `http://127.0.0.1:${port}`,
        `${origin.url}${path}`,
      ]);
      assert.equal(got.httpCode, 200, got.stderr);
    }
    // squid logs URLs without their query: two GETs went through it.
    const log = await squidLogged(
      squid.dir,
      /GET http:\/\/127\.0\.0\.1:\d+\/hello/,
      2,
    );
    assert.equal(log.filter((line) => line.includes("/hello")).length, 2);
    assert.deepEqual(origin.requests.map((request) => request.query), [
      "?via-squid-a",
      "?direct-b",
      "?via-squid-c",
    ]);
    // Each request's log line names the PAC that routed it.
    const tool = await eventually(
      async () => {
        const log = await Deno.readTextFile(run.log);
        return log.match(/ GET http:\S+\/hello\?… 200 /g)?.length === 3 &&
          log;
      },
      10_000,
      "three requests logged",
    );
    assert.equal(
      tool.match(
        new RegExp(
          `GET http://127\\.0\\.0\\.1:\\d+/hello\\?… 200 .* via http://127\\.0\\.0\\.1:${squid.port} \\(pac path\\.pac\\)\n`,
          "g",
        ),
      )?.length,
      2,
    );
    assert.match(
      tool,
      /GET http:\/\/127\.0\.0\.1:\d+\/hello\?… 200 .* direct \(pac path\.pac\)\n/,
    );
  },
});

Deno.test({
  name:
    "credentials go only to the proxies credentials-for= names, and never into the log",
  ignore: missing("squid") || missing("htpasswd"),
  async fn() {
    await using squid = await startSquidWithBasic("jane", "s3cret-pac");
    await using echo = startEchoOn("127.0.0.3");
    const [allowed, other] = [freePort(), freePort()];
    const dir = await tempConfig(
      `${allowed} 127.0.0.3 ${echo.port} pac=p.pac credentials=proxy.cred credentials-for=127.0.0.1\n` +
        `${other} 127.0.0.3 ${echo.port} pac=p.pac credentials=proxy.cred credentials-for=proxy.elsewhere.example\n`,
    );
    await Deno.writeTextFile(`${dir}/proxy.cred`, "jane:s3cret-pac\n", {
      mode: 0o600,
    });
    await Deno.writeTextFile(
      `${dir}/p.pac`,
      `function FindProxyForURL() { return "PROXY 127.0.0.1:${squid.port}"; }\n`,
    );
    await using run = startRun(dir, [], READ_SOURCE);
    await waitForLog(run.log, /config applied/);
    await echoThrough(allowed, "with credentials");
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: other });
    try {
      assert.equal(
        await within(conn.read(new Uint8Array(16)), 10_000, "close"),
        null,
      );
    } finally {
      conn.close();
    }
    const log = await waitForLog(
      run.log,
      /failed .*via pac p\.pac: .*requires authentication/,
    );
    assert.ok(!log.includes("s3cret-pac"));
    const squidLog = await squidAccessLog(squid.dir);
    assert.ok(squidLog.some((line) => / jane /.test(line)));
  },
});

Deno.test("pac=auto: the pac command finds the PAC that PAC_URL names and logs the attempt", async () => {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () =>
      new Response(
        'function FindProxyForURL() { return "PROXY found.example:3128"; }',
      ),
  );
  const dir = await tempConfig("");
  try {
    const url = `http://127.0.0.1:${server.addr.port}/auto.pac`;
    const { code, stdout, stderr } = await tool(
      ["pac", "auto", "a.example", "443"],
      dir,
      { PAC_URL: url },
      READ_SOURCE,
    ).output();
    assert.equal(code, 0, text(stderr));
    assert.equal(text(stdout), "PROXY found.example:3128\n");
    assert.match(text(stderr), new RegExp(`PAC discovery: trying ${url}`));
    assert.match(
      text(stderr),
      new RegExp(`${url}: FindProxyForURL\\("https://a\\.example/"`),
    );
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a PAC file is watched, and SIGHUP fetches a PAC URL again", async () => {
  await using echo = startEchoOn("127.0.0.2");
  let served = 'function FindProxyForURL() { return "DIRECT"; }';
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response(served),
  );
  const [fromFile, fromUrl] = [freePort(), freePort()];
  const dir = await tempConfig(
    `${fromFile} 127.0.0.2 ${echo.port} pac=watched.pac\n` +
      `${fromUrl} 127.0.0.2 ${echo.port} pac=http://127.0.0.1:${server.addr.port}/hup.pac pac-refresh=1h\n`,
  );
  const child = tool(["run"], dir, {}, READ_SOURCE).spawn();
  const log = `${dir}/HTTPTunneling.log`;
  try {
    await Deno.writeTextFile(
      `${dir}/watched.pac`,
      'function FindProxyForURL() { return "DIRECT"; }\n',
    );
    await waitForLog(log, /config applied/);
    await echoThrough(fromFile, "file");
    await echoThrough(fromUrl, "url");
    await Deno.writeTextFile(
      `${dir}/watched.pac`,
      'function FindProxyForURL() { return "PROXY 127.0.0.1:9; DIRECT"; }\n',
    );
    await waitForLog(log, /PAC watched\.pac changed; reloaded/);
    served =
      'function FindProxyForURL() { return "PROXY 127.0.0.1:9; DIRECT"; }';
    child.kill("SIGHUP");
    await waitForLog(
      log,
      /PAC http:\/\/127\.0\.0\.1:\d+\/hup\.pac changed; reloaded/,
    );
  } finally {
    child.kill("SIGTERM");
    const { code } = await within(child.output(), 10_000, "exit");
    assert.equal(code, 0);
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("run --workers 2: each worker runs the PAC in a sandbox of its own", async () => {
  await using echo = startEchoOn("127.0.0.2");
  const port = freePort();
  const dir = await tempConfig(`${port} 127.0.0.2 ${echo.port} pac=d.pac\n`);
  await Deno.writeTextFile(
    `${dir}/d.pac`,
    'function FindProxyForURL() { return "DIRECT"; }\n',
  );
  await using run = startRun(dir, ["--workers", "2"], READ_SOURCE);
  await waitForLog(run.log, /config applied/);
  for (let i = 0; i < 4; i++) await echoThrough(port, `worker ${i}`);
  // The workers' log lines reach the file a moment later.
  await eventually(
    async () =>
      (await Deno.readTextFile(run.log)).match(
        / open .* direct \(pac d\.pac\)/g,
      )?.length === 4,
    10_000,
    "four tunnels logged as direct (pac d.pac)",
  );
});

Deno.test({
  name:
    "an HTTPS proxy the PAC names is trusted with the entry's ca-file, and SOCKS4 is skipped",
  ignore: missing("squid") || missing("stunnel4"),
  async fn() {
    await using squid = await startSquid();
    await using front = await startTlsFront(squid.port);
    await using echo = startEchoOn("127.0.0.3");
    const port = freePort();
    const dir = await tempConfig(
      `${port} 127.0.0.3 ${echo.port} pac=tls.pac ca-file=ca.pem\n`,
    );
    await Deno.writeTextFile(`${dir}/ca.pem`, front.caPem);
    await Deno.writeTextFile(
      `${dir}/tls.pac`,
      `function FindProxyForURL() { return "SOCKS 127.0.0.1:9; HTTPS 127.0.0.1:${front.port}"; }\n`,
    );
    await using run = startRun(dir, [], READ_SOURCE);
    await waitForLog(run.log, /config applied/);
    await echoThrough(port, "over tls");
    const log = await waitForLog(
      run.log,
      new RegExp(
        `open .* via https://127\\.0\\.0\\.1:${front.port} \\(pac tls\\.pac\\)`,
      ),
    );
    assert.match(
      log,
      /the PAC names socks4:\/\/127\.0\.0\.1:9, which httptunneling cannot use \(SOCKS4\); it is skipped/,
    );
    await squidLogged(squid.dir, /CONNECT 127\.0\.0\.3:/);
  },
});

Deno.test("stdio --proxy pac=: one connection along the PAC's answer", async () => {
  await using echo = startEchoOn("127.0.0.2");
  const dir = await tempConfig("");
  try {
    await Deno.writeTextFile(
      `${dir}/d.pac`,
      `function FindProxyForURL(url, host) { return url == "https://127.0.0.2:${echo.port}/" ? "DIRECT" : "PROXY 127.0.0.1:9"; }\n`,
    );
    const child = new Deno.Command(Deno.execPath(), {
      args: runArgs(
        ["stdio", "127.0.0.2", String(echo.port), "--proxy", "pac=d.pac", "-v"],
        READ_SOURCE,
      ),
      cwd: dir,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(bytes("through stdio"));
    await writer.close();
    const { code, stdout, stderr } = await within(
      child.output(),
      20_000,
      "stdio",
    );
    assert.equal(code, 0, text(stderr));
    assert.equal(text(stdout), "through stdio");
    assert.match(text(stderr), /connecting to 127\.0\.0\.2:\d+ via pac d\.pac/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("hostile PACs in a running tool: file, network, import() and allocation attempts fail inside the sandbox, a memory bomb ends its sandbox process only, and each entry falls back direct", async () => {
  await using echo = startEchoOn("127.0.0.2");
  const hostile: Record<string, string> = {
    "read.pac": 'return Deno.readTextFileSync("/etc/passwd");',
    "fetch.pac":
      'fetch("http://127.0.0.1:9/"); return "DIRECT; PROXY 127.0.0.1:9";',
    "import.pac": 'return import("file:///etc/passwd");',
    "alloc.pac": 'return "x".repeat(2 ** 31);',
    // Memory that the script really takes, until its heap cap ends it.
    "bomb.pac": "var a = []; for (;;) a.push(new Array(1e6).fill(1));",
  };
  const ports = Object.keys(hostile).map(() => freePort());
  const dir = await tempConfig(
    Object.keys(hostile).map((name, i) =>
      `${ports[i]} 127.0.0.2 ${echo.port} pac=${name} pac-fallback=direct\n`
    ).join(""),
  );
  for (const [name, body] of Object.entries(hostile)) {
    await Deno.writeTextFile(
      `${dir}/${name}`,
      `function FindProxyForURL(url, host) {\n  ${body}\n}\n`,
    );
  }
  await using run = startRun(dir, [], READ_SOURCE);
  await waitForLog(run.log, /config applied/);
  for (const port of ports) await echoThrough(port, "still here");
  const log = await eventually(
    async () => {
      const log = await Deno.readTextFile(run.log);
      return log.match(
            / open .* direct \(pac .* failed; pac-fallback=direct\)/g,
          )
            ?.length === 5 && log;
    },
    10_000,
    "five tunnels opened directly after the PAC failed",
  );
  assert.match(
    log,
    /read\.pac:2: FindProxyForURL\(.*\) threw ReferenceError: Deno is not defined; connecting directly/,
  );
  assert.match(
    log,
    /fetch\.pac:2: FindProxyForURL\(.*\) threw ReferenceError: fetch is not defined; connecting directly/,
  );
  assert.match(
    log,
    /import\.pac: FindProxyForURL\(.*\) returned an answer that is not a PAC result: .*; connecting directly/,
  );
  assert.match(
    log,
    /alloc\.pac:2: FindProxyForURL\(.*\) threw RangeError: Invalid string length; connecting directly/,
  );
  assert.match(
    log,
    /bomb\.pac: its sandbox process ended \(.*out of memory\? its heap is capped at 128 MiB\).*; connecting directly/,
  );
  await echoThrough(ports[0], "the tool goes on");
});

Deno.test("probe CONFIG: a pac= entry shows the PAC's answer, then each alternative's probe", async () => {
  await using echo = startEchoOn("127.0.0.2");
  const dead = freePort();
  const port = freePort();
  const dir = await tempConfig(`${port} 127.0.0.2 ${echo.port} pac=p.pac\n`);
  try {
    await Deno.writeTextFile(
      `${dir}/p.pac`,
      `function FindProxyForURL() { return "PROXY 127.0.0.1:${dead}; DIRECT"; }\n`,
    );
    const { code, stdout } = await runTool(["probe", "tunnels.conf"], dir);
    // The dead proxy fails its probe, and the route works all the same:
    // tunnels fail over to DIRECT.
    assert.equal(code, 0, stdout);
    assert.match(
      stdout,
      new RegExp(
        `^line 1: 127\\.0\\.0\\.1:${port} PAC p\\.pac: FindProxyForURL\\("https://127\\.0\\.0\\.2:${echo.port}/", "127\\.0\\.0\\.2"\\) = "PROXY 127\\.0\\.0\\.1:${dead}; DIRECT"\\n`,
      ),
    );
    assert.match(
      stdout,
      new RegExp(
        `-> 127\\.0\\.0\\.2:${echo.port} via pac p\\.pac\\n  alternative 1 of 2: via http://127\\.0\\.0\\.1:${dead}\\n`,
      ),
    );
    assert.match(stdout, /=> nothing accepts connections at proxy/);
    assert.match(stdout, /alternative 2 of 2: direct\n[^]*=> works/);
    assert.match(stdout, /=> works \(1 of 2 alternatives failed/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("run from source without read access to the tool's code, a PAC says which flag to add", async () => {
  const dir = await tempConfig("");
  try {
    await Deno.writeTextFile(
      `${dir}/d.pac`,
      'function FindProxyForURL() { return "DIRECT"; }\n',
    );
    const { code, stderr } = await tool(["pac", "d.pac", "a.example"], dir)
      .output();
    assert.equal(code, 1);
    assert.match(
      text(stderr),
      /^warn: d\.pac: without --allow-run the PAC runs inside the tool, where a script that loops or allocates without end cannot be stopped .*\nerror: pac: PAC scripts run from source need read access to the tool's code: add --allow-read=\/.+ \(deno task start and a compiled binary have it\)\n$/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "run from source as the README's deno run line does, without --allow-sys, on a terminal: a PAC's myIpAddress() and pac=auto stop at no permission prompt, and say which flag is missing",
  ignore: missing("script"),
  async fn() {
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      () =>
        new Response(
          'function FindProxyForURL() { return "PROXY " + myIpAddress() + ":3128"; }',
        ),
    );
    const dir = await tempConfig("");
    try {
      const command = [
        Deno.execPath(),
        "run",
        "--quiet",
        `--config=${ROOT}deno.json`,
        "--allow-net",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        "--allow-run=deno",
        `${ROOT}main.ts`,
        "pac",
        "auto",
        "a.example",
        "22",
      ].join(" ");
      // script(1) gives the tool a terminal, where Deno would prompt.
      const { code, stdout } = await within(
        new Deno.Command("script", {
          args: ["-qec", command, "/dev/null"],
          cwd: dir,
          env: {
            PAC_URL: `http://127.0.0.1:${server.addr.port}/p.pac`,
            NO_COLOR: "1",
          },
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).output(),
        30_000,
        "the pac command on a terminal",
      );
      const output = text(stdout).replaceAll("\r\n", "\n");
      assert.equal(code, 0, output);
      assert.doesNotMatch(output, /Deno requests/);
      assert.match(output, /^PROXY 127\.0\.0\.1:3128$/m);
      assert.match(
        output,
        /warn: PAC discovery: the tool may not read the host name \(needs --allow-sys=hostname\); it is left out/,
      );
      assert.match(
        output,
        /warn: a PAC's myIpAddress\(\) answers 127\.0\.0\.1: the tool may not read this machine's addresses \(give it --allow-sys=networkInterfaces/,
      );
    } finally {
      await server.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
