/**
 * A pac= route's engine between its script and the connections: answers
 * cached per scheme, host and port (per URL for a plain request) for
 * pac-cache=, failures not cached, the fallback, and a changed script that
 * does not load leaving the last good one answering. A real sandbox
 * process and a real file.
 */
import assert from "node:assert/strict";
import { PacEngine } from "../lib/route/pac/engine.ts";
import type { PacLookups } from "../lib/route/pac/lookups.ts";
import { requestQuery, tunnelQuery } from "../lib/route/pac/url.ts";
import { formatPacResult } from "../lib/route/pac/result.ts";

const NO_DNS: PacLookups = {
  resolveIpv4: () => Promise.resolve([]),
  resolveAll: () => Promise.resolve([]),
  myAddresses: () => Promise.resolve(["192.0.2.44"]),
};

// Each call answers a new proxy, so an answer tells which call gave it.
const COUNTING = `var calls = 0, failed = false;
function FindProxyForURL(url, host) {
  calls++;
  if (host === "flaky" && !failed) { failed = true; throw new Error("not yet"); }
  return "PROXY p" + calls + ".example:3128";
}
`;

Deno.test("engine: answers are reused for pac-cache= per scheme, host and port, failures are not; a changed script that does not load leaves the last good one answering", async () => {
  const dir = await Deno.makeTempDir({ prefix: "httptunneling-pac-" });
  const path = `${dir}/count.pac`;
  await Deno.writeTextFile(path, COUNTING);
  const logged: string[] = [];
  const engine = new PacEngine({
    kind: "pac",
    source: path,
    cacheMs: 300,
    fallback: "direct",
  }, {
    lookups: NO_DNS,
    log: (level, message) => logged.push(`${level} ${message}`),
  });
  const ask = async (query: ReturnType<typeof tunnelQuery>) =>
    formatPacResult((await engine.decide(query)).alternatives);
  try {
    const ssh = tunnelQuery({ host: "git.example", port: 22 });
    assert.equal(await ask(ssh), "PROXY p1.example:3128");
    assert.equal(await ask(ssh), "PROXY p1.example:3128");
    assert.equal(
      await ask(tunnelQuery({ host: "GIT.example", port: 22 })),
      "PROXY p1.example:3128",
    );
    // Another port, another scheme, another URL: asked again.
    assert.equal(
      await ask(tunnelQuery({ host: "git.example", port: 443 })),
      "PROXY p2.example:3128",
    );
    assert.equal(
      await ask(
        requestQuery("http://git.example:22/", {
          host: "git.example",
          port: 22,
        }),
      ),
      "PROXY p3.example:3128",
    );
    assert.equal(
      await ask(
        requestQuery("http://git.example:22/a", {
          host: "git.example",
          port: 22,
        }),
      ),
      "PROXY p4.example:3128",
    );
    // After pac-cache=, asked again.
    await new Promise((resolve) => setTimeout(resolve, 350));
    assert.equal(await ask(ssh), "PROXY p5.example:3128");

    // A failure falls back (pac-fallback=direct) and is not kept.
    const flaky = tunnelQuery({ host: "flaky", port: 22 });
    const fallback = await engine.decide(flaky);
    assert.equal(formatPacResult(fallback.alternatives), "DIRECT");
    assert.match(fallback.fallback!, /threw Error: not yet/);
    assert.equal(await ask(flaky), "PROXY p7.example:3128");

    // A broken new script: the last good one goes on answering, counting on.
    await Deno.writeTextFile(path, "function FindProxyForURL( {\n");
    await engine.refresh();
    assert.match(
      logged.join("\n"),
      /warn PAC .*count\.pac changed, and the new script does not load \(.*count\.pac:1: SyntaxError: .*\); keeping the last good script/,
    );
    assert.doesNotMatch(logged.join("\n"), /reloaded/);
    assert.equal(
      await ask(tunnelQuery({ host: "new.example", port: 22 })),
      "PROXY p8.example:3128",
    );
    // A good new script takes over, and the cached answers go with the old.
    await Deno.writeTextFile(
      path,
      'function FindProxyForURL() { return "DIRECT"; }\n',
    );
    await engine.refresh();
    assert.match(logged.at(-1)!, /^info PAC .*count\.pac changed; reloaded$/);
    assert.equal(await ask(ssh), "DIRECT");
  } finally {
    await engine.close();
    await Deno.remove(dir, { recursive: true });
  }
});
