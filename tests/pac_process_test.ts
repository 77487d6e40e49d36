/**
 * The PAC sandbox process: answers as the in-process Worker does, with
 * lookups answered by the tool; a script that loops for ever is killed
 * with its process at the time limit, so that nothing keeps spinning, and
 * one that allocates without end dies alone under its heap cap; the next
 * call gets a fresh process. Real processes.
 */
import assert from "node:assert/strict";
import { PAC_SANDBOX_COMMAND } from "../lib/route/pac/child.ts";
import type { PacLookups } from "../lib/route/pac/lookups.ts";
import { PacProcess } from "../lib/route/pac/process.ts";
import { PacScriptError, PacTimeoutError } from "../lib/route/pac/sandbox.ts";
import { startServer } from "./_util/net.ts";
import { COMPILE_FLAGS, cpuSeconds, ROOT, runTool } from "./_util/tool.ts";

const FAKE_DNS: PacLookups = {
  resolveIpv4: (host) =>
    Promise.resolve(host === "intranet.test" ? ["10.1.2.3"] : []),
  resolveAll: (host) =>
    Promise.resolve(host === "intranet.test" ? ["fd00::5", "10.1.2.3"] : []),
  myAddresses: () => Promise.resolve(["192.0.2.44", "127.0.0.1"]),
};

const HOSTILE_ON = `
  function FindProxyForURL(url, host) {
    if (host === "loop") for (;;) {}
    if (host === "memory") { var a = []; for (;;) a.push(new Array(1e6).fill(1)); }
    return "PROXY " + dnsResolve(host) + ":3128";
  }`;

function gone(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return false;
  } catch {
    return true;
  }
}

async function until(check: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!check() && Date.now() < end) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return check();
}

Deno.test("process: answers like the Worker, lookups answered by the tool, errors located", async () => {
  const alerts: string[] = [];
  const sandbox = new PacProcess({
    text: `function FindProxyForURL(url, host) {
      alert("asked " + host);
      if (host === "chatty") for (var i = 0; i < 1000; i++) alert(i);
      return [url, host, dnsResolve(host), isResolvable("nowhere.test"),
        myIpAddress()].join(" ");
    }`,
    name: "t.pac",
  }, {
    lookups: FAKE_DNS,
    timeoutMs: 5_000,
    log: (level, message) => level === "info" && alerts.push(message),
  });
  try {
    assert.equal(
      await sandbox.find("https://intranet.test:22/", "intranet.test"),
      "https://intranet.test:22/ intranet.test 10.1.2.3 false 192.0.2.44",
    );
    assert.deepEqual(alerts, ["t.pac: alert(): asked intranet.test"]);
    // A script that alerts in a loop: 20 lines a call, then one saying so.
    alerts.length = 0;
    await sandbox.find("https://chatty/", "chatty");
    assert.equal(alerts.length, 21);
    assert.equal(alerts[19], "t.pac: alert(): 18");
    assert.equal(
      alerts[20],
      "t.pac: more than 20 alert() calls in one call; the rest are not logged",
    );
    alerts.length = 0;
    await sandbox.find("https://intranet.test:22/", "intranet.test");
    assert.deepEqual(alerts, ["t.pac: alert(): asked intranet.test"]);
  } finally {
    await sandbox.close();
  }
  const broken = new PacProcess({
    text:
      "var table = null;\nfunction FindProxyForURL(url, host) {\n  return table[host];\n}\n",
    name: "t.pac",
  }, { lookups: FAKE_DNS, timeoutMs: 5_000 });
  try {
    const error = await broken.find("https://a/", "a").catch((e) => e);
    assert.ok(error instanceof PacScriptError);
    assert.equal(error.line, 3);
    assert.match(
      error.message,
      /^t\.pac:3: FindProxyForURL\("https:\/\/a\/", "a"\) threw TypeError/,
    );
  } finally {
    await broken.close();
  }
});

Deno.test("process: a script that loops for ever is abandoned at the limit, its process killed, nothing spins, the next call answers", async () => {
  const logged: string[] = [];
  const sandbox = new PacProcess({ text: HOSTILE_ON, name: "loop.pac" }, {
    lookups: FAKE_DNS,
    timeoutMs: 1_000,
    log: (_level, message) => logged.push(message),
  });
  try {
    assert.equal(
      await sandbox.find("https://intranet.test/", "intranet.test"),
      "PROXY 10.1.2.3:3128",
    );
    const pid = sandbox.pid!;
    const started = performance.now();
    await assert.rejects(
      sandbox.find("https://loop/", "loop"),
      PacTimeoutError,
    );
    // The limit plus the process's grace, with room for a busy machine.
    assert.ok(performance.now() - started < 10_000);
    assert.ok(await until(() => gone(pid), 5_000), `pid ${pid} still runs`);
    assert.match(
      logged.join("\n"),
      /loop\.pac: FindProxyForURL\("https:\/\/loop\/", "loop"\) took longer than 1000 ms .*its sandbox process was killed/,
    );
    // Nothing of the loop is left: over two seconds this process uses a
    // small share of one core (a spinning thread would use all of it).
    const before = await cpuSeconds(Deno.pid);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const used = await cpuSeconds(Deno.pid) - before;
    assert.ok(used < 0.8, `the process used ${used} s of CPU in 2 s`);
    assert.equal(
      await sandbox.find("https://intranet.test/", "intranet.test"),
      "PROXY 10.1.2.3:3128",
    );
    assert.notEqual(sandbox.pid, pid);
  } finally {
    await sandbox.close();
  }
});

