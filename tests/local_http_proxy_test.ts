/**
 * End-to-end tests of the local HTTP proxy (`<source> proxy <route>`): real
 * clients (curl, git, headless Chromium, raw sockets) in front of the tool,
 * real squid behind it requiring Basic, Digest or NTLM, origins on
 * loopback. The clients are given no proxy credentials: the tool answers
 * squid's 407s with those of its config.
 *
 * @module
 */

import assert from "node:assert/strict";
import { chromiumFetch, curl, gitClone } from "./_util/clients.ts";
import { pseudoRandomChunks } from "./_util/data.ts";
import {
  byConnection,
  escapeRegExp,
  linesMatching,
  rawRequest,
  sha256,
  squidAccessLog,
  squidLogged,
  type SquidRequest,
  startLoggedSquid,
  tempCertificates,
  tempFile,
} from "./_util/local.ts";
import {
  bytes,
  connect,
  eventually,
  freePort,
  readExactly,
  startEchoServer,
  startServer,
  text,
  within,
  writeAll,
} from "./_util/net.ts";
import {
  HELLO_TEXT,
  type HttpsOrigin,
  type Origin,
  originDataSha256,
  PAGE_TITLE,
  SHA256_HEADER,
  startGitHttpsServer,
  startHttpOrigin,
  startHttpsOrigin,
} from "./_util/origins.ts";
import {
  missing,
  missingOnPath,
  SQUID_LOOPBACK_ONLY,
  startSquid,
  startSquidWithBasic,
  startSquidWithDigest,
} from "./_util/proxies.ts";
import {
  type CapturedLogs,
  captureLogs,
  entriesOf,
  runTool,
  spawnRun,
  startTool,
  tempConfig,
  waitForLog,
} from "./_util/tool.ts";
import { clientAllowed } from "../lib/local/rules.ts";
import { BufferedDuplex } from "../lib/net/buffered.ts";
import { headerValue, readResponseHead } from "../lib/proxy/http_head.ts";

const noSquid = missing("squid");
const noCurl = missingOnPath("curl");
const noGit = missingOnPath("git");
const noChromium = missingOnPath("chromium");
const noHtpasswd = missingOnPath("htpasswd");

/** curl's `-x` for the tool's proxy on `port`: no credentials, ever. */
function viaTool(port: number): string[] {
  return ["-x", `http://127.0.0.1:${port}`];
}

/**
 * What every upstream scheme must give: a plain GET reaches the origin with
 * the tool and squid in `Via` and no `Proxy-Authorization`, a CONNECT
 * reaches the HTTPS origin, and curl sees no 407 although it has no
 * credentials; squid logs the tool's user for both.
 */
async function getAndConnect(
  toolPort: number,
  origin: Origin,
  https: HttpsOrigin,
  squid: { port: number; dir: string },
  user: RegExp,
): Promise<void> {
  // Without the tool, squid refuses the same curl.
  const refused = await curl([
    "-x",
    `http://127.0.0.1:${squid.port}`,
    `${origin.url}/hello`,
  ]);
  assert.equal(refused.httpCode, 407);

  const before = origin.requests.length;
  const got = await curl([...viaTool(toolPort), `${origin.url}/hello`]);
  assert.equal(got.code, 0, got.stderr);
  assert.equal(got.httpCode, 200);
  assert.equal(got.stdout, HELLO_TEXT);
  assert.match(got.transfers[0].headers["via"]?.join() ?? "", /httptunneling/);
  const seen = origin.requests.slice(before);
  assert.equal(seen.length, 1);
  assert.match(seen[0].headers.get("via") ?? "", /httptunneling.*squid/);
  assert.equal(seen[0].headers.get("proxy-authorization"), null);

  const tunneled = await curl([
    ...viaTool(toolPort),
    "--cacert",
    https.caFile,
    `${https.url}/hello`,
  ]);
  assert.equal(tunneled.code, 0, tunneled.stderr);
  assert.deepEqual(
    tunneled.transfers.map((each) => [each.httpConnect, each.httpCode]),
    [[200, 200]],
  );
  assert.equal(tunneled.stdout, HELLO_TEXT);

  const get = new RegExp(
    ` TCP_MISS/200 .* GET ${escapeRegExp(origin.url)}/hello `,
  );
  const tunnel = new RegExp(
    ` TCP_TUNNEL/200 .* CONNECT 127\\.0\\.0\\.1:${https.port} `,
  );
  const log = await squidLogged(squid.dir, tunnel);
  for (const pattern of [get, tunnel]) {
    const line = log.find((each) => pattern.test(each));
    assert.ok(line, log.join("\n"));
    assert.match(line.split(/\s+/)[7], user, line);
  }
}

