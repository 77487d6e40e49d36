/**
 * Certificates for TLS tests: a throwaway CA and a server certificate for
 * 127.0.0.1 and localhost that it signed, and client certificates from
 * the same CA, made with openssl.
 *
 * @module
 */

import { text } from "./net.ts";

/** Runs a command, failing the test with its output when it fails. */
async function run(
  command: string,
  args: string[],
  cwd: string,
): Promise<void> {
  const { code, stderr } = await new Deno.Command(command, {
    args,
    cwd,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    throw new Error(`${command} ${args.join(" ")} failed: ${text(stderr)}`);
  }
}

// New EC P-256 keys, unencrypted.
const ec = [
  "-newkey",
  "ec",
  "-pkeyopt",
  "ec_paramgen_curve:prime256v1",
  "-nodes",
];

/** A test CA and a server certificate for 127.0.0.1 and localhost it signed. */
export interface TestCertificates {
  /** The directory holding `ca.pem`, `server.pem` and `server.key`. */
  readonly dir: string;
  /** The CA certificate, PEM. */
  readonly caPem: string;
}

/**
 * Makes a CA and a server certificate with openssl.
 *
 * @param dir Where to write them.
 * @param serverSubject The server certificate's subject, in openssl's
 *   `/KEY=value` form.
 */
export async function makeCertificates(
  dir: string,
  serverSubject = "/CN=127.0.0.1",
): Promise<TestCertificates> {
  await run("openssl", [
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "2",
    "-subj",
    "/CN=httptunneling test CA",
  ], dir);
  await issue(
    dir,
    "server",
    serverSubject,
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
  );
  await Deno.chmod(`${dir}/server.key`, 0o644);
  return { dir, caPem: await Deno.readTextFile(`${dir}/ca.pem`) };
}

/**
 * Makes a client certificate (extended key usage clientAuth) that the CA
 * of {@link makeCertificates} in `dir` signed.
 *
 * @param dir A directory {@link makeCertificates} wrote.
 * @param name The files' name: `<name>.pem` and `<name>.key`; also the CN.
 * @returns The two files' paths.
 */
export async function makeClientCertificate(
  dir: string,
  name: string,
): Promise<{ cert: string; key: string }> {
  await issue(
    dir,
    name,
    `/CN=${name}`,
    "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n",
  );
  return { cert: `${dir}/${name}.pem`, key: `${dir}/${name}.key` };
}

// A new key `<name>.key` and a certificate `<name>.pem` for it, signed by
// the CA in `dir`, with the given subject and openssl extensions.
async function issue(
  dir: string,
  name: string,
  subject: string,
  extensions: string,
): Promise<void> {
  await run("openssl", [
    "req",
    ...ec,
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.csr`,
    "-utf8",
    "-subj",
    subject,
  ], dir);
  await Deno.writeTextFile(`${dir}/${name}.ext`, extensions);
  await run("openssl", [
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    `${name}.pem`,
    "-days",
    "2",
    "-extfile",
    `${name}.ext`,
  ], dir);
}
