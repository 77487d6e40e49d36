/**
 * Coarse timers for the per-connection time limits (connect, handshake,
 * idle, linger). Every tunnel needs some, and a runtime timer per tunnel
 * was the dearest part of opening one (README, Performance). Here a timer
 * is an entry in a slot of {@link COARSE_RESOLUTION_MS}; one runtime
 * interval fires the slots that are due, and stops at the first tick that
 * finds no timer pending.
 *
 * @module
 */

/** How late a coarse timer may fire; it never fires early. */
export const COARSE_RESOLUTION_MS = 50;

/** A pending coarse timer. */
export interface CoarseTimer {
  /** Stops the timer; nothing happens if it has fired already. */
  cancel(): void;
}

// One pending timer: its own object, so that the same callback may be
// pending twice, and the handle that cancels it.
class SlotTimer implements CoarseTimer {
  constructor(
    readonly callback: () => void,
    readonly slot: number,
    readonly owner: { cancel(timer: SlotTimer): void },
  ) {}

  cancel(): void {
    this.owner.cancel(this);
  }
}

/** A set of coarse timers sharing one runtime interval. */
export class CoarseTimers {
  #slots = new Map<number, Set<SlotTimer>>();
  #pending = 0;
  #interval: ReturnType<typeof setInterval> | undefined;
  // Slots up to this one have fired.
  #firedThrough = 0;
  #resolutionMs: number;

  /** @param resolutionMs The slot width: how late a timer may fire. */
  constructor(resolutionMs: number = COARSE_RESOLUTION_MS) {
    this.#resolutionMs = resolutionMs;
  }

  /** How many timers are pending. */
  get pending(): number {
    return this.#pending;
  }

  /**
   * Calls `callback` once, `ms` milliseconds from now or up to one
   * resolution later.
   *
   * @param ms The delay.
   * @param callback What to call.
   * @returns The timer, to cancel it.
   */
  after(ms: number, callback: () => void): CoarseTimer {
    const now = Date.now();
    if (this.#interval === undefined) {
      this.#firedThrough = this.#slotAt(now) - 1;
      this.#interval = setInterval(() => this.#fire(), this.#resolutionMs);
    }
    const slot = Math.max(
      Math.ceil((now + ms) / this.#resolutionMs),
      this.#firedThrough + 1,
    );
    let timers = this.#slots.get(slot);
    if (!timers) this.#slots.set(slot, timers = new Set());
    const timer = new SlotTimer(callback, slot, this.#owner);
    timers.add(timer);
    this.#pending++;
    return timer;
  }

  // What a timer calls to cancel itself; one object for all of them.
  #owner = {
    cancel: (timer: SlotTimer) => {
      const timers = this.#slots.get(timer.slot);
      if (!timers?.delete(timer)) return;
      if (timers.size === 0) this.#slots.delete(timer.slot);
      this.#pending--;
    },
  };

  #slotAt(time: number): number {
    return Math.floor(time / this.#resolutionMs);
  }

  #fire(): void {
    // Stopped here rather than when the last timer is cancelled: under
    // load, timers come and go faster than one slot, and starting and
    // stopping the runtime interval for each costs more than the timer.
    if (this.#pending === 0) {
      clearInterval(this.#interval);
      this.#interval = undefined;
      return;
    }
    const now = this.#slotAt(Date.now());
    while (this.#firedThrough < now && this.#pending > 0) {
      const slot = ++this.#firedThrough;
      const timers = this.#slots.get(slot);
      if (!timers) continue;
      this.#slots.delete(slot);
      for (const timer of timers) {
        timers.delete(timer);
        this.#pending--;
        timer.callback();
      }
    }
  }
}

/** The coarse timers the tunnels share. */
export const coarseTimers: CoarseTimers = new CoarseTimers();
