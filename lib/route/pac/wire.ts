/**
 * The messages between the tool and its PAC sandbox process (child.ts),
 * one JSON object per line on the child's stdin and stdout, and the
 * bounds each side puts on a line before parsing it. Pure, but for
 * {@link readerDuplex}, which adapts a pipe to the buffered reader.
 *
 * @module
 */

import type { Duplex } from "../../net/duplex.ts";
import type { DnsOperation } from "./dns_bridge.ts";

/** A message from the tool to the sandbox process. */
export type ToPacChild =
  | {
    readonly type: "load";
    /** The script's name, for located errors. */
    readonly name: string;
    /** The script. */
    readonly text: string;
    /** The limit the process's own Worker applies. */
    readonly timeoutMs: number;
  }
  | { readonly type: "find"; readonly url: string; readonly host: string }
  | {
    readonly type: "addresses";
    /** The lookup answered. */
    readonly sequence: number;
    readonly addresses: readonly string[];
  };

/** Why a load or a call failed, as the sandbox said. */
export interface PacChildFailure {
  /** `timeout`: the Worker overran its limit and may still be running. */
  readonly kind: "script" | "timeout";
  /** The message without the script's name and line. */
  readonly detail: string;
  readonly line?: number;
}

/** A message from the sandbox process to the tool. */
export type FromPacChild =
  | { readonly type: "ready" }
  | {
    readonly type: "result";
    /** What FindProxyForURL returned (a string, or a described value). */
    readonly value?: unknown;
    readonly failure?: PacChildFailure;
  }
  | {
    readonly type: "lookup";
    readonly sequence: number;
    readonly operation: DnsOperation;
    readonly host: string;
  }
  | {
    readonly type: "log";
    readonly level: "warn" | "info";
    readonly message: string;
  };

/** Longest line the process reads: a 1 MiB script, JSON-escaped. */
export const MAX_TO_CHILD_BYTES = 8 * 1024 * 1024;
/** Longest line the tool reads from the process. */
export const MAX_FROM_CHILD_BYTES = 256 * 1024;
/** Longest answer or log text the process sends. */
export const MAX_TEXT_CHARS = 64 * 1024;

const encoder = new TextEncoder();

/**
 * One message as a line.
 *
 * @param message The message.
 * @returns Its JSON and a newline, as bytes.
 */
export function encodeLine(message: ToPacChild | FromPacChild): Uint8Array {
  return encoder.encode(`${JSON.stringify(message)}\n`);
}

/**
 * Parses a line from the process, checking its shape.
 *
 * @param line The line, without its end.
 * @returns The message.
 * @throws {Error} when the line is not one of the messages.
 */
export function parseFromChild(line: string): FromPacChild {
  const message = JSON.parse(line) as FromPacChild;
  if (
    typeof message !== "object" || message === null ||
    !["ready", "result", "lookup", "log"].includes(message.type)
  ) {
    throw new Error(`not a sandbox message: ${line.slice(0, 100)}`);
  }
  return message;
}

/**
 * Parses a line from the tool, checking its shape.
 *
 * @param line The line, without its end.
 * @returns The message.
 * @throws {Error} when the line is not one of the messages.
 */
export function parseToChild(line: string): ToPacChild {
  const message = JSON.parse(line) as ToPacChild;
  if (
    typeof message !== "object" || message === null ||
    !["load", "find", "addresses"].includes(message.type)
  ) {
    throw new Error(`not a tool message: ${line.slice(0, 100)}`);
  }
  return message;
}

/**
 * A pipe's readable side as the read half of a {@link Duplex}, for the
 * buffered reader's bounded `line()`.
 *
 * @param readable The pipe.
 * @returns A Duplex whose writes fail.
 */
export function readerDuplex(readable: ReadableStream<Uint8Array>): Duplex {
  const reader = readable.getReader();
  let left: Uint8Array = new Uint8Array(0);
  return {
    async read(buffer) {
      if (left.length === 0) {
        const { value, done } = await reader.read();
        if (done) return null;
        left = value;
      }
      const n = Math.min(buffer.length, left.length);
      buffer.set(left.subarray(0, n));
      left = left.subarray(n);
      return n;
    },
    write: () => Promise.reject(new Error("read-only pipe")),
    closeWrite: () => Promise.resolve(),
    close: () => {
      reader.cancel().catch(() => {});
    },
  };
}