// Written percent-encoded in the tool's config. (digest_file_auth reads a
// second colon in its file as user:realm:hash, so Digest's has none.)
const PASSWORDS = { Basic: "Pa55:w@rd", Digest: "Pa55w@rd/" };

for (
  const [scheme, start] of [
    ["Basic", startSquidWithBasic],
    ["Digest", startSquidWithDigest],
  ] as const
) {
  Deno.test({
    name:
      `local HTTP proxy, squid asking ${scheme}: GET and CONNECT work for a curl that has no credentials; a wrong password in the config is a 502 that says so`,
    ignore: noSquid || noCurl || (scheme === "Basic" && noHtpasswd),
    async fn() {
      await using certs = await tempCertificates();
      await using origin = startHttpOrigin();
      await using https = await startHttpsOrigin(certs);
      await using logs = await captureLogs();
      await using squid = await start("ann", PASSWORDS[scheme]);
      const [port, wrong] = [freePort(), freePort()];
      await using _tool = await startTool(
        `${port} proxy http://ann:${
          encodeURIComponent(PASSWORDS[scheme])
        }@127.0.0.1:${squid.port}\n` +
          `${wrong} proxy http://ann:not-it@127.0.0.1:${squid.port}\n`,
      );
      await getAndConnect(port, origin, https, squid, /^ann$/);

      // A wrong password in the config: a 502 that says so, and the
      // query of the URL (which may hold a secret) in no message.
      const refused = await curl([
        ...viaTool(wrong),
        `${origin.url}/hello?token=S3CRET`,
      ]);
      assert.equal(refused.httpCode, 502);
      assert.match(
        refused.stdout,
        new RegExp(`rejected the credentials \\(${scheme}\\)`),
      );
      const warning = await logs.waitFor(/ 502: /);
      assert.match(warning, /rejected the credentials/);
      for (const message of [refused.stdout, ...logs.lines]) {
        assert.ok(!message.includes("S3CRET"), message);
      }
    },
  });
}

/** The tool's log lines for plain requests answered on `port`'s entry. */
function requestLines(
  logs: CapturedLogs,
  from: number,
  url: string,
  count: number,
): Promise<string[]> {
  return linesMatching(
    logs.lines,
    from,
    new RegExp(`^c\\d+ 127\\.0\\.0\\.1:\\d+ [A-Z]+ ${escapeRegExp(url)} `),
    count,
  );
}

/** The tunnel id (`c12`) a log line starts with. */
function tunnelId(line: string): string {
  return line.split(" ")[0];
}

/**
 * Asserts that on every connection to squid the 407s came first and only
 * first: one handshake per connection, never one per request.
 */
function assertAuthOncePerConnection(connections: SquidRequest[][]): void {
  for (const requests of connections) {
    const denied = requests.findLastIndex((request) => request.status === 407);
    assert.ok(
      requests.slice(0, denied + 1).every((request) => request.status === 407),
      `a 407 after an authenticated request on one connection: ${
        JSON.stringify(requests)
      }`,
    );
  }
}

