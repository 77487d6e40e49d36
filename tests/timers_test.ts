import assert from "node:assert/strict";
import { CoarseTimers } from "../lib/time/timers.ts";

const RESOLUTION_MS = 20;

/** Resolves with the time `timers` took to call back after `ms`. */
function elapsedUntilFired(timers: CoarseTimers, ms: number): Promise<number> {
  const start = performance.now();
  return new Promise((resolve) =>
    timers.after(ms, () => resolve(performance.now() - start))
  );
}

Deno.test("a coarse timer never fires early, and fires", async () => {
  const timers = new CoarseTimers(RESOLUTION_MS);
  const elapsed = await Promise.all(
    [0, 5, 30, 75].map((ms) => elapsedUntilFired(timers, ms)),
  );
  [0, 5, 30, 75].forEach((ms, i) =>
    assert.ok(elapsed[i] >= ms - 1, `${ms} ms fired after ${elapsed[i]} ms`)
  );
  assert.equal(timers.pending, 0);
});

Deno.test("timers fire in the order of their delays", async () => {
  const timers = new CoarseTimers(RESOLUTION_MS);
  const order: number[] = [];
  const all = [90, 10, 50].map((ms) =>
    new Promise<void>((resolve) =>
      timers.after(ms, () => {
        order.push(ms);
        resolve();
      })
    )
  );
  await Promise.all(all);
  assert.deepEqual(order, [10, 50, 90]);
});

Deno.test("a cancelled timer does not fire, the others still do", async () => {
  const timers = new CoarseTimers(RESOLUTION_MS);
  let cancelledFired = false;
  const cancelled = timers.after(30, () => cancelledFired = true);
  const kept = elapsedUntilFired(timers, 60);
  cancelled.cancel();
  cancelled.cancel();
  assert.equal(timers.pending, 1);
  await kept;
  assert.equal(cancelledFired, false);
  assert.equal(timers.pending, 0);
});

Deno.test("cancelling after firing changes nothing", async () => {
  const timers = new CoarseTimers(RESOLUTION_MS);
  let fired: () => void;
  const firedOnce = new Promise<void>((resolve) => fired = resolve);
  const timer = timers.after(10, () => fired());
  await firedOnce;
  const later = elapsedUntilFired(timers, 40);
  timer.cancel();
  assert.equal(timers.pending, 1);
  assert.ok(await later >= 39);
});

Deno.test("a callback may start the next timer, and the same callback may be pending twice", async () => {
  const timers = new CoarseTimers(RESOLUTION_MS);
  let calls = 0;
  const done = Promise.withResolvers<void>();
  const tick = () => {
    calls++;
    if (calls < 3) timers.after(10, tick);
    else done.resolve();
  };
  timers.after(10, tick);
  await done.promise;
  assert.equal(calls, 3);

  let twice = 0;
  const both = Promise.withResolvers<void>();
  const count = () => {
    if (++twice === 2) both.resolve();
  };
  timers.after(5, count);
  timers.after(5, count);
  await both.promise;
  assert.equal(timers.pending, 0);
});
