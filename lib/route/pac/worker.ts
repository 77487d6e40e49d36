/**
 * The PAC sandbox's Worker: started by sandbox.ts with no permissions
 * (`deno: { permissions: "none" }`), it installs the PAC helpers as
 * globals, evaluates the script as a classic script named after its source
 * (so that stack traces carry `corp.pac:12:3`), and answers
 * `FindProxyForURLEx` or `FindProxyForURL` calls with the raw returned
 * value. Name lookups go to the main thread through the shared-memory
 * bridge (dns_bridge.ts), which keeps them synchronous as PAC scripts
 * expect.
 *
 * @module
 */

import { awaitAnswer, type DnsOperation, writeQuestion } from "./dns_bridge.ts";
import { pacHelpers } from "./helpers.ts";

/** A message from the main thread to the Worker. */
export type ToPacWorker =
  | {
    readonly type: "load";
    /** The script's text. */
    readonly text: string;
    /** The name stack traces carry: the file's name or the URL. */
    readonly name: string;
    /** The DNS bridge's buffer. */
    readonly bridge: SharedArrayBuffer;
    /** How long one lookup may block. */
    readonly lookupTimeoutMs: number;
  }
  | {
    readonly type: "find";
    readonly id: number;
    readonly url: string;
    readonly host: string;
  };

/** A message from the Worker to the main thread. */
export type FromPacWorker =
  | { readonly type: "loaded" }
  | {
    readonly type: "answer";
    readonly id?: number;
    /** The returned value, as a string when it was one. */
    readonly value?: unknown;
    /** Set when loading or the call failed: the message, with its line. */
    readonly error?: string;
    readonly line?: number;
  }
  | { readonly type: "ready" }
  | { readonly type: "lookup" }
  | {
    readonly type: "alert";
    readonly message: string;
    /** Set instead of a message once a call reached {@link MAX_ALERTS}. */
    readonly capped?: number;
  };

/**
 * `alert()` calls passed on per load or call: a script that alerts in a
 * loop cannot flood the log.
 */
export const MAX_ALERTS = 20;

const scope = globalThis as unknown as {
  postMessage(message: FromPacWorker): void;
  onmessage: ((event: MessageEvent<ToPacWorker>) => void) | null;
};
const post = scope.postMessage.bind(scope);
const indirectEval = eval;

let find: ((url: string, host: string) => unknown) | undefined;
let scriptName = "";
let alertsLeft = MAX_ALERTS;

// Where in the script an error happened, from its stack.
function lineOf(error: unknown): number | undefined {
  const stack = error instanceof Error ? error.stack ?? "" : "";
  const escaped = scriptName.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const match = new RegExp(`${escaped}(?:, <anonymous>)?:(\\d+):\\d+`).exec(
    stack,
  );
  return match ? Number(match[1]) : undefined;
}

function describe(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return `threw ${String(error).slice(0, 200)}`;
}

// V8 reports no location for a syntax error in evaluated code; the module
// parser does, so the text is parsed once more as a module just to find
// the line. Strict mode refuses more than sloppy mode, never less, so the
// module parse fails too.
async function syntaxErrorLine(text: string): Promise<number | undefined> {
  try {
    const bytes = new TextEncoder().encode(text);
    let binary = "";
    for (const byte of bytes) binary += String.fromCharCode(byte);
    await import(`data:text/javascript;base64,${btoa(binary)}`);
  } catch (error) {
    const match = /data:text\/javascript;base64,[^:\s]*:(\d+):\d+/.exec(
      String(error instanceof Error ? error.stack ?? error.message : error),
    );
    return match ? Number(match[1]) : undefined;
  }
  return undefined;
}

async function load(message: ToPacWorker & { type: "load" }): Promise<void> {
  const { bridge, lookupTimeoutMs } = message;
  scriptName = message.name;
  const lookup = (operation: DnsOperation, host: string) => {
    const sequence = writeQuestion(bridge, operation, host);
    post({ type: "lookup" });
    return awaitAnswer(bridge, sequence, lookupTimeoutMs);
  };
  const helpers = pacHelpers({
    resolveIpv4: (host) => lookup("resolveIpv4", host),
    resolveAll: (host) => lookup("resolveAll", host),
    myAddresses: () => lookup("myAddresses", ""),
    now: () => new Date(),
    alert: (text) => {
      if (alertsLeft > 0) post({ type: "alert", message: String(text) });
      else if (alertsLeft === 0) {
        post({ type: "alert", message: "", capped: MAX_ALERTS });
      }
      alertsLeft--;
    },
  });
  const global = globalThis as Record<string, unknown>;
  Object.assign(global, helpers);
  // The Worker has no permissions; these go too, so that a script finds
  // nothing to try, and cannot end its Worker or speak for it (the module
  // keeps its own reference to postMessage).
  for (
    const name of [
      "Deno",
      "fetch",
      "Worker",
      "WebSocket",
      "EventSource",
      "XMLHttpRequest",
      "BroadcastChannel",
      "caches",
      "localStorage",
      "sessionStorage",
      "indexedDB",
      "navigator",
      "close",
      "postMessage",
    ]
  ) {
    try {
      delete global[name];
    } catch {
      // Non-configurable: the permissions still refuse its use.
    }
  }
  try {
    indirectEval(`${message.text}\n//# sourceURL=${scriptName}`);
  } catch (error) {
    const line = error instanceof SyntaxError
      ? await syntaxErrorLine(message.text)
      : lineOf(error);
    post({ type: "answer", error: describe(error), line });
    return;
  }
  const ex = global.FindProxyForURLEx;
  const plain = global.FindProxyForURL;
  const chosen = typeof ex === "function"
    ? ex
    : typeof plain === "function"
    ? plain
    : undefined;
  if (chosen === undefined) {
    post({
      type: "answer",
      error:
        "the script defines no function FindProxyForURL(url, host) (nor FindProxyForURLEx)",
    });
    return;
  }
  find = (url, host) => chosen(url, host);
  post({ type: "loaded" });
}

scope.onmessage = ({ data }) => {
  alertsLeft = MAX_ALERTS;
  if (data.type === "load") {
    load(data);
    return;
  }
  try {
    const value = find!(data.url, data.host);
    post({
      type: "answer",
      id: data.id,
      value: typeof value === "string" ? value : describeValue(value),
    });
  } catch (error) {
    post({
      type: "answer",
      id: data.id,
      error: describe(error),
      line: lineOf(error),
    });
  }
};

// Only strings cross back; anything else is named, for the error message.
function describeValue(value: unknown): unknown {
  return value === null || value === undefined ? value : { type: typeof value };
}

// Module loading is not the script's time: the main side starts its
// clock once this arrives.
post({ type: "ready" });
