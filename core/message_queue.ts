/**
 * The queue behind `for await (const message of ws)`: messages wait here for the
 * consumer, and past a high-water mark the connection stops reading (the peer then feels
 * TCP backpressure) until the consumer has caught up to the low-water mark.
 *
 * @module
 */

/** Messages held before reading pauses. */
const HIGH_MESSAGES = 64;
/** Bytes held before reading pauses. */
const HIGH_BYTES = 1024 * 1024;

/** What the queue asks of its connection. */
export interface FlowControl {
  /** Stop reading the socket. */
  pause(): void;
  /** Read again (what arrived meanwhile waits in the socket). */
  resume(): void;
}

/**
 * An async iterator over a connection's messages with flow control.
 *
 * @typeParam M Message type.
 *
 * @example
 * ```ts
 * import { MessageQueue } from "./message_queue.ts";
 *
 * const queue = new MessageQueue<string>({ pause() {}, resume() {} });
 * queue.push("hello", 5);
 * queue.end();
 * for await (const message of queue) console.log(message); // "hello"
 * ```
 */
export class MessageQueue<M> implements AsyncIterableIterator<M> {
  readonly #flow: FlowControl;
  #items: M[] = [];
  #sizes: number[] = [];
  #head = 0;
  #bytes = 0;
  #paused = false;
  #ended = false;
  #waiting: PromiseWithResolvers<IteratorResult<M>> | null = null;

  /** @param flow How to pause and resume the connection's reads. */
  constructor(flow: FlowControl) {
    this.#flow = flow;
  }

  /** True once the consumer stopped or the connection ended and the queue is empty. */
  get done(): boolean {
    return this.#ended && this.#head === this.#items.length;
  }

  /** A message arrived (`size` bytes). */
  push(message: M, size: number): void {
    if (this.#ended) return;
    const waiting = this.#waiting;
    if (waiting !== null) {
      this.#waiting = null;
      waiting.resolve({ value: message, done: false });
      return;
    }
    this.#items.push(message);
    this.#sizes.push(size);
    this.#bytes += size;
    const held = this.#items.length - this.#head;
    if (!this.#paused && (held >= HIGH_MESSAGES || this.#bytes >= HIGH_BYTES)) {
      this.#paused = true;
      this.#flow.pause();
    }
  }

  /** No more messages will come (the connection closed): the iteration ends after them. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    const waiting = this.#waiting;
    this.#waiting = null;
    waiting?.resolve({ value: undefined, done: true });
  }

  /** The next message, waiting for it when none is queued. */
  next(): Promise<IteratorResult<M>> {
    if (this.#head < this.#items.length) {
      const value = this.#items[this.#head];
      this.#bytes -= this.#sizes[this.#head];
      this.#head++;
      if (this.#head === this.#items.length) {
        this.#items = [];
        this.#sizes = [];
        this.#head = 0;
      }
      const held = this.#items.length - this.#head;
      if (this.#paused && held <= HIGH_MESSAGES / 4 && this.#bytes <= HIGH_BYTES / 4) {
        this.#paused = false;
        this.#flow.resume();
      }
      return Promise.resolve({ value, done: false });
    }
    if (this.#ended) return Promise.resolve({ value: undefined, done: true });
    this.#waiting ??= Promise.withResolvers<IteratorResult<M>>();
    return this.#waiting.promise;
  }

  /** The consumer stopped early (`break`): drop what is queued and read normally again. */
  return(): Promise<IteratorResult<M>> {
    this.#items = [];
    this.#sizes = [];
    this.#head = 0;
    this.#bytes = 0;
    this.end();
    if (this.#paused) {
      this.#paused = false;
      this.#flow.resume();
    }
    return Promise.resolve({ value: undefined, done: true });
  }

  /** Itself. */
  [Symbol.asyncIterator](): this {
    return this;
  }
}
