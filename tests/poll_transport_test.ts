/**
 * The poll transport (issue #20, item 4) against real peers: a squid
 * bumping TLS with `request_header_access Upgrade deny all`, an nginx that
 * buffers answers and forwards no `Upgrade`, an nginx that re-frames
 * answers (chunked, or until it closes), a relay cut mid-transfer,
 * and serve's refusals of poll requests.
 *
 * @module
 */

import assert from "node:assert/strict";
import { checksummedEcho, startCutter } from "./_util/cutter.ts";
import {
  hashExactly,
  pseudoRandomChunks,
  sendChunks,
  sha256Of,
} from "./_util/data.ts";
import {
  bytes,
  connect,
  freePort,
  pause,
  readAll,
  readExactly,
  startBannerServer,
  startEchoServer,
  text,
  within,
  writeAll,
} from "./_util/net.ts";
import {
  missing,
  nginxConf,
  startBumpingSquid,
  startNginx,
} from "./_util/proxies.ts";
import {
  ALICE_TOKEN,
  logMatches,
  missingWebsockets,
  SERVE_TLS_ARGS,
  serveCertificates,
  startServe,
} from "./_util/serve.ts";
import { missingSshd, sshSession, startSshd } from "./_util/sshd.ts";
import { encodeFrame, FrameDecoder } from "../lib/session/frame.ts";
import { BufferedDuplex } from "../lib/net/buffered.ts";
import {
  headerValue,
  readResponseHead,
  type ResponseHead,
} from "../lib/proxy/http_head.ts";
import {
  buildPollRequest,
  POLL_ID_HEADER,
  type PollRequestHead,
} from "../lib/poll/wire.ts";
import { captureLogs, runTool, startTool, TEST_OPTIONS } from "./_util/tool.ts";
import { startStatusServer } from "../lib/observe/status_server.ts";

const ignore = missingWebsockets() || missing("squid");

const BOB_TOKEN = "bob-token-0123456789abcdefgh";

Deno.test({
  name:
    "poll: transport=poll carries a checksummed echo to plain serve; a cut of its connections mid-transfer is byte-exact",
  ignore,
  async fn() {
    await using echo = startEchoServer();
    await using serve = await startServe({
      args: ["--allow", `127.0.0.1:${echo.port}`],
    });
    await using cutter = startCutter(serve.port);
    await using logs = await captureLogs();
    const port = freePort();
    {
      await using _tool = await startTool(
        `${port} 127.0.0.1 ${echo.port} ws://127.0.0.1:${cutter.port} token=${ALICE_TOKEN} transport=poll\n`,
      );
      await checksummedEcho(port, 8 * 1024 * 1024, () => {
        cutter.cut();
        return Promise.resolve();
      });
      await logs.waitFor(/sessions use the poll transport/);
    }
    // The tool's shutdown ends the session with a close request.
    await logMatches(serve, /session \S+ ended: token alice/);
    assert.ok(!logs.lines.some((line) => line.includes(ALICE_TOKEN)));
  },
});

Deno.test({
  name:
    "poll: both connections cut and new ones refused for a while: the session resumes over a new poll, and the echo is byte-exact",
  ignore,
  async fn() {
    await using echo = startEchoServer();
    await using serve = await startServe({
      args: ["--allow", `127.0.0.1:${echo.port}`],
    });
    await using cutter = startCutter(serve.port);
    await using logs = await captureLogs();
    const port = freePort();
    {
      await using _tool = await startTool(
        `${port} 127.0.0.1 ${echo.port} ws://127.0.0.1:${cutter.port} token=${ALICE_TOKEN} transport=poll\n`,
      );
      await checksummedEcho(port, 4 * 1024 * 1024, async () => {
        cutter.refuse();
        cutter.cut();
        await logs.waitFor(/reconnect attempt 1 /, 20_000);
        cutter.accept();
      });
      await logs.waitFor(/session \S+ resumed on attempt \d+/);
    }
    await logMatches(serve, /session \S+ resumed: token alice/);
    await logMatches(serve, /session \S+ ended: token alice/);
  },
});

