/**
 * An entry's options as `check` shows them: as written, secrets masked.
 */
import assert from "node:assert/strict";
import { describeEntryOptions } from "../lib/config/entry_options.ts";
import type { ConfigContext } from "../lib/config/grammar.ts";
import { entriesOf } from "./_util/tool.ts";

const PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const context: ConfigContext = {
  env: () => undefined,
  readFile: (file) => file === "ca.pem" ? PEM + PEM : "CORP\\jane:s3cret\n",
};

Deno.test("tunnel settings, credentials file, auth and spn-host as written; none is -", () => {
  const [plain, tuned] = entriesOf(
    "2222 ssh 22 http://proxy:3128\n" +
      "2223 ssh 22 http://proxy:3128,http://proxy-b:3128 idle-timeout=14m max-connections=20 keepalive=off connect-timeout=500ms credentials=proxy.cred auth=ntlm spn-host=canonical ca-file=ca.pem\n",
    context,
  );
  assert.deepEqual(describeEntryOptions(plain), []);
  assert.deepEqual(describeEntryOptions(tuned), [
    "connect-timeout=500ms",
    "idle-timeout=14m",
    "max-connections=20",
    "keepalive=off",
    "ca-file=(2 certificates)",
    "credentials=proxy.cred",
    "auth=ntlm",
    "spn-host=canonical",
  ]);
});

Deno.test("a local proxy's direct-for, allow and client-auth, its password masked", () => {
  const [local] = entriesOf(
    "0.0.0.0:3128 proxy direct direct-for=*.corp,10.0.0.0/8 allow=10.1.0.0/16 client-auth=team:t0p-secret\n",
    context,
  );
  const words = describeEntryOptions(local);
  assert.deepEqual(words, [
    "direct-for=.corp,10.0.0.0/8",
    "allow=10.1.0.0/16",
    "client-auth=team:***",
  ]);
  assert.ok(!words.join(" ").includes("t0p-secret"));
});
