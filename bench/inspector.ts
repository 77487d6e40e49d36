/**
 * V8 CPU profiles of a Deno process started with `--inspect=HOST:PORT`,
 * taken through its inspector (the Chrome DevTools protocol), written as
 * `.cpuprofile` files (DevTools, speedscope) and summed up as the
 * functions that took the most samples.
 *
 * @module
 */

import { within } from "../tests/_util/net.ts";

/** A profile being recorded; {@link CpuProfiler.stop} ends it. */
export interface CpuProfiler {
  /**
   * Stops recording and writes the profile.
   *
   * @param file Where to write the `.cpuprofile` JSON.
   * @returns The functions with the most samples of their own, as lines.
   */
  stop(file: string): Promise<string[]>;
}

interface ProfileNode {
  id: number;
  callFrame: {
    functionName: string;
    url: string;
    lineNumber: number;
  };
  hitCount?: number;
}

interface Profile {
  nodes: ProfileNode[];
  samples?: number[];
}

// How long an inspector may take to answer one command.
const ANSWER_LIMIT_MS = 30_000;
// Microseconds between samples: fine enough for a run of seconds.
const SAMPLING_INTERVAL_US = 200;

/**
 * Starts a CPU profile of the process whose inspector listens on `port`.
 *
 * @param port The inspector's port on 127.0.0.1.
 * @returns The recording profile.
 */
export async function startProfile(port: number): Promise<CpuProfiler> {
  const targets = await within(
    fetch(`http://127.0.0.1:${port}/json/list`).then((r) => r.json()),
    ANSWER_LIMIT_MS,
    "the inspector's target list",
  ) as { webSocketDebuggerUrl: string }[];
  const socket = new WebSocket(targets[0].webSocketDebuggerUrl);
  await within(
    new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = reject;
    }),
    ANSWER_LIMIT_MS,
    "the inspector's WebSocket",
  );
  const waiting = new Map<number, (result: unknown) => void>();
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    waiting.get(message.id)?.(message.result);
    waiting.delete(message.id);
  };
  let next = 1;
  const call = (method: string, params: unknown = {}) => {
    const id = next++;
    const answered = new Promise<unknown>((resolve) =>
      waiting.set(id, resolve)
    );
    socket.send(JSON.stringify({ id, method, params }));
    return within(answered, ANSWER_LIMIT_MS, `the inspector's ${method}`);
  };
  await call("Profiler.enable");
  await call("Profiler.setSamplingInterval", {
    interval: SAMPLING_INTERVAL_US,
  });
  await call("Profiler.start");
  return {
    async stop(file) {
      try {
        const { profile } = await call("Profiler.stop") as {
          profile: Profile;
        };
        await Deno.writeTextFile(file, JSON.stringify(profile));
        return topFunctions(profile);
      } finally {
        socket.close();
      }
    },
  };
}

/**
 * The functions with the most samples of their own, with their share.
 *
 * @param profile A V8 CPU profile.
 * @param count How many lines.
 * @returns Lines such as `12.3% encodeFrame frame.ts:104`.
 */
export function topFunctions(profile: Profile, count = 25): string[] {
  const byFunction = new Map<string, number>();
  let total = 0;
  for (const node of profile.nodes) {
    const hits = node.hitCount ?? 0;
    total += hits;
    const { functionName, url, lineNumber } = node.callFrame;
    const file = url.split("/").at(-1) ?? "";
    const key = `${functionName || "(anonymous)"} ${file}:${lineNumber + 1}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + hits);
  }
  return [...byFunction.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([key, hits]) => `${(100 * hits / total).toFixed(1)}% ${key}`);
}
