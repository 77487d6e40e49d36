/**
 * Waiting for things that should end soon, without letting one that never
 * does hold up a shutdown.
 *
 * @module
 */

/**
 * Waits for `done`, at most `ms`.
 *
 * @param done What should settle.
 * @param ms The most to wait.
 * @returns `true` when `done` settled in time, `false` when the time ran out.
 *
 * @example
 * ```ts
 * if (!await settledWithin(server.shutdown(), 2_000)) log.warn("left some");
 * ```
 */
export async function settledWithin(
  done: Promise<unknown>,
  ms: number,
): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      done.then(() => true, () => true),
      new Promise<boolean>((resolve) => timer = setTimeout(resolve, ms, false)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
