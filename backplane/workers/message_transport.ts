/**
 * The postMessage transport (the other candidate the issue names, kept for the
 * measurement): the records a worker publishes during one turn of its event loop are
 * batched in an ArrayBuffer, and at the end of the turn (a microtask) the batch is posted
 * to every other worker through a MessagePort, transferred to the last one and copied for
 * the others. The receiving worker's JS event loop runs the message handler while its
 * manager waits in the poller; what the handler delivers is corked into one flush.
 *
 * Flow control: per (publisher, consumer) a shared counter of bytes posted and not yet
 * read; past `overflowBytes` the batch is dropped for that consumer, counted and reported
 * (its receivers see the gap in the sequence numbers).
 *
 * @module
 */

import { WorkersBackplaneError } from "./errors.ts";
import { Control, type WorkersTopology } from "./topology.ts";
import type { Outlet, TransportHost } from "./transport.ts";

const FIRST_BATCH = 64 * 1024;

/**
 * One node's end of the postMessage transport.
 *
 * @example
 * ```ts
 * import { MessageTransport } from "./message_transport.ts";
 * import { createTopology } from "./topology.ts";
 * import type { TransportHost } from "./transport.ts";
 *
 * declare const host: TransportHost;
 * declare const ports: readonly (MessagePort | null)[]; // one per node, from the main thread
 * const transport = new MessageTransport(host, createTopology(3), 1, true, ports);
 * ```
 */
export class MessageTransport implements Outlet {
  u8: Uint8Array;
  i32: Int32Array;
  readonly #host: TransportHost;
  readonly #topology: WorkersTopology;
  readonly #node: number;
  readonly #control: Control;
  readonly #ports: { peer: number; port: MessagePort }[] = [];
  #batch: ArrayBuffer;
  #used = 0;
  #records = 0;
  #scheduled = false;
  #dropping = false;
  #closed = false;
  readonly #flush = (): void => this.#post();

  /**
   * @param host The backplane.
   * @param topology The shared structures.
   * @param node This node's index.
   * @param consumer Whether this node receives.
   * @param ports This node's port to each other node (null for itself).
   */
  constructor(
    host: TransportHost,
    topology: WorkersTopology,
    node: number,
    consumer: boolean,
    ports: readonly (MessagePort | null)[],
  ) {
    this.#host = host;
    this.#topology = topology;
    this.#node = node;
    this.#control = new Control(topology.control, topology.nodes);
    this.#batch = new ArrayBuffer(FIRST_BATCH);
    this.u8 = new Uint8Array(this.#batch);
    this.i32 = new Int32Array(this.#batch);
    for (let peer = 0; peer < ports.length; peer++) {
      const port = ports[peer];
      if (port === null || peer === node) continue;
      this.#ports.push({ peer, port });
      if (consumer) {
        const flow = this.#control.flowAt(peer, node);
        port.onmessage = (event: MessageEvent) => this.#receive(event.data as ArrayBuffer, flow);
      }
    }
  }

  get buffered(): number {
    return this.#used;
  }

  reserve(size: number): number {
    // 8 bytes stay free for the end marker.
    if (this.#used + size + 8 > this.#batch.byteLength) {
      const bigger = new ArrayBuffer(Math.max(this.#batch.byteLength * 2, this.#used + size + 8));
      new Uint8Array(bigger).set(this.u8.subarray(0, this.#used));
      this.#batch = bigger;
      this.u8 = new Uint8Array(bigger);
      this.i32 = new Int32Array(bigger);
    }
    return this.#used;
  }

  commit(size: number): void {
    this.#used += size;
    this.#records++;
    if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(this.#flush);
    }
  }

  #post(): void {
    this.#scheduled = false;
    const used = this.#used;
    if (used === 0 || this.#closed) return;
    this.i32[used >> 2] = 0;
    const ctl = this.#control.i32;
    const limit = this.#topology.overflowBytes;
    const targets: MessagePort[] = [];
    for (const { peer, port } of this.#ports) {
      if (peer === 0) continue; // the main thread does not receive
      const flow = this.#control.flowAt(this.#node, peer);
      if (Atomics.load(ctl, flow) + used > limit) {
        this.#host.dropped(this.#records);
        if (!this.#dropping) {
          this.#dropping = true;
          this.#host.report(
            new WorkersBackplaneError(
              "OVERFLOW",
              `worker node ${peer} has ${limit} bytes of node ${this.#node}'s messages unread: ` +
                `messages to it are dropped until it reads`,
            ),
          );
        }
        continue;
      }
      Atomics.add(ctl, flow, used);
      targets.push(port);
    }
    if (targets.length === this.#ports.length) this.#dropping = false;
    const length = used + 8;
    for (let k = 0; k < targets.length; k++) {
      if (k === targets.length - 1) {
        const batch = this.#batch;
        targets[k].postMessage(batch, [batch]);
        this.#batch = new ArrayBuffer(batch.byteLength);
        this.u8 = new Uint8Array(this.#batch);
        this.i32 = new Int32Array(this.#batch);
      } else {
        targets[k].postMessage(this.#batch.slice(0, length));
      }
    }
    this.#used = 0;
    this.#records = 0;
  }

  #receive(batch: ArrayBuffer, flow: number): void {
    if (this.#closed || !(batch instanceof ArrayBuffer)) return;
    const u8 = new Uint8Array(batch);
    const i32 = new Int32Array(batch, 0, batch.byteLength >> 2);
    let at = 0;
    let size: number;
    while (at + 8 <= batch.byteLength && (size = i32[at >> 2]) !== 0) {
      this.#host.receive(u8, i32, at);
      at += size;
    }
    Atomics.sub(this.#control.i32, flow, at);
  }

  close(): number {
    if (this.#closed) return 0;
    this.#post();
    this.#closed = true;
    for (const { port } of this.#ports) port.close();
    return 0;
  }
}