Deno.test({
  name:
    "local HTTP proxy in front of squid requiring NTLM: curl, git and Chromium with no credentials of their own",
  ignore: noSquid || noCurl,
  async fn(t) {
    await using logs = await captureLogs();
    await using certs = await tempCertificates();
    await using origin = startHttpOrigin();
    await using https = await startHttpsOrigin(certs);
    await using squid = await startLoggedSquid({ ntlm: true });
    // One entry per NTLM user: each has upstream connections of its own,
    // so a step can count its connections from the first one. squid's
    // ntlm_fake_auth logs the users as C\j, C\p, C\b and C\e.
    const [jane, pat, bob, eve] = [
      freePort(),
      freePort(),
      freePort(),
      freePort(),
    ];
    const upstream = (user: string) =>
      `http://CORP%5C${user}:Secret-123@127.0.0.1:${squid.port}`;
    await using _tool = await startTool(
      `${jane} proxy ${upstream("jane")}\n` +
        `${pat} proxy ${upstream("pat")}\n` +
        `${bob} proxy ${upstream("bob")}\n` +
        `${eve} proxy ${upstream("eve")}\n`,
    );
    // squid's connections from the tool that carried requests of one
    // user, once `done` holds for their requests.
    const connectionsOf = (
      letter: string,
      done: (requests: SquidRequest[]) => boolean,
    ) =>
      eventually(
        async () => {
          const found = byConnection(await squid.requests()).filter((each) =>
            each.some((request) => request.user === `C\\\\${letter}`)
          );
          return done(found.flat()) && found;
        },
        5_000,
        `squid's log of the requests of C\\${letter}`,
      );
    const posts = () =>
      origin.requests.filter((each) => each.method === "POST").length;

    await t.step(
      "GET and CONNECT, the credentials only in the tool's config",
      async () => {
        await getAndConnect(jane, origin, https, squid, /^C\\+j$/);
      },
    );

    await t.step(
      "keep-alive: 100 GETs in 4 curl runs take one upstream connection and one NTLM handshake",
      async () => {
        const from = logs.lines.length;
        const url = `${origin.url}/hello`;
        for (let run = 0; run < 4; run++) {
          const got = await curl([
            ...viaTool(pat),
            ...Array.from({ length: 25 }, () => url),
          ]);
          assert.equal(got.code, 0, got.stderr);
          assert.equal(got.stdout, HELLO_TEXT.repeat(25));
          assert.deepEqual(
            new Set(got.transfers.map((each) => each.httpCode)),
            new Set([200]),
          );
          // One client connection for the 25 requests of a run.
          assert.equal(got.numConnects, 1);
        }
        const lines = await requestLines(logs, from, url, 100);
        assert.equal(lines.length, 100);
        // The tool's log names one tunnel id per curl run.
        const ids = [0, 1, 2, 3].map((run) =>
          new Set(lines.slice(run * 25, run * 25 + 25).map(tunnelId))
        );
        for (const each of ids) assert.equal(each.size, 1, [...each].join());
        assert.equal(new Set(ids.map((each) => [...each][0])).size, 4);

        const connections = await connectionsOf(
          "p",
          (requests) =>
            requests.filter((each) => each.status === 200).length === 100,
        );
        const all = connections.flat();
        const denied = all.filter((each) => each.status === 407).length;
        console.log(
          `NTLM: 100 GETs through the tool's pool: ${connections.length} upstream connection(s), ${denied} 407 answer(s) in squid's log`,
        );
        assert.equal(connections.length, 1);
        assert.equal(denied, 2);
        assertAuthOncePerConnection(connections);
      },
    );

    await t.step("chunked bodies both ways arrive whole", async () => {
      await using upload = await tempFile(
        pseudoRandomChunks(3, 300_001, 300_001).next().value!,
      );
      for (const expect of ["Expect: 100-continue", "Expect:"]) {
        const echoed = await curl([
          ...viaTool(jane),
          "-H",
          "Transfer-Encoding: chunked",
          "-H",
          expect,
          "--data-binary",
          `@${upload.path}`,
          `${origin.url}/echo`,
        ]);
        assert.equal(echoed.code, 0, echoed.stderr);
        assert.equal(echoed.httpCode, 200);
        assert.equal(echoed.output.length, upload.length);
        assert.equal(sha256(echoed.output), upload.sha256);
        assert.deepEqual(echoed.transfers[0].headers[SHA256_HEADER], [
          upload.sha256,
        ]);
      }
      const chunked = await curl([
        ...viaTool(jane),
        `${origin.url}/chunked?bytes=1234567`,
      ]);
      assert.equal(chunked.httpCode, 200);
      assert.deepEqual(chunked.transfers[0].headers["transfer-encoding"], [
        "chunked",
      ]);
      assert.equal(chunked.output.length, 1_234_567);
      assert.equal(sha256(chunked.output), originDataSha256(1_234_567));
    });

    await t.step(
      "a POST over 1 MiB on a fresh upstream connection: authenticated first with OPTIONS, then sent once",
      async () => {
        await using upload = await tempFile(
          pseudoRandomChunks(5, 1_500_000, 1_500_000).next().value!,
        );
        const before = posts();
        // No Expect: the body follows the head at once.
        const posted = await curl([
          ...viaTool(bob),
          "-H",
          "Expect:",
          "--data-binary",
          `@${upload.path}`,
          `${origin.url}/echo`,
        ]);
        assert.equal(posted.code, 0, posted.stderr);
        assert.equal(posted.httpCode, 200);
        // What the origin received, and what came back.
        assert.deepEqual(posted.transfers[0].headers[SHA256_HEADER], [
          upload.sha256,
        ]);
        assert.equal(sha256(posted.output), upload.sha256);
        assert.equal(posts(), before + 1);
        const connections = await connectionsOf(
          "b",
          (requests) => requests.some((each) => each.method === "POST"),
        );
        assert.equal(connections.length, 1);
        const [requests] = connections;
        assert.deepEqual(
          requests.map((each) => `${each.method} ${each.status}`),
          ["OPTIONS 407", "OPTIONS 407", "OPTIONS 404", "POST 200"],
        );
        assertAuthOncePerConnection(connections);
      },
    );

    await t.step(
      "Expect: 100-continue on a fresh upstream connection: the NTLM rounds first, then 100, then the body",
      async () => {
        await using upload = await tempFile(
          pseudoRandomChunks(7, 1_200_000, 1_200_000).next().value!,
        );
        const before = posts();
        const posted = await curl([
          ...viaTool(eve),
          "-v",
          "-H",
          "Expect: 100-continue",
          "--data-binary",
          `@${upload.path}`,
          `${origin.url}/echo`,
        ], { timeoutMs: 10_000 });
        assert.equal(posted.code, 0, posted.stderr);
        assert.match(posted.stderr, /^> Expect: 100-continue\r?$/m);
        assert.match(posted.stderr, /^< HTTP\/1\.1 100 Continue\r?$/m);
        assert.equal(posted.httpCode, 200);
        assert.deepEqual(posted.transfers[0].headers[SHA256_HEADER], [
          upload.sha256,
        ]);
        assert.equal(sha256(posted.output), upload.sha256);
        assert.equal(posts(), before + 1);
        const connections = await connectionsOf(
          "e",
          (requests) => requests.some((each) => each.method === "POST"),
        );
        assert.equal(connections.length, 1);
        assert.deepEqual(
          connections[0].map((each) => `${each.method} ${each.status}`),
          ["OPTIONS 407", "OPTIONS 407", "OPTIONS 404", "POST 200"],
        );
      },
    );

    await t.step({
      name: "git clones over https through the tool",
      ignore: noGit,
      async fn() {
        await using server = await startGitHttpsServer(certs);
        const clone = await gitClone(server.repoUrl, {
          proxy: `http://127.0.0.1:${jane}`,
          caFile: server.caFile,
        });
        assert.equal(clone.head, server.head);
        assert.deepEqual(clone.files, server.files);
        await squidLogged(
          squid.dir,
          new RegExp(
            `TCP_TUNNEL/200 .*CONNECT 127\\.0\\.0\\.1:${server.port} C\\\\+j `,
          ),
        );
      },
    });

    await t.step({
      name: "Chromium shows /page.html through the tool, over HTTP and HTTPS",
      ignore: noChromium,
      async fn() {
        const plain = await chromiumFetch(`${origin.url}/page.html`, {
          proxyServer: `http://127.0.0.1:${jane}`,
        });
        assert.match(plain, new RegExp(`<title>${PAGE_TITLE}</title>`));
        const page = origin.requests.findLast((each) =>
          each.path === "/page.html"
        );
        assert.match(page?.headers.get("via") ?? "", /httptunneling.*squid/);
        assert.equal(page?.headers.get("proxy-authorization"), null);

        const secure = await chromiumFetch(`${https.url}/page.html`, {
          proxyServer: `http://127.0.0.1:${jane}`,
          trustSpki: [https.spki],
        });
        assert.match(secure, new RegExp(`<title>${PAGE_TITLE}</title>`));
        assert.ok(https.requests.some((each) => each.path === "/page.html"));
      },
    });

    // Over the whole test, every connection to squid had its NTLM
    // handshake at its start only.
    assertAuthOncePerConnection(byConnection(await squid.requests()));
  },
});

