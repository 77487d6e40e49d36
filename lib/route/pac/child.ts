/**
 * The PAC sandbox process: the tool started again as `__pac-sandbox` (or,
 * run from source, this module), holding one script in the permissionless
 * Worker of sandbox.ts. The tool can kill a process, which Deno cannot do
 * to a Worker that is running JavaScript, and a process has its own heap
 * limit, so a script that loops or allocates without end costs only this
 * process. It reads messages (wire.ts) on stdin and answers on stdout;
 * the script's name lookups go back to the tool, so that this process
 * needs no network or system access of its own.
 *
 * @module
 */

import { BufferedDuplex } from "../../net/buffered.ts";
import { errorMessage } from "../../errors.ts";
import type { DnsOperation } from "./dns_bridge.ts";
import type { PacLookups } from "./lookups.ts";
import { PacSandbox, PacScriptError, PacTimeoutError } from "./sandbox.ts";
import {
  encodeLine,
  type FromPacChild,
  MAX_TEXT_CHARS,
  MAX_TO_CHILD_BYTES,
  type PacChildFailure,
  parseToChild,
  readerDuplex,
} from "./wire.ts";

/** The hidden subcommand that starts this process from a compiled binary. */
export const PAC_SANDBOX_COMMAND = "__pac-sandbox";

// What the compiled binary carries and this process never uses: dropped
// first, so that the code around the script holds as little as possible.
const DROPPED: readonly Deno.PermissionName[] = [
  "net",
  "write",
  "env",
  "run",
  "ffi",
  "sys",
];

function failureOf(error: unknown): PacChildFailure {
  if (error instanceof PacTimeoutError) {
    return { kind: "timeout", detail: error.message };
  }
  if (error instanceof PacScriptError) {
    return { kind: "script", detail: error.detail, line: error.line };
  }
  return { kind: "script", detail: errorMessage(error) };
}

/**
 * Serves one tool over stdin and stdout until stdin ends.
 *
 * @returns The exit status: 0 when the tool closed stdin, 1 on a message
 *   that breaks the protocol.
 */
export async function pacChildMain(): Promise<number> {
  for (const name of DROPPED) {
    await Deno.permissions.revoke({ name }).catch(() => {});
  }
  const writer = Deno.stdout.writable.getWriter();
  const send = (message: FromPacChild) => {
    writer.write(encodeLine(message)).catch(() => {});
  };
  const waiting = new Map<number, (addresses: string[]) => void>();
  let sequence = 0;
  const ask = (operation: DnsOperation, host: string) =>
    new Promise<string[]>((resolve) => {
      sequence++;
      waiting.set(sequence, resolve);
      send({ type: "lookup", sequence, operation, host });
    });
  const lookups: PacLookups = {
    resolveIpv4: (host) => ask("resolveIpv4", host),
    resolveAll: (host) => ask("resolveAll", host),
    myAddresses: () => ask("myAddresses", ""),
  };
  const input = new BufferedDuplex(readerDuplex(Deno.stdin.readable), {
    onEnd: () => new Error("end"),
  });
  let sandbox: PacSandbox | undefined;
  send({ type: "ready" });
  try {
    for (;;) {
      let line: string;
      try {
        line = await input.line(
          MAX_TO_CHILD_BYTES,
          () => new Error("a message longer than the limit"),
        );
      } catch {
        return 0;
      }
      const message = parseToChild(line);
      if (message.type === "addresses") {
        waiting.get(message.sequence)?.([...message.addresses]);
        waiting.delete(message.sequence);
      } else if (message.type === "load") {
        await sandbox?.close();
        sandbox = new PacSandbox(
          { name: message.name, text: message.text },
          {
            timeoutMs: message.timeoutMs,
            lookups,
            log: (level, text) =>
              send({
                type: "log",
                level,
                message: text.slice(0, MAX_TEXT_CHARS),
              }),
          },
        );
        sandbox.load().then(
          () => send({ type: "result" }),
          (error) => send({ type: "result", failure: failureOf(error) }),
        );
      } else if (sandbox !== undefined) {
        sandbox.find(message.url, message.host).then(
          (value) =>
            send(
              typeof value === "string" && value.length > MAX_TEXT_CHARS
                ? {
                  type: "result",
                  failure: {
                    kind: "script",
                    detail:
                      `FindProxyForURL("${message.url}", "${message.host}") returned ${value.length} characters, more than ${MAX_TEXT_CHARS}`,
                  },
                }
                : { type: "result", value },
            ),
          (error) => send({ type: "result", failure: failureOf(error) }),
        );
      }
    }
  } catch (error) {
    console.error(`pac sandbox: ${errorMessage(error)}`);
    return 1;
  } finally {
    await sandbox?.close();
  }
}

if (import.meta.main) {
  Deno.exit(await pacChildMain());
}
