/**
 * The cross-worker backplane: the managers of the workers of one process (one per Deno
 * Worker, each on its own poller) share topic messages through it. `serve({ workers })`
 * installs it; it implements the engine's {@link Backplane} seam like the Redis adapter.
 *
 * A publish is written once, as a record (records.ts), and handed to the other workers
 * without a copy per subscriber: with the ring transport (the default) every other worker
 * reads the record in place from the publisher's shared-memory ring and its engine frames
 * it once for all its subscribers, in the tick the doorbell woke it for. Per-publisher
 * order holds on one topic and across topics. A publish that no other worker has a
 * subscriber for is not written at all (the shared interest table).
 *
 * Nothing is dropped silently: a message that cannot be queued is counted in `dropped`
 * and reported through the error handler, and numbered anyway, so the receivers see the
 * hole and report a gap (`onBackplaneGap`), as with Redis.
 *
 * The main thread is node 0 and only publishes; worker i is node i + 1.
 *
 * @module
 */

import {
  type Backplane,
  type BackplaneFactory,
  type BackplaneHandlers,
  type BackplaneStats,
  emptyStats,
  reportBackplaneError,
  reportBackplaneGap,
} from "../../core/backplane.ts";
import type { IoLoop } from "../../core/io_loop.ts";
import { PublishSequence, Verdict } from "../sequence.ts";
import { formatNodeId, MAX_NODE_ID, newNodeId } from "../stamp.ts";
import { WorkersBackplaneError } from "./errors.ts";
import { interestBucket, InterestTable } from "./interest.ts";
import { MessageTransport } from "./message_transport.ts";
import { Overflow } from "./overflow.ts";
import {
  MAX_TOPIC_BYTES,
  readBinary,
  readEpoch,
  readNode,
  readPayloadLength,
  readSeq,
  readSize,
  readTopicLength,
  RECORD_HEADER,
  recordSize,
  writeRecord,
} from "./records.ts";
import { RingTransport } from "./ring_transport.ts";
import { TopicTable } from "./topic_table.ts";
import { Control, type WorkersTopology } from "./topology.ts";
import type { Outlet, TransportHost } from "./transport.ts";

/** What a node of the cross-worker backplane is, given when it joins. */
export interface WorkersNode {
  /** The shared structures. */
  readonly topology: WorkersTopology;
  /** This node's index (0: the main thread). */
  readonly node: number;
  /** Whether it receives (the main thread does not). */
  readonly consumer: boolean;
  /** Messages transport: this node's port to each other node (null for itself). */
  readonly ports?: readonly (MessagePort | null)[];
}

/** Options of one node. */
export interface WorkersNodeOptions {
  /** The node id other nodes see (1 to 2^48 - 1). Default: random. */
  nodeId?: number;
  /** First epoch of its numbering. Default: random. */
  epoch?: number;
  /** Bytes published before the node joins that it keeps. Default 16 MiB. */
  pendingBytes?: number;
  /** Called once the node has joined (synchronously, inside {@link WorkersBackplane.join}). */
  onJoin?: () => void;
}

interface PublishKey {
  readonly bytes: Uint8Array;
  readonly bucket: number;
}

const utf8 = new TextEncoder();

/**
 * One node of the cross-worker backplane. It may be created before it knows the shared
 * structures (a worker's engine starts before the main thread's answer arrives): it then
 * keeps what is published, in order and bounded, and hands it over when it joins.
 *
 * @example Two nodes on two loops of one thread (in a server each is a worker)
 * ```ts
 * import { createTopology } from "./topology.ts";
 * import { WorkersBackplane } from "./workers_backplane.ts";
 * import type { IoLoop } from "../../core/io_loop.ts";
 *
 * declare const loopA: IoLoop;
 * declare const loopB: IoLoop;
 * const topology = createTopology(3);
 * const a = new WorkersBackplane(loopA, { message() {} });
 * const b = new WorkersBackplane(loopB, {
 *   message: (topic, payload) => console.log(topic, new TextDecoder().decode(payload)),
 * });
 * a.join({ topology, node: 1, consumer: true });
 * b.join({ topology, node: 2, consumer: true });
 * b.subscribe("room");
 * a.publish("room", new TextEncoder().encode("hello"), false); // b: room hello
 * ```
 */