Deno.test({
  name:
    "requests that could smuggle a second one are answered 400 and their connection closed; an oversize head or more than 100 fields 431",
  async fn() {
    await using origin = startHttpOrigin();
    const port = freePort();
    await using _tool = await startTool(`${port} proxy\n`);
    const host = `Host: 127.0.0.1:${origin.port}\r\n`;
    const echo = `http://127.0.0.1:${origin.port}/echo`;
    const hello = `http://127.0.0.1:${origin.port}/hello`;
    // Each hides a second request where a lenient reader would find it.
    const smuggled = `GET ${hello} HTTP/1.1\r\n${host}\r\n`;
    const cases: Record<string, string> = {
      "Content-Length beside Transfer-Encoding":
        `POST ${echo} HTTP/1.1\r\n${host}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`,
      "two Content-Lengths that differ":
        `POST ${echo} HTTP/1.1\r\n${host}Content-Length: 0\r\nContent-Length: ${smuggled.length}\r\n\r\n${smuggled}`,
      "obs-fold":
        `POST ${echo} HTTP/1.1\r\n${host}X-Folded: a\r\n Content-Length: ${smuggled.length}\r\n\r\n${smuggled}`,
      "a bare CR":
        `POST ${echo} HTTP/1.1\r\n${host}X-Bare: a\rContent-Length: ${smuggled.length}\r\n\r\n${smuggled}`,
      "a space before the colon":
        `POST ${echo} HTTP/1.1\r\n${host}Content-Length : ${smuggled.length}\r\n\r\n${smuggled}`,
      "an invalid field name":
        `POST ${echo} HTTP/1.1\r\n${host}X[Length]: 1\r\n\r\n${smuggled}`,
    };
    for (const [what, request] of Object.entries(cases)) {
      const answer = await rawRequest(port, request);
      assert.equal(answer.statusLine, "HTTP/1.1 400 Bad Request", what);
      assert.equal(answer.end, "eof", what);
      assert.match(answer.text, /\r\nConnection: close\r\n/, what);
      // One answer only: nothing after the first body.
      assert.equal(answer.text.split("HTTP/1.1 ").length, 2, what);
    }
    const big = await rawRequest(
      port,
      `GET ${hello} HTTP/1.1\r\n${host}X-Big: ${"a".repeat(66_000)}\r\n\r\n`,
    );
    assert.equal(
      big.statusLine,
      "HTTP/1.1 431 Request Header Fields Too Large",
    );
    assert.equal(big.end, "eof");
    const many = await rawRequest(
      port,
      `GET ${hello} HTTP/1.1\r\n${host}${"X-Many: 1\r\n".repeat(100)}\r\n`,
    );
    assert.equal(
      many.statusLine,
      "HTTP/1.1 431 Request Header Fields Too Large",
    );
    // None reached the origin; a sound request does.
    assert.equal(origin.requests.length, 0);
    const sound = await rawRequest(
      port,
      `POST ${echo} HTTP/1.1\r\n${host}Content-Length: 5\r\nConnection: close\r\n\r\nhello`,
    );
    assert.equal(sound.statusLine, "HTTP/1.1 200 OK");
    assert.ok(sound.text.endsWith("\r\n\r\nhello"), sound.text);
    assert.deepEqual(origin.requests.map((each) => each.path), ["/echo"]);
  },
});

