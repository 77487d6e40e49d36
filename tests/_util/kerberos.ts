/**
 * Real Kerberos for tests, on loopback, started as the tests' own processes
 * (no system service): an MIT KDC (`krb5kdc -n`) with its own `krb5.conf`
 * and `kdc.conf` in a new temporary directory, user and service principals,
 * a keytab for `HTTP/localhost`, ticket caches made by `kinit`, and squid
 * requiring Negotiate through `negotiate_kerberos_auth` (optionally NTLM
 * too). Also how tests that need these programs decide to skip.
 *
 * `krb5.conf` turns off reverse DNS and name canonicalization, so that the
 * proxy written as `localhost` is asked for as `HTTP/localhost`, and prefers
 * TCP, the only KDC port {@link waitPort} can see.
 *
 * @module
 */

import { freePort, text, waitPort, within } from "./net.ts";
import {
  IN_CI,
  missingOnPath,
  startSquid,
  type TestProcess,
} from "./proxies.ts";

/** The realm of every test KDC. */
export const REALM = "HTTPTUNNELING.TEST";

/** squid's Negotiate helper, from Debian's squid package. */
export const NEGOTIATE_HELPER = "/usr/lib/squid/negotiate_kerberos_auth";

const PROGRAMS = ["krb5kdc", "kdb5_util", "kadmin.local", "kinit", "klist"];

/**
 * Tells whether tests needing a KDC, kinit and squid's Negotiate helper
 * should be skipped, printing why. Never skips under CI.
 *
 * @returns `true` when the tests should be ignored.
 */
export function missingKerberos(): boolean {
  if (IN_CI) return false;
  if (PROGRAMS.some((program) => missingOnPath(program))) return true;
  try {
    Deno.statSync(NEGOTIATE_HELPER);
    return false;
  } catch {
    console.log(
      `skipping tests that need ${NEGOTIATE_HELPER}: it is not installed`,
    );
    return true;
  }
}

/** A KDC started by a test, stopped by disposing it. */
export interface Kdc extends AsyncDisposable {
  /** Its directory: database, configs, keytab, ticket caches. */
  readonly dir: string;
  /** The loopback port it serves on, TCP and UDP. */
  readonly port: number;
  /** The path of its `krb5.conf`, for `KRB5_CONFIG`. */
  readonly krb5Conf: string;
  /** The keytab holding the key of `HTTP/localhost`. */
  readonly keytab: string;
  /**
   * Gets a ticket for `user` into a new ticket cache.
   *
   * @param user A user principal without the realm, e.g. `jane`.
   * @param password Its password, written to kinit's stdin.
   * @param lifetime kinit's `-l`, e.g. `5s`. @default the KDC's maximum
   * @returns The cache, as `KRB5CCNAME` takes it: `FILE:/tmp/…`.
   */
  kinit(user: string, password: string, lifetime?: string): Promise<string>;
  /**
   * The environment for a client of this KDC.
   *
   * @param ccache A ticket cache, as `kinit` returned it. @default an empty one
   */
  clientEnv(ccache?: string): Record<string, string>;
}

/** Settings of {@linkcode startKdc}. */
export interface KdcOptions {
  /** User principals (without the realm) and their passwords. */
  users: Record<string, string>;
  /**
   * Service principals with random keys; the first one's key goes into
   * the keytab.
   *
   * @default {["HTTP/localhost"]}
   */
  services?: string[];
}

/**
 * Creates a realm in a new temporary directory and starts its KDC on a
 * free loopback port.
 */
