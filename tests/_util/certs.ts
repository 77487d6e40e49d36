/**
 * Certificates for TLS tests: a throwaway CA and a server certificate for
 * 127.0.0.1 and localhost that it signed, made with openssl.
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
  const ec = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
  ];
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
  await run("openssl", [
    "req",
    ...ec,
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
    "-utf8",
    "-subj",
    serverSubject,
  ], dir);
  await Deno.writeTextFile(
    `${dir}/server.ext`,
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
  );
  await run("openssl", [
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "server.pem",
    "-days",
    "2",
    "-extfile",
    "server.ext",
  ], dir);
  await Deno.chmod(`${dir}/server.key`, 0o644);
  return { dir, caPem: await Deno.readTextFile(`${dir}/ca.pem`) };
}