Deno.test({
  name:
    "what the client sees when it goes wrong: 502 naming a dead upstream, squid's 403, the tool's own 407 for client-auth=",
  ignore: noSquid || noCurl,
  async fn() {
    await using certs = await tempCertificates();
    await using origin = startHttpOrigin();
    await using https = await startHttpsOrigin(certs);
    // squid refuses the HTTPS origin's port, for CONNECT and GET alike.
    await using squid = await startSquid(
      `acl blocked port ${https.port}\nhttp_access deny blocked\n`,
    );
    const [dead, refusing, guarded] = [freePort(), freePort(), freePort()];
    const nobody = freePort();
    await using _tool = await startTool(
      `${dead} proxy http://127.0.0.1:${nobody}\n` +
        `${refusing} proxy http://127.0.0.1:${squid.port}\n` +
        `${guarded} proxy http://127.0.0.1:${squid.port} client-auth=alice:Wonder-1\n`,
    );

    const down = await curl([...viaTool(dead), `${origin.url}/hello`]);
    assert.equal(down.httpCode, 502);
    assert.match(down.stdout, new RegExp(`127\\.0\\.0\\.1:${nobody}`));
    assert.match(down.stdout, /refused/i);
    const downTunnel = await curl([
      ...viaTool(dead),
      "--cacert",
      https.caFile,
      `${https.url}/hello`,
    ]);
    assert.equal(downTunnel.transfers[0].httpConnect, 502);
    assert.notEqual(downTunnel.code, 0);

    const forbidden = await curl([
      ...viaTool(refusing),
      "--cacert",
      https.caFile,
      `${https.url}/hello`,
    ]);
    assert.equal(forbidden.transfers[0].httpConnect, 403);
    assert.match(forbidden.stderr, /CONNECT tunnel failed, response 403/);
    const forbiddenGet = await curl([
      ...viaTool(refusing),
      `http://127.0.0.1:${https.port}/hello`,
    ]);
    assert.equal(forbiddenGet.httpCode, 403);
    assert.match(forbiddenGet.stdout, /ERR_ACCESS_DENIED/);
    assert.equal(https.requests.length, 0);

    const anonymous = await curl([...viaTool(guarded), `${origin.url}/hello`]);
    assert.equal(anonymous.httpCode, 407);
    assert.deepEqual(anonymous.transfers[0].headers["proxy-authenticate"], [
      'Basic realm="httptunneling"',
    ]);
    const wrong = await curl([
      ...viaTool(guarded),
      "--proxy-user",
      "alice:wrong",
      `${origin.url}/hello`,
    ]);
    assert.equal(wrong.httpCode, 407);
    const before = origin.requests.length;
    const right = await curl([
      ...viaTool(guarded),
      "--proxy-user",
      "alice:Wonder-1",
      `${origin.url}/hello`,
    ]);
    assert.equal(right.httpCode, 200);
    assert.equal(right.stdout, HELLO_TEXT);
    assert.equal(origin.requests.length, before + 1);
    // The client's credentials are for the tool: not passed on.
    assert.equal(
      origin.requests.at(-1)!.headers.get("proxy-authorization"),
      null,
    );
    // The same for CONNECT (-p: a tunnel for an http:// URL).
    const tunnelAnonymous = await curl([
      ...viaTool(guarded),
      "-p",
      `${origin.url}/hello`,
    ]);
    assert.equal(tunnelAnonymous.transfers[0].httpConnect, 407);
    const tunnelRight = await curl([
      ...viaTool(guarded),
      "-p",
      "--proxy-user",
      "alice:Wonder-1",
      `${origin.url}/hello`,
    ]);
    assert.equal(tunnelRight.transfers[0].httpConnect, 200);
    assert.equal(tunnelRight.stdout, HELLO_TEXT);
  },
});

