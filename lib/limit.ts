/**
 * A counting limit on open tunnels. Listeners reserve a slot before they
 * accept, so at the limit they stop accepting and connections wait in the
 * kernel's backlog (back-pressure) instead of being accepted and dropped.
 *
 * @module
 */

/** Slots for open tunnels; `max` may change while tunnels run. */
export class ConnectionLimit {
  /** Most slots in use at once; unlimited when absent. */
  max: number | undefined;
  #active = 0;
  #waiters = new Set<() => void>();

  /** @param max Most slots in use at once; unlimited when absent. */
  constructor(max?: number) {
    this.max = max;
  }

  /** Slots in use. */
  get active(): number {
    return this.#active;
  }

  /** Whether no slot is free. */
  get full(): boolean {
    return this.max !== undefined && this.#active >= this.max;
  }

  /**
   * Takes a slot, waiting for one to be released when none is free.
   *
   * @param signal Gives up waiting when aborted.
   * @returns `true` with a slot taken, `false` when aborted.
   */
  async acquire(signal: AbortSignal): Promise<boolean> {
    while (this.full) {
      if (signal.aborted) return false;
      await new Promise<void>((resolve) => {
        const wake = () => {
          this.#waiters.delete(wake);
          signal.removeEventListener("abort", wake);
          resolve();
        };
        this.#waiters.add(wake);
        signal.addEventListener("abort", wake, { once: true });
      });
    }
    if (signal.aborted) return false;
    this.#active++;
    return true;
  }

  /**
   * Takes a slot when one is free, without waiting.
   *
   * @returns Whether a slot was taken.
   */
  tryAcquire(): boolean {
    if (this.full) return false;
    this.#active++;
    return true;
  }

  /** Gives a slot back and wakes the waiters. */
  release(): void {
    this.#active--;
    for (const wake of [...this.#waiters]) wake();
  }
}
