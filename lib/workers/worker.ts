/**
 * The code of one `run --workers N` thread: a {@link Supervisor} whose
 * listeners bind with SO_REUSEPORT, doing what the main thread's worker
 * pool (pool.ts) asks, and sending its log records there.
 *
 * @module
 */

import { setupWorkerLogging } from "../observe/log.ts";
import { Supervisor } from "../supervisor.ts";
import { numberTunnels } from "../tunnel.ts";
import type { FromWorker, ToWorker } from "./pool.ts";

/** The worker's global scope, as much of it as is used here. */
const scope = globalThis as unknown as {
  postMessage(message: FromWorker): void;
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
};

let supervisor: Supervisor;

async function handle(message: ToWorker): Promise<FromWorker> {
  switch (message.type) {
    case "start":
      numberTunnels(message.index + 1, message.count);
      await setupWorkerLogging(
        message.logLevel,
        (record) => scope.postMessage({ type: "log", record }),
      );
      supervisor = new Supervisor({ ...message.options, reusePort: true });
      return { type: "done", id: message.id };
    case "apply":
      await supervisor.apply(message.entries);
      return { type: "done", id: message.id };
    case "status":
      return {
        type: "done",
        id: message.id,
        status: {
          entries: supervisor.entries(),
          tunnels: supervisor.tunnels.map((tunnel) => ({
            id: tunnel.id,
            client: tunnel.client,
            entry: tunnel.entry,
            destination: tunnel.destination,
            startedAt: tunnel.startedAt,
            counters: { ...tunnel.counters },
          })),
          sessionRoutes: supervisor.sessionRoutes,
          metrics: supervisor.metrics.toData(),
        },
      };
    case "shutdown":
      await supervisor.shutdown(message.graceMs);
      return { type: "done", id: message.id };
  }
}

// Messages are handled in order: a "status" sent during an "apply" waits.
let queue = Promise.resolve();
scope.onmessage = ({ data }) => {
  queue = queue.then(async () => scope.postMessage(await handle(data)));
};