Deno.test({
  name: "stopping the tool ends a plain request still waiting for its answer",
  ignore: noCurl,
  async fn() {
    // An origin that takes requests and never answers.
    const silent = startServer(async (conn) => {
      await conn.read(new Uint8Array(4096));
      await conn.read(new Uint8Array(4096));
    });
    try {
      const port = freePort();
      const tool = await startTool(`${port} proxy\n`);
      const waiting = curl([
        ...viaTool(port),
        `http://127.0.0.1:${silent.port}/slow`,
      ]);
      try {
        await eventually(
          () => silent.accepted > 0,
          5_000,
          "the request reaching the silent origin",
        );
      } finally {
        await within(tool.supervisor.shutdown(), 5_000, "the tool's shutdown");
      }
      const got = await within(waiting, 5_000, "curl's end");
      assert.notEqual(got.code, 0);
      assert.equal(got.httpCode, 0);
    } finally {
      await silent[Symbol.asyncDispose]();
    }
  },
});

Deno.test({
  name:
    "direct-for= sends matching destinations around squid, for plain requests and CONNECT; the others go through it",
  ignore: noSquid || noCurl,
  async fn() {
    await using logs = await captureLogs();
    await using certs = await tempCertificates();
    await using near = startHttpOrigin();
    await using far = startHttpOrigin();
    await using https = await startHttpsOrigin(certs);
    await using squid = await startSquid(SQUID_LOOPBACK_ONLY);
    const port = freePort();
    await using _tool = await startTool(
      `${port} proxy http://127.0.0.1:${squid.port} direct-for=127.0.0.1:${near.port},127.0.0.1:${https.port}\n`,
    );
    const from = logs.lines.length;
    const got = await curl([
      ...viaTool(port),
      `${near.url}/hello`,
      `${far.url}/hello`,
    ]);
    assert.equal(got.stdout, HELLO_TEXT + HELLO_TEXT);
    const tunneled = await curl([
      ...viaTool(port),
      "--cacert",
      https.caFile,
      `${https.url}/hello`,
    ]);
    assert.equal(tunneled.transfers[0].httpConnect, 200);
    assert.equal(tunneled.stdout, HELLO_TEXT);

    // The origins tell by Via who passed the request on.
    assert.equal(near.requests[0].headers.get("via"), "1.1 httptunneling");
    assert.match(
      far.requests[0].headers.get("via") ?? "",
      /httptunneling.*squid/,
    );
    // The tool's log names the path of each.
    const [nearLine] = await requestLines(logs, from, `${near.url}/hello`, 1);
    assert.match(nearLine, / 200 \d+ B \d+ ms direct$/);
    const [farLine] = await requestLines(logs, from, `${far.url}/hello`, 1);
    assert.match(
      farLine,
      new RegExp(
        ` 200 \\d+ B \\d+ ms via http://127\\.0\\.0\\.1:${squid.port}$`,
      ),
    );
    await logs.waitFor(
      new RegExp(
        `open 127\\.0\\.0\\.1:\\d+ -> 127\\.0\\.0\\.1:${https.port} direct after`,
      ),
    );
    // squid saw only the far origin.
    const log = await squidLogged(
      squid.dir,
      new RegExp(` GET ${escapeRegExp(far.url)}/hello `),
    );
    for (const port of [near.port, https.port]) {
      assert.ok(
        !log.some((line) => line.includes(`127.0.0.1:${port}`)),
        log.join("\n"),
      );
    }
  },
});

