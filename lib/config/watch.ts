/**
 * Notices when a config file may have changed. Watches the file's
 * directory, not the file: editors replace a file by rename, some tools
 * delete and recreate it, and a Kubernetes ConfigMap swaps a `..data`
 * symlink so the config path itself never changes name. A watch on the file
 * would go deaf after the first rename.
 *
 * @module
 */

import { basename, dirname, resolve } from "node:path";

/** Quiet time after the last event before a change is reported. */
export const DEFAULT_DEBOUNCE_MS = 200;

/** A running watch; close it to stop. */
export interface ConfigWatch {
  /** Stops watching and waits until the watcher is released. */
  close(): Promise<void>;
}

/**
 * Calls `onChange` after events on `path` (or on a Kubernetes-style `..`
 * entry beside it) have been quiet for `debounceMs`. The caller re-reads the
 * file and decides whether anything changed.
 *
 * @param path The config file.
 * @param onChange Called once per burst of events.
 * @param debounceMs Quiet time that ends a burst.
 * @returns The watch.
 */
export function watchConfig(
  path: string,
  onChange: () => void,
  debounceMs: number = DEFAULT_DEBOUNCE_MS,
): ConfigWatch {
  const file = resolve(path);
  const name = basename(file);
  const watcher = Deno.watchFs(dirname(file), { recursive: false });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const concerns = (eventPath: string) => {
    const entry = basename(eventPath);
    return entry === name || entry.startsWith("..");
  };
  const loop = (async () => {
    for await (const event of watcher) {
      if (event.kind === "access" || !event.paths.some(concerns)) continue;
      clearTimeout(timer);
      timer = setTimeout(onChange, debounceMs);
    }
  })();
  return {
    async close() {
      clearTimeout(timer);
      // Deno's watcher thread opens a file that appears, and when that is a
      // FIFO the open waits for a writer; closing the watcher then waits
      // for that thread for ever. It is left to end with the process.
      if ((await Deno.lstat(file).catch(() => undefined))?.isFifo) return;
      watcher.close();
      await loop;
    },
  };
}
