/**
 * When the loop should poll a little longer on its own thread before it parks.
 *
 * Parking is a `nonblocking` FFI wait: the call runs on another thread and its result comes
 * back through the runtime's event loop, which costs tens of microseconds of CPU each time
 * (two thread wake-ups on the server's core). A connection in a request-response exchange
 * parks once per message, and its next message typically arrives a few tens of microseconds
 * after the answer left. Polling on the loop's own thread for that long (zero-timeout waits)
 * finds it without the hop.
 *
 * Spinning is only worth it while it keeps catching work, so it is earned and lost:
 * - a park that ended with events soon after it began ({@link SPIN_EARN_MS}) earns a spin,
 *   and a spin that caught work stays armed;
 * - a spin that found nothing is lost time, so after each one more short parks in a row are
 *   needed before the next (1, 2, 4, ... up to {@link MAX_PENALTY}); a spin that catches work
 *   clears the penalty.
 * An idle server never spins; a server with traffic spaced just beyond the window wastes at
 * most one spin per {@link MAX_PENALTY} messages.
 *
 * @module
 */

/** How long one spin polls before giving up, in milliseconds. */
export const SPIN_MS = 0.05;
/** A park shorter than this (that ended with events) counts towards a spin. */
export const SPIN_EARN_MS = 0.1;
/** Most short parks in a row a spin can require after failed spins. */
export const MAX_PENALTY = 64;

/** The spin decision of one loop; see the module documentation. */
export class IdleSpin {
  #required = 1;
  #earned = 0;

  /** Whether to spin before parking now. */
  get armed(): boolean {
    return this.#earned >= this.#required;
  }

  /** Reports how a spin ended: `caught` when it found work before {@link SPIN_MS}. */
  spun(caught: boolean): void {
    if (caught) {
      // Still armed: a request-response exchange spins for every message.
      this.#required = 1;
      this.#earned = 1;
    } else {
      this.#required = Math.min(this.#required * 2, MAX_PENALTY);
      this.#earned = 0;
    }
  }

  /** Reports a park: how long it lasted and whether it ended with events. */
  parked(durationMs: number, events: number): void {
    if (events > 0 && durationMs < SPIN_EARN_MS) this.#earned++;
    else this.#earned = 0;
  }
}