Deno.test("allow=: loopback always, other clients only when allow= names them (IPv4, IPv6, IPv4-mapped)", () => {
  const [open, closed] = entriesOf(
    "0.0.0.0:3128 proxy allow=10.1.0.0/16,192.0.2.7,2001:db8::/32\n" +
      "3129 socks\n",
  );
  assert.ok(open.kind !== "forward" && closed.kind !== "forward");
  const cases: [string, boolean, boolean][] = [
    // client, allowed by `open`, allowed by `closed` (no allow=)
    ["127.0.0.1", true, true],
    ["127.3.4.5", true, true],
    ["::1", true, true],
    ["::ffff:127.0.0.1", true, true],
    ["10.1.2.3", true, false],
    ["10.1.255.255", true, false],
    ["10.2.0.1", false, false],
    ["192.0.2.7", true, false],
    ["192.0.2.8", false, false],
    ["::ffff:10.1.2.3", true, false],
    ["::ffff:10.2.0.1", false, false],
    ["::ffff:192.0.2.7", true, false],
    ["2001:db8::5", true, false],
    ["2001:db8:ffff::1", true, false],
    ["2001:db9::1", false, false],
    ["fe80::1", false, false],
  ];
  for (const [client, byOpen, byClosed] of cases) {
    assert.equal(clientAllowed(open, client), byOpen, `${client} allow=`);
    assert.equal(
      clientAllowed(closed, client),
      byClosed,
      `${client} loopback only`,
    );
  }
});