export class WorkersBackplane implements Backplane, TransportHost {
  /** This node's id as other nodes see it. */
  readonly nodeId: string;
  /** The loop of the engine. */
  readonly loop: IoLoop;
  readonly #node: number;
  readonly #handlers: BackplaneHandlers;
  readonly #stats: BackplaneStats = emptyStats();
  readonly #sequence: PublishSequence<PublishKey>;
  readonly #topics = new TopicTable();
  #pending: Overflow | null;
  #outlet: Outlet | null = null;
  #interest: InterestTable | null = null;
  #maxMessageSize = Infinity;
  #skipped = 0;
  #closed = false;
  #index = -1;
  #control: Control | null = null;
  readonly #onJoin: (() => void) | null;

  /**
   * @param loop The engine's loop (its poller watches the doorbell).
   * @param handlers Where messages, gaps and errors go.
   * @param options See {@link WorkersNodeOptions}.
   * @throws {WorkersBackplaneError} `INVALID_OPTION` for a bad node id.
   */
  constructor(loop: IoLoop, handlers: BackplaneHandlers, options: WorkersNodeOptions = {}) {
    const node = options.nodeId ?? newNodeId();
    if (!Number.isInteger(node) || node < 1 || node > MAX_NODE_ID) {
      throw new WorkersBackplaneError(
        "INVALID_OPTION",
        "nodeId must be an integer in [1, 2^48 - 1]",
      );
    }
    this.loop = loop;
    this.#handlers = handlers;
    this.#node = node;
    this.nodeId = formatNodeId(node);
    this.#sequence = new PublishSequence<PublishKey>(
      (topic) => ({
        bytes: utf8.encode(topic),
        bucket: interestBucket(topic),
      }),
      100_000,
      options.epoch,
    );
    this.#pending = new Overflow(options.pendingBytes ?? 16 * 1024 * 1024);
    this.#onJoin = options.onJoin ?? null;
  }

  /** Live counters (`buffered`: bytes waiting for a slow worker or for the join). */
  get stats(): Readonly<BackplaneStats> {
    const s = this.#stats;
    s.buffered = this.#outlet?.buffered ?? this.#pending?.bytes ?? 0;
    s.connected = this.#outlet !== null && !this.#closed;
    return s;
  }

  /** Publishes not handed over because no other worker had a subscriber (not in `published`). */
  get skipped(): number {
    return this.#skipped;
  }

  /** This node's index once joined, else -1. */
  get index(): number {
    return this.#index;
  }

  /** The control area once joined (the node ids of the other workers), else null. */
  get control(): Control | null {
    return this.#control;
  }

  /** The topics subscribed (those with local subscribers, as the engine said). */
  get topics(): string[] {
    return this.#topics.names();
  }

  /**
   * Joins the shared structures: from now on messages go to and come from the other
   * workers. What was published before goes first.
   */
  join(node: WorkersNode): void {
    if (this.#closed || this.#outlet !== null) return;
    const topology = node.topology;
    this.#index = node.node;
    this.#maxMessageSize = topology.maxMessageSize;
    const interest = new InterestTable(topology.interest, topology.nodes, node.node);
    // A predecessor of this node that crashed may have left its bits.
    interest.clear();
    for (const topic of this.#topics.names()) interest.add(interestBucket(topic));
    this.#interest = interest;
    this.#outlet = topology.transport === "messages"
      ? new MessageTransport(this, topology, node.node, node.consumer, node.ports ?? [])
      : new RingTransport(this, topology, node.node, node.consumer);
    this.#control = new Control(topology.control, topology.nodes);
    this.#control.setNodeId(node.node, this.#node);
    const pending = this.#pending;
    this.#pending = null;
    if (pending !== null && pending.records > 0) this.#handOver(pending);
    this.#onJoin?.();
  }

  /** Moves records kept before the join to the transport, in order. */
  #handOver(pending: Overflow): void {
    const outlet = this.#outlet!;
    pending.forEach((u8, i32, at) => {
      const size = readSize(i32, at);
      const to = outlet.reserve(size);
      if (to < 0) {
        this.#stats.dropped++;
        return;
      }
      outlet.u8.set(u8.subarray(at, at + size), to);
      outlet.commit(size);
    });
  }

  // ------------------------------------------------------------------ engine API

  /** Starts receiving `topic` from the other workers. */
  subscribe(topic: string): void {
    if (this.#closed || !this.#topics.add(topic)) return;
    this.#interest?.add(interestBucket(topic));
  }

  /** Stops receiving `topic`. */
  unsubscribe(topic: string): void {
    if (!this.#topics.remove(topic)) return;
    this.#interest?.remove(interestBucket(topic));
  }

  /** Hands a message to the other workers' subscribers of `topic`. */
  publish(topic: string, payload: Uint8Array, binary: boolean): void {
    const stats = this.#stats;
    if (this.#closed) {
      stats.dropped++;
      return;
    }
    const t = this.#sequence.topic(topic);
    const key = t.key;
    const interest = this.#interest;
    if (interest !== null && !interest.othersWant(key.bucket)) {
      this.#skipped++;
      return;
    }
    // Numbered even when dropped below: receivers then see the loss as a gap.
    const seq = ++t.seq;
    const length = payload.length;
    if (length > this.#maxMessageSize || key.bytes.length > MAX_TOPIC_BYTES) {
      stats.dropped++;
      this.report(
        new WorkersBackplaneError(
          "MESSAGE_TOO_LARGE",
          `a message of ${length} bytes on ${JSON.stringify(topic)} exceeds the ` +
            `cross-worker maxMessageSize (${this.#maxMessageSize})`,
        ),
      );
      return;
    }
    const size = recordSize(key.bytes.length, length);
    const outlet: Outlet | Overflow = this.#outlet ?? this.#pending!;
    const at = outlet.reserve(size);
    if (at < 0) {
      stats.dropped++;
      return;
    }
    writeRecord(
      outlet.u8,
      outlet.i32,
      at,
      this.#node,
      this.#sequence.epoch,
      seq,
      binary,
      key.bytes,
      payload,
    );
    outlet.commit(size);
    stats.published++;
  }

  /** Stops: hands over what the transport takes, leaves the shared structures. */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    const outlet = this.#outlet;
    if (outlet !== null) this.#stats.dropped += outlet.close();
    if (this.#pending !== null) this.#stats.dropped += this.#pending.clear();
    this.#interest?.clear();
    this.#stats.connected = false;
    return Promise.resolve();
  }

  // ------------------------------------------------------------------ transport host

  /** A record from another worker. */
  receive(u8: Uint8Array, i32: Int32Array, at: number): void {
    const topicLength = readTopicLength(i32, at);
    const start = at + RECORD_HEADER;
    const state = this.#topics.find(u8, start, topicLength);
    if (state === undefined) return;
    const stats = this.#stats;
    const origins = state.origins;
    const seq = readSeq(i32, at);
    const node = readNode(i32, at);
    const verdict = origins.check(node, readEpoch(i32, at), seq);
    if (verdict === Verdict.DUPLICATE) {
      stats.duplicates++;
      return;
    }
    if (verdict === Verdict.GAP) {
      stats.missed += seq - origins.expected;
      reportBackplaneGap(stats, this.#handlers, this.loop, {
        topic: state.topic,
        kind: "sequence",
        origin: origins.origin,
        epoch: readEpoch(i32, at),
        expected: origins.expected,
        received: seq,
      });
    }
    stats.received++;
    const payloadStart = start + topicLength;
    try {
      this.#handlers.message(
        state.topic,
        u8.subarray(payloadStart, payloadStart + readPayloadLength(i32, at)),
        readBinary(i32, at),
        origins.origin,
      );
    } catch (err) {
      this.loop.reportError(err);
    }
  }

  /** Records a transport could not hand to some worker. */
  dropped(records: number): void {
    this.#stats.dropped += records;
  }

  /** Counts and hands an error to the engine. */
  report(error: WorkersBackplaneError): void {
    reportBackplaneError(this.#stats, this.#handlers, this.loop, error);
  }
}

/**
 * A place where a worker's backplane waits for the shared structures: `serve({ workers })`
 * installs the factory in the worker's engine at once and fills the place when the main
 * thread's answer arrives.
 *
 * @example
 * ```ts
 * import { WorkersSlot } from "./workers_backplane.ts";
 * const slot = new WorkersSlot();
 * console.log(slot.backplane); // null (the engine has not started)
 * ```
 */
export class WorkersSlot {
  /** The backplane the engine created, once it has. */
  backplane: WorkersBackplane | null = null;
  #node: WorkersNode | null = null;
  readonly #options: WorkersNodeOptions;

  /** @param options Options of the node. */
  constructor(options: WorkersNodeOptions = {}) {
    this.#options = options;
  }

  /** The factory for the engine: the backplane joins at once if the place is filled. */
  readonly factory: BackplaneFactory = (loop, handlers) => this.create(loop, handlers, {});

  /** Creates the backplane with extra node options (the node id of a composed Redis node). */
  create(loop: IoLoop, handlers: BackplaneHandlers, extra: WorkersNodeOptions): WorkersBackplane {
    const backplane = new WorkersBackplane(loop, handlers, { ...this.#options, ...extra });
    this.backplane = backplane;
    if (this.#node !== null) backplane.join(this.#node);
    return backplane;
  }

  /** Fills the place: the backplane (now or once created) joins. */
  fill(node: WorkersNode): void {
    this.#node = node;
    this.backplane?.join(node);
  }
}
