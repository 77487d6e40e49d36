/**
 * Helpers for the end-to-end tests of the local proxy (`proxy` and `socks`
 * entries): a test CA in a directory of its own, files to upload, squid's
 * access log read back (with the port of each of its clients, so a test
 * can tell which upstream connection carried which request), raw requests
 * whose answer and connection end are both observed, and waits for the
 * tool's log lines.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { makeCertificates, type TestCertificates } from "./certs.ts";
import { bytes, connect, eventually, text, within, writeAll } from "./net.ts";
import { startSquid, type TestProcess } from "./proxies.ts";

/** The sha256 of `data`, hex. */
export function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** A test CA and server certificate in a new directory, removed on disposal. */
export async function tempCertificates(): Promise<
  TestCertificates & AsyncDisposable
> {
  const dir = await Deno.makeTempDir({ prefix: "httptunneling-certs-" });
  try {
    const certs = await makeCertificates(dir);
    return {
      ...certs,
      [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
    };
  } catch (error) {
    await Deno.remove(dir, { recursive: true });
    throw error;
  }
}

/** A file to upload, with the sha256 of its contents. */
export interface TempFile extends AsyncDisposable {
  /** Its path. */
  readonly path: string;
  /** Its length in bytes. */
  readonly length: number;
  /** The sha256 of its contents, hex. */
  readonly sha256: string;
}

/** Writes `data` to a new temporary file, removed on disposal. */
export async function tempFile(data: Uint8Array): Promise<TempFile> {
  const path = await Deno.makeTempFile({ prefix: "httptunneling-upload-" });
  await Deno.writeFile(path, data);
  return {
    path,
    length: data.length,
    sha256: sha256(data),
    [Symbol.asyncDispose]: () => Deno.remove(path),
  };
}

/**
 * squid's access.log (the default `squid` format), without the lines of
 * waitPort's empty connections.
 *
 * @param dir The squid's directory (`TestProcess.dir`).
 */
export async function squidAccessLog(dir: string): Promise<string[]> {
  const log = await Deno.readTextFile(`${dir}/access.log`).catch(() => "");
  return log.split("\n").filter((line) =>
    line.trim() !== "" &&
    !line.includes("error:transaction-end-before-headers")
  );
}

/**
 * Waits until squid's access.log has at least `count` lines matching
 * `pattern` (squid logs a tunnel when it ends, a moment after the client
 * has gone), and returns all its lines.
 *
 * @param dir The squid's directory (`TestProcess.dir`).
 * @param pattern What the lines waited for match.
 * @param count How many to wait for.
 */
export function squidLogged(
  dir: string,
  pattern: RegExp,
  count = 1,
): Promise<string[]> {
  return eventually(
    async () => {
      const log = await squidAccessLog(dir);
      return log.filter((line) => pattern.test(line)).length >= count && log;
    },
    5_000,
    `${count} line(s) matching ${pattern} in squid's access.log`,
  );
}

/** One request as squid logged it, with the port its client came from. */
export interface SquidRequest {
  /** The client's source port: one per connection to squid. */
  readonly clientPort: number;
  /** squid's result code, e.g. `TCP_DENIED`, `TCP_MISS`, `TCP_TUNNEL`. */
  readonly result: string;
  /** The status squid answered with (0 when none). */
  readonly status: number;
  /** `GET`, `CONNECT`, … */
  readonly method: string;
  /** The URL, or `host:port` for CONNECT. */
  readonly url: string;
  /** The user squid authenticated, `-` for none (NTLM: `C\j` for CORP\jane). */
  readonly user: string;
}

/** A squid whose requests can be read back with their client ports. */
export interface LoggedSquid extends TestProcess {
  /** Every request logged so far, in the order squid finished them. */
  requests(): Promise<SquidRequest[]>;
}

const PORTS_FORMAT = "%>p %Ss %03>Hs %rm %ru %[un";

/**
 * Starts squid with a second access log that records each client's port,
 * optionally requiring NTLM (ntlm_fake_auth: any user name and password,
 * the real three-message handshake; its log shows the first letters of the
 * domain and user, `C\j` for `CORP\jane`).
 *
 * @param options `ntlm` to require NTLM; `extra` squid.conf lines placed
 *   before the access rules.
 */
export async function startLoggedSquid(
  options: { ntlm?: boolean; extra?: string } = {},
): Promise<LoggedSquid> {
  const logDir = await Deno.makeTempDir({ prefix: "httptunneling-squidlog-" });
  // squid writes its logs as its own unprivileged user.
  await Deno.chmod(logDir, 0o777);
  const auth = options.ntlm
    ? `auth_param ntlm program /usr/lib/squid/ntlm_fake_auth
auth_param ntlm children 2
acl authed proxy_auth REQUIRED
http_access deny !authed
`
    : "";
  let squid: TestProcess;
  try {
    squid = await startSquid(`logformat ports ${PORTS_FORMAT}
access_log stdio:${logDir}/ports.log ports
${options.extra ?? ""}
${auth}`);
  } catch (error) {
    await Deno.remove(logDir, { recursive: true });
    throw error;
  }
  return {
    port: squid.port,
    dir: squid.dir,
    async requests() {
      const log = await Deno.readTextFile(`${logDir}/ports.log`).catch(() =>
        ""
      );
      return log.split("\n").filter((line) => line.trim() !== "").map(
        (line) => {
          const [port, result, status, method, url, user] = line.split(" ");
          return {
            clientPort: Number(port),
            result,
            status: Number(status),
            method,
            url,
            user,
          };
        },
      ).filter((request) => request.method !== "-");
    },
    async [Symbol.asyncDispose]() {
      await squid[Symbol.asyncDispose]();
      await Deno.remove(logDir, { recursive: true });
    },
  };
}

/**
 * Groups squid's requests by the connection that carried them, in the
 * order the connections were first seen.
 */
export function byConnection(
  requests: readonly SquidRequest[],
): SquidRequest[][] {
  const groups = new Map<number, SquidRequest[]>();
  for (const request of requests) {
    const group = groups.get(request.clientPort) ?? [];
    group.push(request);
    groups.set(request.clientPort, group);
  }
  return [...groups.values()];
}

/** What came back for a raw request, and how the connection ended. */
export interface RawAnswer {
  /** Everything received, as text. */
  readonly text: string;
  /** The first line received. */
  readonly statusLine: string;
  /** `eof` when the tool closed the connection, `reset` when it reset it. */
  readonly end: "eof" | "reset";
}

/**
 * Sends `request` as it is to 127.0.0.1:`port` and reads until the other
 * side closes the connection, failing when it has not within `ms`.
 *
 * @param port Where to send it.
 * @param request The bytes, written at once.
 * @param ms How long the answer and the close may take.
 */
export async function rawRequest(
  port: number,
  request: string | Uint8Array,
  ms = 5_000,
): Promise<RawAnswer> {
  using conn = await connect(port);
  await writeAll(conn, typeof request === "string" ? bytes(request) : request);
  const chunks: Uint8Array[] = [];
  const end = await within(
    (async () => {
      const buffer = new Uint8Array(64 * 1024);
      try {
        while (true) {
          const n = await conn.read(buffer);
          if (n === null) return "eof" as const;
          chunks.push(buffer.slice(0, n));
        }
      } catch (error) {
        if (error instanceof Deno.errors.ConnectionReset) {
          return "reset" as const;
        }
        throw error;
      }
    })(),
    ms,
    "the answer and the end of the connection",
  );
  const all = text(
    new Uint8Array(chunks.flatMap((chunk) => [...chunk])),
  );
  return { text: all, statusLine: all.split("\r\n")[0], end };
}

/**
 * Waits until at least `count` of `lines` from index `from` on match
 * `pattern`, and returns those that do.
 *
 * @param lines A log that grows (`CapturedLogs.lines`).
 * @param from Where the lines of interest start.
 * @param pattern What they match.
 * @param count How many to wait for.
 */
export function linesMatching(
  lines: readonly string[],
  from: number,
  pattern: RegExp,
  count: number,
): Promise<string[]> {
  return eventually(
    () => {
      const found = lines.slice(from).filter((line) => pattern.test(line));
      return found.length >= count && found;
    },
    5_000,
    `${count} log lines matching ${pattern}`,
  );
}

/** Escapes `text` for use inside a RegExp. */
export function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}