export async function startKdc(options: KdcOptions): Promise<Kdc> {
  const dir = await Deno.makeTempDir({ prefix: "httptunneling-kdc-" });
  const port = freePort();
  const krb5Conf = `${dir}/krb5.conf`;
  const keytab = `${dir}/http.keytab`;
  const env = { KRB5_CONFIG: krb5Conf, KRB5_KDC_PROFILE: `${dir}/kdc.conf` };
  const services = options.services ?? ["HTTP/localhost"];
  let child: Deno.ChildProcess | undefined;
  const stop = async () => {
    try {
      child?.kill("SIGKILL");
    } catch { /* already exited */ }
    await child?.status;
    await Deno.remove(dir, { recursive: true });
  };
  try {
    // squid's helper runs as an unprivileged user: it reads krb5.conf and
    // the keytab from here.
    await Deno.chmod(dir, 0o755);
    await Deno.writeTextFile(
      krb5Conf,
      `[libdefaults]
 default_realm = ${REALM}
 rdns = false
 dns_canonicalize_hostname = false
 udp_preference_limit = 1
 dns_lookup_kdc = false
 dns_lookup_realm = false
[realms]
 ${REALM} = {
  kdc = 127.0.0.1:${port}
 }
[domain_realm]
 localhost = ${REALM}
`,
    );
    await Deno.writeTextFile(
      env.KRB5_KDC_PROFILE,
      `[kdcdefaults]
 kdc_listen = 127.0.0.1:${port}
 kdc_tcp_listen = 127.0.0.1:${port}
[realms]
 ${REALM} = {
  database_name = ${dir}/principal
  key_stash_file = ${dir}/stash
  acl_file = ${dir}/kadm5.acl
  max_life = 1h
 }
[logging]
 kdc = FILE:${dir}/kdc.log
`,
    );
    await Deno.writeTextFile(`${dir}/kadm5.acl`, "");
    await run("kdb5_util", [
      "create",
      "-s",
      "-r",
      REALM,
      "-P",
      "master-Pa55",
    ], env);
    const queries = [
      ...Object.entries(options.users).map(([user, password]) =>
        `addprinc -pw ${password} ${user}`
      ),
      ...services.map((service) => `addprinc -randkey ${service}`),
      `ktadd -k ${keytab} ${services[0]}`,
    ];
    for (const query of queries) {
      await run("kadmin.local", ["-r", REALM, "-q", query], env);
    }
    await Deno.chmod(keytab, 0o644);
    child = new Deno.Command("krb5kdc", {
      args: ["-n", "-r", REALM, "-P", `${dir}/krb5kdc.pid`],
      env,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    await waitPort(port, 10_000, "krb5kdc");
  } catch (error) {
    await stop();
    throw error;
  }
  let caches = 0;
  const clientEnv = (ccache = `FILE:${dir}/no-such-cache`) => ({
    KRB5_CONFIG: krb5Conf,
    KRB5CCNAME: ccache,
  });
  return {
    dir,
    port,
    krb5Conf,
    keytab,
    clientEnv,
    async kinit(user, password, lifetime) {
      const ccache = `FILE:${dir}/cc-${user}-${++caches}`;
      const kinit = new Deno.Command("kinit", {
        args: [...(lifetime ? ["-l", lifetime] : []), `${user}@${REALM}`],
        env: clientEnv(ccache),
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const writer = kinit.stdin.getWriter();
      await writer.write(new TextEncoder().encode(`${password}\n`));
      await writer.close();
      const { code, stderr } = await within(kinit.output(), 10_000, "kinit");
      if (code !== 0) throw new Error(`kinit failed: ${text(stderr)}`);
      return ccache;
    },
    [Symbol.asyncDispose]: stop,
  };
}

/** Runs a Kerberos admin program to its end, failing on a non-zero exit. */
async function run(
  program: string,
  args: string[],
  env: Record<string, string>,
): Promise<void> {
  const { code, stderr } = await within(
    new Deno.Command(program, {
      args,
      env,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output(),
    10_000,
    program,
  );
  if (code !== 0) throw new Error(`${program} failed: ${text(stderr)}`);
}

/** Settings of {@linkcode startSquidWithNegotiate}. */
export interface NegotiateSquidOptions {
  /**
   * Offer NTLM too (after Negotiate), checked by ntlm_fake_auth: any
   * credentials, the real handshake.
   *
   * @default {false}
   */
  ntlm?: boolean;
}

/**
 * Starts squid requiring Negotiate, checked by `negotiate_kerberos_auth`
 * against the KDC's keytab for `HTTP/localhost`. The helper gets the KDC's
 * `krb5.conf` through `env`, since squid passes its own environment on.
 */
export function startSquidWithNegotiate(
  kdc: Kdc,
  options: NegotiateSquidOptions = {},
): Promise<TestProcess> {
  const ntlm = options.ntlm
    ? `auth_param ntlm program /usr/lib/squid/ntlm_fake_auth
auth_param ntlm children 2`
    : "";
  return startSquid(`
auth_param negotiate program /usr/bin/env KRB5_CONFIG=${kdc.krb5Conf} KRB5RCACHETYPE=none ${NEGOTIATE_HELPER} -k ${kdc.keytab} -s HTTP/localhost@${REALM}
auth_param negotiate children 2
auth_param negotiate keep_alive on
${ntlm}
acl authed proxy_auth REQUIRED
http_access deny !authed
`);
}