Deno.test({
  name:
    "poll: through squid bumping TLS with Upgrade denied, transport=ws fails saying so, transport=poll carries ssh, transport=auto logs the fallback and carries 64 MiB checked by sha256",
  ignore: ignore || missingSshd(),
  async fn() {
    await using certs = await serveCertificates();
    await using sshd = await startSshd();
    await using echo = startEchoServer();
    await using squid = await startBumpingSquid(
      certs.ca,
      "request_header_access Upgrade deny all",
    );
    await using serve = await startServe({
      files: certs.files,
      args: [
        ...SERVE_TLS_ARGS,
        "--path",
        "/t",
        "--allow",
        `127.0.0.1:${sshd.port},127.0.0.1:${echo.port}`,
      ],
    });
    const squidCa = await Deno.readTextFile(squid.caFile);
    await using logs = await captureLogs();
    const [wsOnly, poll, auto] = [freePort(), freePort(), freePort()];
    const hops =
      `http://127.0.0.1:${squid.port} wss://127.0.0.1:${serve.port}/t token=${ALICE_TOKEN} ca-file=squid-ca.pem`;
    await using _tool = await startTool(
      [
        `${wsOnly} 127.0.0.1 ${echo.port} ${hops} transport=ws`,
        `${poll} 127.0.0.1 ${sshd.port} ${hops} transport=poll`,
        `${auto} 127.0.0.1 ${echo.port} ${hops}`,
      ].join("\n"),
      { defaults: TEST_OPTIONS },
      { env: () => undefined, readFile: () => squidCa },
    );

    // transport=ws: serve sees the upgrade without Upgrade and says so.
    {
      using conn = await connect(wsOnly);
      assert.equal(
        (await within(readAll(conn), 20_000, "the refusal")).length,
        0,
      );
      await logs.waitFor(
        /without its Upgrade header .*use transport=poll/,
        20_000,
      );
    }

    // transport=poll: a real ssh session, two commands on one connection.
    {
      await using shell = sshSession(sshd, poll);
      assert.match(await shell.run("echo $$", 60_000), /^\d+\n$/);
      assert.equal(await shell.run("echo poll-$((6 * 7))"), "poll-42\n");
    }

    // transport=auto: WebSocket first, then polling, logged once.
    {
      using conn = await connect(auto);
      const total = 64 * 1024 * 1024;
      const [sent, received] = await within(
        Promise.all([
          (async () => {
            await sendChunks(conn, pseudoRandomChunks(11, total));
            return sha256Of(pseudoRandomChunks(11, total));
          })(),
          hashExactly(conn, total),
        ]),
        240_000,
        "64 MiB through the bumping squid and back",
      );
      assert.equal(received, sent);
    }
    const fallbacks = logs.lines.filter((line) =>
      /WebSocket upgrade did not happen.*falling back to the poll transport \(transport=auto\)/
        .test(line)
    );
    assert.equal(fallbacks.length, 1, logs.lines.join("\n"));
    await logMatches(serve, /refused 426 no-upgrade: .*token alice/);
    // squid saw the poll requests in the clear, after the refused upgrade.
    const access = await Deno.readTextFile(`${squid.dir}/access.log`);
    const at = `https://127\\.0\\.0\\.1:${serve.port}/t`;
    assert.match(access, new RegExp(`TCP_MISS/426 \\d+ GET ${at}`));
    assert.match(access, new RegExp(`TCP_MISS/200 \\d+ POST ${at}`));
    assert.match(access, new RegExp(`TCP_MISS/200 \\d+ GET ${at}`));
    assert.ok(!logs.lines.some((line) => line.includes(ALICE_TOKEN)));
  },
});

/**
 * nginx in front of plain serve: answers buffered, no Upgrade passed on;
 * with `upgrade`, Upgrade passed on.
 */
function bufferingNginx(servePort: number, upgrade = false) {
  const passUpgrade = upgrade
    ? `
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_read_timeout 600s;`
    : "";
  return (dir: string, port: number) =>
    nginxConf(
      dir,
      `  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://127.0.0.1:${servePort};
      proxy_buffering on;
      proxy_request_buffering on;${passUpgrade}
    }
  }`,
    );
}

