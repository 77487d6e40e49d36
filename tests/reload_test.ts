import assert from "node:assert/strict";
import { loadConfig } from "../lib/config/load.ts";
import { ConfigReloader } from "../lib/config/reload.ts";
import { Supervisor } from "../lib/supervisor.ts";
import { watchConfig } from "../lib/config/watch.ts";
import { hashExactly, pseudoRandomChunks, sha256Of } from "./_util/data.ts";
import {
  connect,
  echoRoundTrip,
  eventually,
  freePort,
  pause,
  startEchoServer,
  within,
  writeAll,
} from "./_util/net.ts";
import { captureLogs, tempConfig, TEST_OPTIONS } from "./_util/tool.ts";

const DEBOUNCE_MS = 50;

/**
 * The tool as `run` wires it: a supervisor, a reloader and a directory
 * watch on `dir/tunnels.conf`. Disposing it removes `dir`.
 */
async function startWatchedTool(dir: string) {
  const path = `${dir}/tunnels.conf`;
  const supervisor = new Supervisor({ defaults: TEST_OPTIONS });
  const config = loadConfig(path);
  await supervisor.apply(config.entries);
  let applied = 0;
  const reloader = new ConfigReloader(
    path,
    async (entries) => {
      await supervisor.apply(entries);
      applied++;
    },
    config.text,
  );
  const watch = watchConfig(
    path,
    () => reloader.reload("file changed"),
    DEBOUNCE_MS,
  );
  return {
    dir,
    path,
    supervisor,
    get applied() {
      return applied;
    },
    /** Resolves once exactly these source ports are listening. */
    async listening(ports: number[], what: string) {
      const want = ports.map((port) => `127.0.0.1:${port}`).toSorted().join(
        " ",
      );
      await eventually(
        () => [...supervisor.listeners.keys()].toSorted().join(" ") === want,
        5_000,
        what,
      );
    },
    async [Symbol.asyncDispose]() {
      await watch.close();
      await reloader.settled();
      await supervisor.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

type Save = (path: string, text: string) => Promise<void>;

const SAVE_STYLES: Record<string, Save> = {
  "in-place write": (path, text) => Deno.writeTextFile(path, text),
  "rename over (vim, sed -i)": async (path, text) => {
    await Deno.writeTextFile(`${path}.tmp~`, text);
    await Deno.rename(`${path}.tmp~`, path);
  },
  "delete and recreate": async (path, text) => {
    await Deno.remove(path);
    await pause(2 * DEBOUNCE_MS);
    await Deno.writeTextFile(path, text);
  },
};

for (const [style, save] of Object.entries(SAVE_STYLES)) {
  Deno.test(`reload on ${style}, every time (10 saves)`, async () => {
    await using echo = startEchoServer();
    const first = freePort();
    await using tool = await startWatchedTool(
      await tempConfig(`${first} 127.0.0.1 ${echo.port}\n`),
    );
    for (let save_ = 1; save_ <= 10; save_++) {
      const port = freePort();
      await save(tool.path, `${port} 127.0.0.1 ${echo.port}\n`);
      await tool.listening([port], `save ${save_} applied`);
    }
    assert.equal(tool.applied, 10);
  });
}

Deno.test("reload on a Kubernetes ConfigMap-style ..data symlink swap, every time", async () => {
  await using echo = startEchoServer();
  const dir = await Deno.makeTempDir({ prefix: "httptunneling-configmap-" });
  const publish = async (version: number, text: string) => {
    await Deno.mkdir(`${dir}/..v${version}`);
    await Deno.writeTextFile(`${dir}/..v${version}/tunnels.conf`, text);
    await Deno.symlink(`..v${version}`, `${dir}/..data_tmp`);
    await Deno.rename(`${dir}/..data_tmp`, `${dir}/..data`);
    if (version > 0) {
      await Deno.remove(`${dir}/..v${version - 1}`, { recursive: true });
    }
  };
  await publish(0, `${freePort()} 127.0.0.1 ${echo.port}\n`);
  await Deno.symlink("..data/tunnels.conf", `${dir}/tunnels.conf`);
  // The tool reads the config through the symlink, whose name never changes.
  await using tool = await startWatchedTool(dir);
  for (let version = 1; version <= 10; version++) {
    const port = freePort();
    await publish(version, `${port} 127.0.0.1 ${echo.port}\n`);
    await tool.listening([port], `ConfigMap version ${version} applied`);
  }
  assert.equal(tool.applied, 10);
});

Deno.test("an invalid config changes nothing and logs file:line:col; the next good save applies", async () => {
  await using logs = await captureLogs();
  await using echo = startEchoServer();
  const port = freePort();
  await using tool = await startWatchedTool(
    await tempConfig(`${port} 127.0.0.1 ${echo.port}\n`),
  );
  await Deno.writeTextFile(
    tool.path,
    `${port} 127.0.0.1 ${echo.port}\n${freePort()} host 99999\n`,
  );
  await logs.waitFor(
    /tunnels\.conf:2:\d+: invalid destination port "99999": use a number from 1 to 65535$/,
  );
  await logs.waitFor(
    /has 1 error; nothing changed, fix the file and save it again$/,
  );
  assert.equal(tool.applied, 0);
  assert.equal(await echoRoundTrip(port, "still serving"), "still serving");
  const added = freePort();
  await Deno.writeTextFile(
    tool.path,
    `${port} 127.0.0.1 ${echo.port}\n${added} 127.0.0.1 ${echo.port}\n`,
  );
  await tool.listening([port, added], "fixed config applied");
  await logs.waitFor(
    /^config applied: 1 added, 0 removed, 0 changed, 1 unchanged in \d+ ms$/,
  );
});

Deno.test("a missing file keeps the running set; the file is picked up when it comes back", async () => {
  await using logs = await captureLogs();
  await using echo = startEchoServer();
  const port = freePort();
  await using tool = await startWatchedTool(
    await tempConfig(`${port} 127.0.0.1 ${echo.port}\n`),
  );
  await Deno.remove(tool.path);
  await logs.waitFor(
    /Cannot read config file .*tunnels\.conf: .*; the running tunnels stay as they are$/,
  );
  assert.equal(await echoRoundTrip(port, "still serving"), "still serving");
  const back = freePort();
  await Deno.writeTextFile(tool.path, `${back} 127.0.0.1 ${echo.port}\n`);
  await tool.listening([back], "the file came back");
});

Deno.test("saving the same content again changes nothing", async () => {
  await using logs = await captureLogs();
  await using echo = startEchoServer();
  const config = `${freePort()} 127.0.0.1 ${echo.port}\n`;
  await using tool = await startWatchedTool(await tempConfig(config));
  const [listener] = tool.supervisor.listeners.values();
  await Deno.writeTextFile(tool.path, config);
  await logs.waitFor(/^reload \(file changed\): .*tunnels\.conf unchanged$/);
  assert.equal(tool.applied, 0);
  assert.equal([...tool.supervisor.listeners.values()][0], listener);
});

Deno.test("stress: 200 tunnels stream checksummed data while the config is rewritten 100 times", async () => {
  const TUNNELS = 200;
  const REWRITES = 100;
  await using echo = startEchoServer();
  const port = freePort();
  const keep = `${port} 127.0.0.1 ${echo.port}\n`;
  await using tool = await startWatchedTool(await tempConfig(keep));
  let rewriting = true;
  const stream = async (index: number) => {
    using conn = await connect(port);
    const sent: Uint8Array[] = [];
    const chunks = pseudoRandomChunks(index + 1, Number.MAX_SAFE_INTEGER, 4096);
    let length = 0;
    const echoed = (async () => {
      const hashes: string[] = [];
      // Read back in step with what was sent, chunk by chunk.
      while (true) {
        if (hashes.length === sent.length && !rewriting) break;
        if (hashes.length === sent.length) {
          await pause(5);
          continue;
        }
        hashes.push(await hashExactly(conn, sent[hashes.length].length));
      }
      return hashes;
    })();
    while (rewriting) {
      const chunk = chunks.next().value as Uint8Array;
      // Counted before it is written: the reader stops once it has read
      // back as many chunks as were sent, and must not stop short of one
      // still being written.
      sent.push(chunk);
      await writeAll(conn, chunk);
      length += chunk.length;
      await pause(20);
    }
    const hashes = await echoed;
    assert.deepEqual(
      hashes,
      sent.map((chunk) => sha256Of([chunk])),
      `tunnel ${index}`,
    );
    return length;
  };
  const tunnels = Array.from({ length: TUNNELS }, (_, i) => stream(i));
  await eventually(
    () => tool.supervisor.tunnels.length === TUNNELS,
    10_000,
    "all tunnels open",
  );
  for (let rewrite = 1; rewrite <= REWRITES; rewrite++) {
    const others = Array.from({ length: rewrite % 4 }, () => freePort());
    await Deno.writeTextFile(
      tool.path,
      keep +
        others.map((other) => `${other} 127.0.0.1 ${echo.port}\n`).join(""),
    );
    await tool.listening([port, ...others], `rewrite ${rewrite}`);
  }
  assert.equal(tool.supervisor.tunnels.length, TUNNELS, "no tunnel dropped");
  rewriting = false;
  const lengths = await within(Promise.all(tunnels), 30_000, "tunnels finish");
  assert.ok(lengths.every((length) => length > 0));
  assert.ok(tool.applied >= REWRITES - 1);
  await tool.listening([port], "only the kept entry");
});

Deno.test("a reload always says what happened: valid again after an error, and an unchanged SIGHUP", async () => {
  await using logs = await captureLogs();
  await using echo = startEchoServer();
  const config = `${freePort()} 127.0.0.1 ${echo.port}\n`;
  await using tool = await startWatchedTool(await tempConfig(config));
  await Deno.writeTextFile(tool.path, `${config}bad line\n`);
  await logs.waitFor(/nothing changed, fix the file and save it again$/);
  // Fixed by going back to exactly the text that is running.
  await Deno.writeTextFile(tool.path, config);
  await logs.waitFor(
    /^reload \(file changed\): .*tunnels\.conf is valid again; unchanged since the last apply$/,
  );
  const reloader = new ConfigReloader(
    tool.path,
    () => Promise.resolve(),
    config,
  );
  assert.equal(await reloader.reload("SIGHUP"), "unchanged");
  await logs.waitFor(/^reload \(SIGHUP\): .*tunnels\.conf unchanged$/);
  assert.equal(tool.applied, 0);
});
