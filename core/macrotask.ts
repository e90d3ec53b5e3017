/**
 * Runs callbacks as macrotasks: after pending I/O, timers and signal handlers of the
 * event loop have had their turn, which a microtask (`queueMicrotask`, a resolved
 * promise) never gives them.
 *
 * A MessageChannel costs ~13 µs a turn, against ~2 ms for `setTimeout(fn, 0)`;
 * `node:timers`' setImmediate is a little faster but brings up Deno's Node
 * compatibility layer, megabytes of resident memory this package avoids.
 *
 * @module
 */

/** A queue of callbacks run together on the next macrotask turn. */
export class MacrotaskQueue {
  #channel: MessageChannel | null = null;
  #queue: (() => void)[] = [];
  #posted = false;
  #closed = false;

  /** Runs `fn` on the next macrotask turn (on a timer once the queue is closed). */
  schedule(fn: () => void): void {
    if (this.#closed) {
      setTimeout(fn, 0);
      return;
    }
    this.#queue.push(fn);
    if (this.#posted) return;
    this.#posted = true;
    if (this.#channel === null) {
      const channel = new MessageChannel();
      channel.port1.onmessage = () => this.#run();
      this.#channel = channel;
    }
    this.#channel.port2.postMessage(null);
  }

  /** Resolves on the next macrotask turn. */
  turn(): Promise<void> {
    return new Promise<void>((resolve) => this.schedule(resolve));
  }

  /**
   * Resolves on a timer turn. Deno runs expired timers only on some turns of its event loop:
   * a loop that yields through {@link MacrotaskQueue.turn} alone keeps message-channel work
   * ready every time and starves `setTimeout`/`setInterval` (a 5 ms interval fired twice in
   * a second of it), so a busy loop takes one of these now and then. It costs what the
   * timer wheel's millisecond takes to come round (1–2 ms).
   */
  timerTurn(): Promise<void> {
    return new Promise<void>((resolve) => setTimeout(resolve, 0));
  }

  /**
   * Releases the channel, which would otherwise keep the process alive. Callbacks still
   * queued run first, on a timer.
   */
  close(): void {
    this.#closed = true;
    const channel = this.#channel;
    this.#channel = null;
    if (channel !== null) {
      channel.port1.close();
      channel.port2.close();
    }
    if (this.#queue.length > 0) setTimeout(() => this.#run(), 0);
    this.#posted = false;
  }

  #run(): void {
    this.#posted = false;
    const list = this.#queue;
    this.#queue = [];
    for (const fn of list) fn();
  }
}