Deno.test({
  name:
    "poll: nginx buffering answers (proxy_buffering on, no Upgrade passed) in front of plain serve: transport=auto falls back and carries a checksummed echo; probe lists both transports",
  ignore: ignore || missing("nginx"),
  async fn() {
    await using echo = startEchoServer();
    await using ssh = startBannerServer("SSH-2.0-probe\r\n");
    await using serve = await startServe({
      args: ["--allow", `127.0.0.1:${echo.port},127.0.0.1:${ssh.port}`],
    });
    await using nginx = await startNginx(bufferingNginx(serve.port));
    await using logs = await captureLogs();
    const port = freePort();
    await using _tool = await startTool(
      `${port} 127.0.0.1 ${echo.port} ws://127.0.0.1:${nginx.port} token=${ALICE_TOKEN}\n`,
    );
    await checksummedEcho(port, 4 * 1024 * 1024, () => Promise.resolve());
    await logs.waitFor(/falling back to the poll transport/);
    const access = await Deno.readTextFile(`${nginx.dir}/access.log`);
    assert.match(access, /"GET \/ HTTP\/1\.1" 200/);
    assert.match(access, /"POST \/ HTTP\/1\.1" 200/);

    // probe shows which transports get through nginx: polling only.
    const probe = await runTool([
      "probe",
      "127.0.0.1",
      String(ssh.port),
      "--proxy",
      `ws://127.0.0.1:${nginx.port}`,
      "--token",
      ALICE_TOKEN,
    ]);
    assert.equal(probe.code, 0, probe.stdout + probe.stderr);
    assert.match(
      probe.stdout,
      /FAIL {2}transport ws: WebSocket to 127\.0\.0\.1:\d+\/ .*without its Upgrade header/,
    );
    assert.match(
      probe.stdout,
      /ok {4}transport poll: poll \(plain HTTP requests\) to 127\.0\.0\.1:\d+\/ .*works/,
    );
    assert.match(probe.stdout, /=> works/);
  },
});