Deno.test("check: a local proxy on 0.0.0.0 without allow= is refused, naming allow=; with it, accepted", async () => {
  const dir = await tempConfig(
    "0.0.0.0:3128 proxy http://proxy.corp.example:3128\n" +
      "[::]:1080 socks\n",
  );
  try {
    const refused = await runTool(["check", "tunnels.conf"], dir);
    assert.equal(refused.code, 1, refused.stderr);
    const errors = refused.stderr.split("\n").filter((line) =>
      line.includes("tunnels.conf:")
    );
    assert.equal(errors.length, 2, refused.stderr);
    assert.match(errors[0], /tunnels\.conf:1:1: .*allow=/);
    assert.match(errors[1], /tunnels\.conf:2:1: .*allow=/);
    await Deno.writeTextFile(
      `${dir}/tunnels.conf`,
      "0.0.0.0:3128 proxy http://proxy.corp.example:3128 allow=10.1.0.0/16\n",
    );
    const accepted = await runTool(["check", "tunnels.conf"], dir);
    assert.equal(accepted.code, 0, accepted.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "hot reload: a changed direct-for= takes the next request around squid while a live CONNECT tunnel goes on; /metrics counts the requests",
  ignore: noSquid || noCurl,
  async fn() {
    await using origin = startHttpOrigin();
    await using echo = startEchoServer();
    await using squid = await startSquid(SQUID_LOOPBACK_ONLY);
    const [port, statusPort] = [freePort(), freePort()];
    const entry = `${port} proxy http://127.0.0.1:${squid.port}`;
    await using run = await spawnRun(`${entry}\n`, [
      "--status",
      `127.0.0.1:${statusPort}`,
    ]);
    const config = run.log.replace(/HTTPTunneling\.log$/, "tunnels.conf");

    // A tunnel opened before the change.
    using tunnel = await connect(port);
    await writeAll(
      tunnel,
      bytes(
        `CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\nHost: 127.0.0.1:${echo.port}\r\n\r\n`,
      ),
    );
    const established = "HTTP/1.1 200 Connection established\r\n\r\n";
    assert.equal(
      text(await within(readExactly(tunnel, established.length), 5_000, "200")),
      established,
    );
    assert.equal(await echoed(tunnel, "before"), "before");

    const url = `${origin.url}/hello`;
    const first = await curl([...viaTool(port), url]);
    assert.equal(first.stdout, HELLO_TEXT);
    await waitForLog(
      run.log,
      new RegExp(
        `GET ${
          escapeRegExp(url)
        } 200 .* via http://127\\.0\\.0\\.1:${squid.port}`,
      ),
    );

    await Deno.writeTextFile(
      config,
      `${entry} direct-for=127.0.0.1:${origin.port}\n`,
    );
    await waitForLog(run.log, /config applied: 0 added, 0 removed, 1 changed/);
    const second = await curl([...viaTool(port), url]);
    assert.equal(second.stdout, HELLO_TEXT);
    await waitForLog(
      run.log,
      new RegExp(`GET ${escapeRegExp(url)} 200 \\d+ B \\d+ ms direct`),
    );
    assert.equal(
      origin.requests.at(-1)!.headers.get("via"),
      "1.1 httptunneling",
    );
    const hellos = (await squidAccessLog(squid.dir)).filter((line) =>
      line.includes(url)
    );
    assert.equal(hellos.length, 1, hellos.join("\n"));

    // The tunnel of before the change still carries bytes.
    assert.equal(await echoed(tunnel, "after"), "after");

    const metrics = await (await fetch(
      `http://127.0.0.1:${statusPort}/metrics`,
      { signal: AbortSignal.timeout(5_000) },
    )).text();
    assert.match(
      metrics,
      new RegExp(
        `^httptunneling_requests_total\\{entry="127\\.0\\.0\\.1:${port}",method="GET",status="2xx"\\} 2$`,
        "m",
      ),
    );
    // One kept-alive connection to squid, one to the origin (direct).
    assert.match(metrics, /^httptunneling_upstream_idle_connections 2$/m);
  },
});

/** Sends `message` through an open tunnel to an echo server; what came back. */
async function echoed(tunnel: Deno.Conn, message: string): Promise<string> {
  await writeAll(tunnel, bytes(message));
  return text(
    await within(readExactly(tunnel, bytes(message).length), 5_000, "echo"),
  );
}

Deno.test("an HTTP/1.0 client that asks for keep-alive is told so, and its second request is answered on the same connection", async () => {
  await using origin = startHttpOrigin();
  const port = freePort();
  await using _tool = await startTool(`${port} proxy direct\n`);
  using conn = await connect(port);
  const request =
    `GET http://127.0.0.1:${origin.port}/hello HTTP/1.0\r\nHost: 127.0.0.1:${origin.port}\r\nConnection: Keep-Alive\r\n\r\n`;
  const input = new BufferedDuplex(conn);
  for (const round of [1, 2]) {
    await writeAll(conn, bytes(request));
    const head = await within(
      readResponseHead(input, () => new Error("closed")),
      5_000,
      `answer ${round}`,
    );
    assert.equal(head.status, 200);
    assert.equal(headerValue(head, "connection"), "keep-alive");
    const length = Number(headerValue(head, "content-length"));
    assert.equal(text(await input.take(length)), HELLO_TEXT);
  }
});
