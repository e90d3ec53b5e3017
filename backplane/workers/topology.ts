/**
 * Everything the workers of one process share to exchange topic messages: one ring per
 * node (the main thread is node 0, worker i is node i + 1), a doorbell per node, the
 * interest table, and a control area (per-node "already signalled" flags, per-pair flow
 * counters, the node ids that other processes see). Created by the main thread, posted to
 * every worker as is (SharedArrayBuffers and descriptor numbers), released by the main
 * thread once every worker has stopped.
 *
 * @module
 */

import { closeDoorbell, type Doorbell, openDoorbell } from "./doorbell.ts";
import { WorkersBackplaneError } from "./errors.ts";
import { InterestTable } from "./interest.ts";
import { createRing } from "./ring.ts";

/** How workers carry messages to each other (see docs/scale-out.md for the measurements). */
export type WorkersTransport = "ring" | "messages";

/** Settings of the cross-worker backplane, chosen in the main thread. */
export interface WorkersBackplaneOptions {
  /**
   * `"ring"` (default): each worker writes its messages once into a shared-memory ring that
   * every other worker reads in place, woken by an eventfd (a pipe outside Linux).
   * `"messages"`: batches of messages as transferred ArrayBuffers through `postMessage`
   * (measured slower; kept for comparison).
   */
  transport?: WorkersTransport;
  /** Data bytes of each worker's ring, a power of two >= 64 KiB. Default 4 MiB. */
  ringBytes?: number;
  /**
   * Bytes of messages a worker keeps in order while its ring is full (another worker reads
   * too slowly), or, with `"messages"`, sent to one worker and not yet read by it. Past it,
   * messages are dropped and counted. Default 16 MiB.
   */
  overflowBytes?: number;
  /**
   * How long (ms) a full ring waits for a worker that does not read at all before that
   * worker is skipped ahead (it loses what it did not read, and reports it). Default 1000.
   */
  stallTimeout?: number;
  /** Largest message carried (bytes); larger ones are dropped and reported. Default: a quarter of `ringBytes`. */
  maxMessageSize?: number;
}

/**
 * What the main thread posts to each worker (and keeps for itself).
 *
 * @example
 * ```ts
 * import { closeTopology, createTopology } from "./topology.ts";
 * const topology = createTopology(3, { ringBytes: 65536 });
 * console.log(topology.nodes, topology.rings.length, topology.doorbells.length); // 3 3 3
 * closeTopology(topology);
 * ```
 */
export interface WorkersTopology {
  /** Number of nodes: the main thread and the workers. */
  readonly nodes: number;
  /** The transport. */
  readonly transport: WorkersTransport;
  /** Data bytes of each ring. */
  readonly ringBytes: number;
  /** See {@link WorkersBackplaneOptions.overflowBytes}. */
  readonly overflowBytes: number;
  /** See {@link WorkersBackplaneOptions.stallTimeout}. */
  readonly stallTimeout: number;
  /** See {@link WorkersBackplaneOptions.maxMessageSize}. */
  readonly maxMessageSize: number;
  /** One ring per node (ring transport; empty otherwise). */
  readonly rings: SharedArrayBuffer[];
  /** Control words (see {@link Control}). */
  readonly control: SharedArrayBuffer;
  /** The interest table ({@link InterestTable}). */
  readonly interest: SharedArrayBuffer;
  /** One doorbell per node. */
  readonly doorbells: Doorbell[];
}

const LINE = 16;

/**
 * The control area: a 64-byte line per node whose first word says "doorbell already
 * rung, not yet answered" (so that a busy consumer is rung once, not once per message),
 * then flow counters per (producer, consumer) pair (bytes posted and not yet read, for
 * the messages transport), then each node's id as other processes see it (the id of its
 * Redis backplane, so that a worker drops from Redis what a sibling published) and a
 * generation counter bumped when one changes.
 *
 * @example
 * ```ts
 * import { Control } from "./topology.ts";
 * const control = new Control(new SharedArrayBuffer(Control.bytes(2)), 2);
 * control.setNodeId(1, 0xa1b2c3d4e5f6);
 * console.log(control.nodeId(1) === 0xa1b2c3d4e5f6, control.generation); // true 1
 * ```
 */
export class Control {
  /** The words. */
  readonly i32: Int32Array;
  readonly #ids: Float64Array;
  readonly #nodes: number;
  readonly #flowBase: number;
  readonly #genAt: number;