Deno.test("process: a memory bomb kills its process only; the tool goes on and the next call answers", async () => {
  const logged: string[] = [];
  const sandbox = new PacProcess({ text: HOSTILE_ON, name: "mem.pac" }, {
    lookups: FAKE_DNS,
    // Long enough that the heap cap, not the limit, ends the process.
    timeoutMs: 20_000,
    log: (_level, message) => logged.push(message),
  });
  try {
    assert.equal(
      await sandbox.find("https://intranet.test/", "intranet.test"),
      "PROXY 10.1.2.3:3128",
    );
    const pid = sandbox.pid!;
    const error = await sandbox.find("https://memory/", "memory").catch((
      e,
    ) => e);
    assert.ok(error instanceof PacScriptError, String(error));
    assert.match(error.message, /^mem\.pac: its sandbox process ended \(/);
    assert.match(logged.join("\n"), /its sandbox process ended/);
    assert.ok(gone(pid));
    assert.equal(
      await sandbox.find("https://intranet.test/", "intranet.test"),
      "PROXY 10.1.2.3:3128",
    );
  } finally {
    await sandbox.close();
  }
});

Deno.test("process: hostile scripts reach no file, no network and no module from it", async () => {
  const hits: string[] = [];
  await using server = startServer(async (conn) => {
    hits.push("connection");
    conn.close();
    await Promise.resolve();
  });
  const port = server.port;
  const sandbox = new PacProcess({
    text: `var result = "pending";
     import("file:///etc/passwd").then(() => result = "read", () => result = "refused");
     import("http://127.0.0.1:${port}/x.js").then(() => result += " fetched", () => result += " refused");
     function FindProxyForURL(url, host) {
       if (host === "file") return Deno.readTextFileSync("/etc/passwd");
       if (host === "fetch") { fetch("http://127.0.0.1:${port}/"); return "DIRECT"; }
       if (host === "connect") { Deno.connect({ port: ${port} }); return "DIRECT"; }
       return result;
     }`,
    name: "hostile.pac",
  }, { lookups: FAKE_DNS, timeoutMs: 5_000 });
  try {
    for (const host of ["file", "fetch", "connect"]) {
      const error = await sandbox.find(`https://${host}/`, host).catch((e) =>
        e
      );
      assert.ok(error instanceof PacScriptError, host);
      assert.match(error.message, /threw (ReferenceError|TypeError)/, host);
    }
    let result: unknown;
    for (let i = 0; i < 50 && !String(result).includes(" "); i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      result = await sandbox.find("https://a/", "a");
    }
    assert.equal(result, "refused refused");
  } finally {
    await sandbox.close();
  }
  assert.deepEqual(hits, []);
});

Deno.test("process: a process that keeps dying is started again only after a backoff", async () => {
  const sandbox = new PacProcess({ text: HOSTILE_ON, name: "loop.pac" }, {
    lookups: FAKE_DNS,
    timeoutMs: 300,
  });
  try {
    for (let i = 0; i < 3; i++) {
      await assert.rejects(
        sandbox.find("https://loop/", "loop"),
        PacTimeoutError,
      );
    }
    await assert.rejects(
      sandbox.find("https://intranet.test/", "intranet.test"),
      /loop\.pac: its sandbox process ended 3 times in a row; it is started again in 1 s/,
    );
    assert.equal(sandbox.pid, undefined);
  } finally {
    await sandbox.close();
  }
});

Deno.test("process: the hidden __pac-sandbox subcommand, as a compiled binary starts it, with the binary's permissions, answers and is not in the usage", async () => {
  const sandbox = new PacProcess({
    text: `function FindProxyForURL(url, host) {
      var reached = [];
      try { Deno.readTextFileSync("deno.json"); reached.push("read"); } catch (e) {}
      return "PROXY " + dnsResolve(host) + ":3128" + reached.join(" ");
    }`,
    name: "compiled.pac",
  }, {
    lookups: FAKE_DNS,
    timeoutMs: 5_000,
    spawn: {
      command: Deno.execPath(),
      // What the binary carries; run from source, the Worker's code must
      // be readable too (the binary embeds it).
      args: [
        "run",
        "--quiet",
        `--config=${ROOT}deno.json`,
        ...COMPILE_FLAGS,
        `--allow-read=.,${ROOT}`,
        `${ROOT}main.ts`,
        PAC_SANDBOX_COMMAND,
      ],
      env: {},
    },
  });
  try {
    assert.equal(
      await sandbox.find("https://intranet.test/", "intranet.test"),
      "PROXY 10.1.2.3:3128",
    );
  } finally {
    await sandbox.close();
  }
  const usage = await runTool(["--help"]);
  assert.doesNotMatch(usage.stdout + usage.stderr, /pac-sandbox/);
});