Deno.test({
  name:
    "poll: /status, status and status --json show each session route's transport and why auto fell back; serve's /status each session's transport",
  ignore: ignore || missing("nginx"),
  async fn() {
    await using echo = startEchoServer();
    const serveStatus = freePort();
    await using serve = await startServe({
      args: [
        "--allow",
        `127.0.0.1:${echo.port}`,
        "--status",
        `127.0.0.1:${serveStatus}`,
      ],
    });
    await using nginx = await startNginx(bufferingNginx(serve.port));
    const [direct, stripped] = [freePort(), freePort()];
    await using tool = await startTool(
      [
        `${direct} 127.0.0.1 ${echo.port} ws://127.0.0.1:${serve.port} token=${ALICE_TOKEN}`,
        `${stripped} 127.0.0.1 ${echo.port} ws://127.0.0.1:${nginx.port} token=${ALICE_TOKEN}`,
      ].join("\n"),
    );
    const server = startStatusServer(
      { host: "127.0.0.1", port: 0 },
      () => tool.supervisor,
      {},
    );
    try {
      // One tunnel open on each route, so each has a session.
      using one = await connect(direct);
      using two = await connect(stripped);
      for (const conn of [one, two]) {
        await writeAll(conn, bytes("ping"));
        assert.equal(
          text(await within(readExactly(conn, 4), 20_000, "the echo")),
          "ping",
        );
      }
      const address = `127.0.0.1:${server.addr.port}`;
      const json = await runTool(["status", address, "--json"]);
      assert.equal(json.code, 0, json.stderr);
      const routes = JSON.parse(json.stdout).sessionRoutes;
      const byRoute = (port: number) =>
        routes.find((route: { route: string }) =>
          route.route === `via ws://127.0.0.1:${port}/`
        );
      assert.deepEqual(
        { ...byRoute(serve.port), since: undefined },
        {
          route: `via ws://127.0.0.1:${serve.port}/`,
          mode: "auto",
          transport: "websocket",
          fallback: null,
          since: undefined,
          sessions: 1,
        },
      );
      const fellBack = byRoute(nginx.port);
      assert.equal(fellBack.transport, "poll");
      assert.equal(fellBack.sessions, 1);
      assert.match(fellBack.fallback, /without its Upgrade header/);
      assert.ok(!json.stdout.includes(ALICE_TOKEN));

      const table = await runTool(["status", address, "--wide"]);
      assert.equal(table.code, 0, table.stderr);
      const section = table.stdout.slice(
        table.stdout.indexOf("session transports"),
      );
      assert.match(
        section,
        new RegExp(`ws://127\\.0\\.0\\.1:${serve.port}/ +auto +WebSocket +1 `),
      );
      assert.match(
        section,
        new RegExp(
          `ws://127\\.0\\.0\\.1:${nginx.port}/ +auto +poll +1 .*fell back to poll: .*without its Upgrade header`,
        ),
      );

      // serve's /status: one session on each transport.
      const far = await (await fetch(
        `http://127.0.0.1:${serveStatus}/status`,
      )).json();
      assert.deepEqual(
        far.sessions.map((each: { transport: string }) => each.transport)
          .sort(),
        ["poll", "websocket"],
      );
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  name:
    "poll: transport=auto that fell back tries the WebSocket again as its session reconnects: nginx stripping Upgrade replaced by one passing it, the route goes back to WebSocket, the echo byte-exact",
  ignore: ignore || missing("nginx"),
  async fn() {
    await using echo = startEchoServer();
    await using serve = await startServe({
      args: ["--allow", `127.0.0.1:${echo.port}`],
    });
    const nginxPort = freePort();
    let nginx = await startNginx(bufferingNginx(serve.port), nginxPort);
    try {
      await using logs = await captureLogs();
      const port = freePort();
      await using tool = await startTool(
        `${port} 127.0.0.1 ${echo.port} ws://127.0.0.1:${nginxPort} token=${ALICE_TOKEN}\n`,
        { defaults: TEST_OPTIONS, wsRetryMs: 0 },
      );
      await checksummedEcho(port, 4 * 1024 * 1024, async () => {
        await logs.waitFor(/falling back to the poll transport/);
        await nginx[Symbol.asyncDispose]();
        await logs.waitFor(/lost its connection/, 20_000);
        nginx = await startNginx(bufferingNginx(serve.port, true), nginxPort);
      });
      await logs.waitFor(
        /trying the WebSocket again as the session reconnects/,
      );
      await logs.waitFor(
        /the WebSocket upgrade gets through again; sessions use WebSocket \(transport=auto\)/,
      );
      await logs.waitFor(/session \S+ resumed on attempt \d+/);
      const [route] = tool.supervisor.sessionRoutes;
      assert.equal(route.transport, "websocket");
      assert.equal(route.fallback, null);
      await logMatches(serve, /session \S+ resumed: token alice/);
    } finally {
      await nginx[Symbol.asyncDispose]();
    }
  },
});

/**
 * nginx that re-frames serve's answers: the addition filter (with an empty
 * addition) drops Content-Length, so answers go chunked at `/`, and until
 * the connection closes at `/closing` (chunked_transfer_encoding off).
 */
function reframingNginx(servePort: number) {
  return (dir: string, port: number) =>
    nginxConf(
      dir,
      `  server {
    listen 127.0.0.1:${port};
    addition_types *;
    add_after_body /nothing;
    location = /nothing { internal; return 200 ""; }
    location / {
      proxy_pass http://127.0.0.1:${servePort};
    }
    location = /closing {
      proxy_pass http://127.0.0.1:${servePort}/;
      chunked_transfer_encoding off;
    }
  }`,
    );
}

/** Sends a poll request on a new connection and reads its answer's head. */
async function rawPollHead(
  port: number,
  path: string,
  request: Omit<PollRequestHead, "server" | "path">,
): Promise<ResponseHead> {
  using conn = await connect(port);
  await writeAll(
    conn,
    bytes(
      buildPollRequest({
        server: { host: "127.0.0.1", port },
        path,
        token: ALICE_TOKEN,
        ...request,
      }),
    ),
  );
  return await within(
    readResponseHead(new BufferedDuplex(conn), () => new Error("no answer")),
    10_000,
    `the answer to a poll ${request.kind}`,
  );
}

Deno.test({
  name:
    "poll: nginx re-framing answers as chunked (and, at another path, until it closes): POST and GET answers arrive so, and transport=poll carries a checksummed echo through each",
  ignore: ignore || missing("nginx"),
  async fn() {
    await using echo = startEchoServer();
    await using serve = await startServe({
      // An idle receive is held a third of the heartbeat: 1 s.
      args: ["--allow", `127.0.0.1:${echo.port}`, "--heartbeat", "3s"],
    });
    await using nginx = await startNginx(reframingNginx(serve.port));

    // Read raw: nginx really re-frames the POST and the GET answers.
    for (const [path, framed] of [["/", /chunked/], ["/closing", /close/]]) {
      const open = await rawPollHead(nginx.port, path as string, {
        kind: "open",
      });
      assert.equal(open.status, 200);
      assert.equal(headerValue(open, "content-length"), undefined);
      const id = headerValue(open, POLL_ID_HEADER)!;
      const receive = await rawPollHead(nginx.port, path as string, {
        kind: "receive",
        id,
        seq: 0,
      });
      assert.equal(receive.status, 200);
      assert.equal(headerValue(receive, "content-length"), undefined);
      for (const head of [open, receive]) {
        assert.match(
          headerValue(head, "transfer-encoding") ??
            headerValue(head, "connection") ?? "",
          framed as RegExp,
        );
      }
    }

    await using logs = await captureLogs();
    const [chunked, closing] = [freePort(), freePort()];
    const hops = `ws://127.0.0.1:${nginx.port}`;
    await using _tool = await startTool(
      [
        `${chunked} 127.0.0.1 ${echo.port} ${hops}/ token=${ALICE_TOKEN} transport=poll`,
        `${closing} 127.0.0.1 ${echo.port} ${hops}/closing token=${ALICE_TOKEN} transport=poll`,
      ].join("\n"),
    );
    await checksummedEcho(chunked, 8 * 1024 * 1024, () => Promise.resolve());
    await checksummedEcho(closing, 2 * 1024 * 1024, () => Promise.resolve());
    assert.ok(
      !logs.lines.some((line) => /badly framed|protocol error/.test(line)),
      logs.lines.join("\n"),
    );
  },
});

/** A poll request to serve, as fetch sends it. */
function pollRequest(
  port: number,
  token: string,
  kind: string,
  id?: string,
  seq?: number,
  body: Uint8Array = new Uint8Array(0),
): Promise<Response> {
  return fetch(`http://127.0.0.1:${port}/`, {
    method: kind === "receive" ? "GET" : "POST",
    headers: {
      authorization: `Bearer ${token}`,
      "x-httptunneling-poll": kind,
      ...(id === undefined ? {} : { "x-httptunneling-poll-id": id }),
      ...(seq === undefined ? {} : { "x-httptunneling-seq": String(seq) }),
    },
    body: kind === "receive" ? undefined : body as Uint8Array<ArrayBuffer>,
  });
}

Deno.test({
  name:
    "poll: serve refuses a wrong token, an unknown poll id and another token's poll id alike, and a sequence gap",
  ignore,
  async fn() {
    await using echo = startEchoServer();
    await using serve = await startServe({
      args: ["--allow", `127.0.0.1:${echo.port}`],
      files: { "tokens.txt": `alice ${ALICE_TOKEN}\nbob ${BOB_TOKEN}\n` },
    });

    const wrong = await pollRequest(
      serve.port,
      "not-a-token-0123456789",
      "open",
    );
    assert.equal(wrong.status, 401);
    assert.equal(wrong.headers.get("x-httptunneling-refusal"), "auth");
    await wrong.body?.cancel();

    const bobs = await pollRequest(serve.port, BOB_TOKEN, "open");
    assert.equal(bobs.status, 200);
    await bobs.body?.cancel();
    const bobId = bobs.headers.get("x-httptunneling-poll-id")!;
    assert.match(bobId, /^[0-9a-f]{32}$/);

    const answers = [];
    for (const id of [bobId, "0".repeat(32)]) {
      const answer = await pollRequest(
        serve.port,
        ALICE_TOKEN,
        "receive",
        id,
        0,
      );
      answers.push([
        answer.status,
        answer.headers.get("x-httptunneling-refusal"),
        await answer.text(),
      ]);
    }
    assert.deepEqual(answers[0], answers[1]);
    assert.equal(answers[0][0], 404);
    assert.equal(answers[0][1], "unknown-poll");

    // Bob's own poll still works: the refusal did not touch it.
    const own = await pollRequest(serve.port, BOB_TOKEN, "send", bobId, 0);
    assert.equal(own.status, 200);
    await own.body?.cancel();
    const gap = await pollRequest(serve.port, BOB_TOKEN, "send", bobId, 5);
    assert.equal(gap.status, 409);
    await gap.body?.cancel();
    const gone = await pollRequest(serve.port, BOB_TOKEN, "send", bobId, 1);
    assert.equal(gone.status, 404);
    await gone.body?.cancel();

    // The tool with a wrong token says which and never shows it.
    await using logs = await captureLogs();
    const port = freePort();
    await using _tool = await startTool(
      `${port} 127.0.0.1 ${echo.port} ws://127.0.0.1:${serve.port} token=wrong-token-0123456789 transport=poll\n`,
    );
    {
      using conn = await connect(port);
      await within(readAll(conn), 20_000, "the refused tunnel");
    }
    await logs.waitFor(/refused the token .*check token=/);
    assert.ok(
      !logs.lines.some((line) => line.includes("wrong-token-0123456789")),
    );
  },
});

Deno.test({
  name:
    "poll: a session whose client stops polling is a lost transport after serve's --heartbeat, then waits for a resume",
  ignore,
  async fn() {
    await using serve = await startServe({
      args: ["--allow", "127.0.0.1:1", "--heartbeat", "1s"],
    });
    const open = await pollRequest(serve.port, ALICE_TOKEN, "open");
    await open.body?.cancel();
    const id = open.headers.get("x-httptunneling-poll-id")!;
    const hello = encodeFrame({ type: "hello", streams: [] });
    const sent = await pollRequest(
      serve.port,
      ALICE_TOKEN,
      "send",
      id,
      0,
      hello,
    );
    assert.equal(sent.status, 200);
    await sent.body?.cancel();
    const answer = await pollRequest(serve.port, ALICE_TOKEN, "receive", id, 0);
    assert.equal(
      answer.headers.get("content-type"),
      "application/octet-stream",
    );
    const [welcome] = new FrameDecoder().push(await answer.bytes());
    assert.equal(welcome.type, "welcome");
    // The same receive again (its answer "lost"): the same bytes.
    const again = await pollRequest(serve.port, ALICE_TOKEN, "receive", id, 0);
    assert.equal(
      new FrameDecoder().push(await again.bytes())[0].type,
      "welcome",
    );
    await logMatches(
      serve,
      /session \S+ lost its poll transport \(no request within 1 s\): token alice .*wait up to 600 s for a resume/,
    );
  },
});

/** A poll of serve's at `port` whose session is welcomed: its id. */
async function welcomedPoll(port: number): Promise<string> {
  const open = await pollRequest(port, ALICE_TOKEN, "open");
  await open.body?.cancel();
  const id = open.headers.get("x-httptunneling-poll-id")!;
  const hello = encodeFrame({ type: "hello", streams: [] });
  const sent = await pollRequest(port, ALICE_TOKEN, "send", id, 0, hello);
  await sent.body?.cancel();
  const answer = await pollRequest(port, ALICE_TOKEN, "receive", id, 0);
  assert.equal(
    new FrameDecoder().push(await answer.bytes())[0].type,
    "welcome",
  );
  return id;
}

/** Milliseconds until serve answers `receive seq` of poll `id`, and its frames. */
async function timedReceive(port: number, id: string, seq: number) {
  const started = performance.now();
  const answer = await within(
    pollRequest(port, ALICE_TOKEN, "receive", id, seq),
    20_000,
    "the receive",
  );
  const frames = new FrameDecoder().push(await answer.bytes());
  return { ms: performance.now() - started, frames };
}

Deno.test({
  name:
    "poll: an idle receive is held 10 s (a third of --heartbeat when shorter), so an idle session costs the proxy a request per 10 s; queued bytes answer it at once",
  ignore,
  async fn() {
    await using long = await startServe({
      args: ["--allow", "127.0.0.1:1", "--heartbeat", "60s"],
    });
    await using short = await startServe({
      args: ["--allow", "127.0.0.1:1", "--heartbeat", "3s"],
    });
    const [longId, shortId] = await Promise.all(
      [long.port, short.port].map(welcomedPoll),
    );
    const [longHold, shortHold] = await Promise.all([
      timedReceive(long.port, longId, 1),
      timedReceive(short.port, shortId, 1),
    ]);
    assert.deepEqual(longHold.frames, []);
    assert.ok(longHold.ms >= 9_500, `held ${longHold.ms} ms`);
    assert.deepEqual(shortHold.frames, []);
    assert.ok(
      shortHold.ms >= 900 && shortHold.ms < 2_900,
      `held ${shortHold.ms} ms`,
    );

    // A held receive is answered as soon as the session has bytes: here
    // the refusal of a stream to a target serve does not allow.
    const held = timedReceive(long.port, longId, 2);
    await pause(200);
    const open = encodeFrame({
      type: "open",
      stream: 1,
      host: "127.0.0.2",
      port: 22,
      window: 256 * 1024,
    });
    const sent = await pollRequest(
      long.port,
      ALICE_TOKEN,
      "send",
      longId,
      1,
      open,
    );
    await sent.body?.cancel();
    const answered = await held;
    assert.equal(answered.frames[0]?.type, "refuse");
    assert.ok(answered.ms < 9_000, `answered after ${answered.ms} ms`);
  },
});