  /** Bytes of the control area of `nodes` nodes. */
  static bytes(nodes: number): number {
    return (nodes * LINE + nodes * nodes + 2) * 4 + nodes * 8 + 8;
  }

  /**
   * @param sab The control area ({@link Control.bytes} bytes).
   * @param nodes Number of nodes.
   */
  constructor(sab: SharedArrayBuffer, nodes: number) {
    this.#nodes = nodes;
    this.#flowBase = nodes * LINE;
    this.#genAt = this.#flowBase + nodes * nodes;
    const words = this.#genAt + 2;
    this.i32 = new Int32Array(sab, 0, words);
    const idsAt = Math.ceil((words * 4) / 8) * 8;
    this.#ids = new Float64Array(sab, idsAt, nodes);
  }

  /** Number of nodes. */
  get nodes(): number {
    return this.#nodes;
  }

  /** Index in {@link Control.i32} of node `n`'s "signalled" word. */
  signalAt(n: number): number {
    return n * LINE;
  }

  /** Index in {@link Control.i32} of the flow counter from `producer` to `consumer`. */
  flowAt(producer: number, consumer: number): number {
    return this.#flowBase + producer * this.#nodes + consumer;
  }

  /** Publishes node `n`'s id (0: none). */
  setNodeId(n: number, id: number): void {
    this.#ids[n] = id;
    Atomics.add(this.i32, this.#genAt, 1);
  }

  /** Node `n`'s id (0: none). */
  nodeId(n: number): number {
    return this.#ids[n];
  }

  /** Bumped whenever a node id changes. */
  get generation(): number {
    return Atomics.load(this.i32, this.#genAt);
  }
}

function option(name: string, value: number | undefined, fallback: number, min: number): number {
  const v = value ?? fallback;
  if (!Number.isFinite(v) || v < min) {
    throw new WorkersBackplaneError(
      "INVALID_OPTION",
      `${name} must be a number >= ${min}, got ${v}`,
    );
  }
  return v;
}

/**
 * Creates the shared structures of `nodes` nodes (it opens one doorbell per node).
 *
 * @throws {WorkersBackplaneError} `INVALID_OPTION`, or `DOORBELL_FAILED` (nothing is left open).
 */
export function createTopology(
  nodes: number,
  options: WorkersBackplaneOptions = {},
): WorkersTopology {
  if (!Number.isInteger(nodes) || nodes < 2 || nodes > 1024) {
    throw new WorkersBackplaneError("INVALID_OPTION", `nodes must be an integer in [2, 1024]`);
  }
  const transport = options.transport ?? "ring";
  if (transport !== "ring" && transport !== "messages") {
    throw new WorkersBackplaneError(
      "INVALID_OPTION",
      `unknown transport ${JSON.stringify(transport)}`,
    );
  }
  const ringBytes = option("ringBytes", options.ringBytes, 4 * 1024 * 1024, 65_536);
  if ((ringBytes & (ringBytes - 1)) !== 0 || ringBytes > 2 ** 30) {
    throw new WorkersBackplaneError("INVALID_OPTION", "ringBytes must be a power of two <= 2^30");
  }
  const overflowBytes = option("overflowBytes", options.overflowBytes, 16 * 1024 * 1024, 0);
  const stallTimeout = option("stallTimeout", options.stallTimeout, 1000, 1);
  const maxMessageSize = option("maxMessageSize", options.maxMessageSize, ringBytes / 4, 1);
  if (maxMessageSize > ringBytes / 4) {
    throw new WorkersBackplaneError("INVALID_OPTION", "maxMessageSize must be <= ringBytes / 4");
  }
  const doorbells: Doorbell[] = [];
  try {
    for (let i = 0; i < nodes; i++) doorbells.push(openDoorbell());
  } catch (err) {
    for (const d of doorbells) closeDoorbell(d);
    throw err;
  }
  return {
    nodes,
    transport,
    ringBytes,
    overflowBytes,
    stallTimeout,
    maxMessageSize,
    rings: transport === "ring"
      ? Array.from({ length: nodes }, () => createRing(nodes, ringBytes))
      : [],
    control: new SharedArrayBuffer(Control.bytes(nodes)),
    interest: new SharedArrayBuffer(InterestTable.bytes(nodes)),
    doorbells,
  };
}

/** Closes the doorbells; only once no node uses the topology any more. */
export function closeTopology(topology: WorkersTopology): void {
  for (const d of topology.doorbells) closeDoorbell(d);
}
