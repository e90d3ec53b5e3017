/**
 * The main thread's side of a worker group: holds the port (or accepts), creates the
 * shared structures of the cross-worker backplane, starts the workers with the program's
 * module, answers their "hello", hands them connections (least loaded first) in
 * `workerAccept: "main"` mode, collects their counters, restarts a worker that crashed,
 * drains them all at shutdown, and releases everything once the last one is gone.
 *
 * @module
 */

import { composeBackplanes } from "../../backplane/workers/compose.ts";
import { InterestTable } from "../../backplane/workers/interest.ts";
import { forceAbsent } from "../../backplane/workers/ring.ts";
import {
  closeTopology,
  createTopology,
  type WorkersTopology,
} from "../../backplane/workers/topology.ts";
import { WorkersSlot } from "../../backplane/workers/workers_backplane.ts";
import type { BackplaneFactory } from "../../core/backplane.ts";
import { loopOf } from "../../core/manager.ts";
import { closeFd, listenTcp, type NetAddr, type TcpListener } from "../../net/tcp.ts";
import { Interest } from "../../poller/poller.ts";
import { ListenerTarget } from "../listener.ts";
import type {
  ClusterRole,
  ClusterServeOptions,
  ClusterServer,
  ShutdownOptions,
  WorkerAccept,
  WorkerGroup,
} from "./contract.ts";
import { ClusterError } from "./errors.ts";
import type { TlsReloadOptions } from "../../transport/tls/server_context.ts";
import { isOurs, type ToMain, type ToWorker } from "./messages.ts";
import { type Reservation, reservePort } from "./reservation.ts";
import { workerName } from "./role.ts";
import { type ClusterStats, type NodeStats, sumCounters, type WorkerState } from "./stats.ts";

/** How long a worker may take to say hello and listen. */
const START_TIMEOUT_MS = 30_000;
/** How long a worker may take to answer a stats request. */
const STATS_TIMEOUT_MS = 1_000;
/** Beyond the closing timeout, how long a draining worker may take to exit. */
const EXIT_GRACE_MS = 2_000;
/** First and longest delay before a crashed worker starts again. */
const RESTART_MIN_MS = 100;
const RESTART_MAX_MS = 10_000;
/** A worker that ran this long before crashing restarts after the shortest delay. */
const STABLE_MS = 10_000;

/** One worker's place in the group, across restarts. */
interface Slot {
  readonly index: number;
  worker: Worker | null;
  state: WorkerState;
  /** It listened once (a failure before that stops the whole group). */
  everReady: boolean;
  restarts: number;
  startedAt: number;
  restartDelay: number;
  /** The error it reported before ending, if any. */
  crash: string | null;
  startTimer: ReturnType<typeof setTimeout> | null;
  restartTimer: ReturnType<typeof setTimeout> | null;
  exited: PromiseWithResolvers<void> | null;
}

/**
 * The main thread's role (see the module).
 *
 * @typeParam S The server's counters.
 */
export class Supervisor<S> implements ClusterRole<S> {
  readonly group: WorkerGroup<S>;
  readonly backplane: BackplaneFactory;
  readonly signals: boolean;
  #address: NetAddr | null = null;
  readonly #options: ClusterServeOptions;
  readonly #count: number;
  readonly #accept: WorkerAccept;
  readonly #module: string | URL;
  readonly #restart: boolean;
  #topology: WorkersTopology | null = null;
  readonly #loads: SharedArrayBuffer;
  readonly #loadWords: Int32Array;
  #mainPortsByNode: (MessagePort | null)[] | null = null;
  readonly #slots: Slot[] = [];
  /** Messages transport: each worker's ports, handed over at its hello. */
  readonly #workerPorts: ((MessagePort | null)[] | null)[] = [];
  readonly #mainPorts: MessagePort[] = [];
  readonly #ready = Promise.withResolvers<void>();
  readonly #statsRequests = new Map<number, (slot: number, stats: NodeStats<S>) => void>();
  /** Tells the module whether this group holds the program's one place. */
  readonly #running: (running: boolean) => void;
  #reservation: Reservation | null = null;
  /** The TLS reloads so far, merged: what a worker started later must apply. */
  #tlsReload: TlsReloadOptions | null = null;
  /** `workerAccept: "main"`: the listening socket, then its poll target once started. */
  #pendingListener: TcpListener | null = null;
  #listener: ListenerTarget | null = null;
  readonly #hostname: string;
  readonly #port: number;
  #server: ClusterServer<S> | null = null;
  #allReady = false;
  #failed = false;
  #stopping = false;
  #released = false;
  #statsId = 0;
  #restarts = 0;

  /**
   * Prepares the group; {@link Supervisor.listen} takes the port and creates the shared
   * structures, {@link Supervisor.start} starts the workers.
   */
  constructor(
    options: ClusterServeOptions,
    count: number,
    accept: WorkerAccept,
    running: (running: boolean) => void,
  ) {
    this.#options = options;
    this.#count = count;
    this.#accept = accept;
    this.#running = running;
    this.#module = options.workerModule ?? Deno.mainModule;
    this.#restart = options.restartWorkers ?? true;
    this.signals = options.signals !== undefined && options.signals !== false;
    this.#hostname = options.hostname ?? "0.0.0.0";
    this.#port = options.port ?? 8080;
    this.backplane = (loop, handlers) => {
      const slot = new WorkersSlot();
      slot.fill({
        topology: this.#topology!,
        node: 0,
        consumer: false,
        ports: this.#mainPortsByNode ?? undefined,
      });
      return options.backplane === undefined
        ? slot.factory(loop, handlers)
        : composeBackplanes(slot, options.backplane)(loop, handlers);
    };
    this.#loads = new SharedArrayBuffer(4 * count);
    this.#loadWords = new Int32Array(this.#loads);
    for (let i = 0; i < count; i++) {
      this.#slots.push({
        index: i,
        worker: null,
        state: "starting",
        everReady: false,
        restarts: 0,
        startedAt: 0,
        restartDelay: RESTART_MIN_MS,
        crash: null,
        startTimer: null,
        restartTimer: null,
        exited: null,
      });
    }
    // Nobody may be waiting for `ready`: a failure must not become an unhandled rejection.
    this.#ready.promise.catch(() => {});
    const read = (): number => this.#restarts;
    this.group = {
      role: "main",
      index: -1,
      count,
      ready: this.#ready.promise,
      get restarts(): number {
        return read();
      },
      stats: () => this.#stats(),
    };
  }

  /** The shared structures (created by {@link Supervisor.listen}). */
  #topo(): WorkersTopology {
    return this.#topology!;
  }

  /** The address the group serves on (once {@link Supervisor.listen} ran). */
  get address(): NetAddr {
    return this.#address!;
  }

  listen(): NetAddr {
    const options = this.#options;
    try {
      if (this.#accept === "reuseport") {
        this.#reservation = reservePort(this.#hostname, this.#port, options.ipv6Only ?? false);
        this.#address = this.#reservation.address;
      } else {
        this.#pendingListener = listenTcp({
          hostname: this.#hostname,
          port: this.#port,
          backlog: options.backlog,
          ipv6Only: options.ipv6Only,
        });
        this.#address = this.#pendingListener.address;
      }
      this.#topology = createTopology(this.#count + 1, options.workerBackplane);
    } catch (err) {
      this.#reservation?.close();
      this.#reservation = null;
      this.#pendingListener?.close();
      this.#pendingListener = null;
      throw err;
    }
    if (this.#topology.transport === "messages") this.#mainPortsByNode = this.#makeChannels();
    this.#running(true);
    return this.#address;
  }

  /** The messages transport's channels: one per pair of nodes; returns node 0's ports. */
  #makeChannels(): (MessagePort | null)[] {
    const nodes = this.#count + 1;
    const ports: (MessagePort | null)[][] = Array.from(
      { length: nodes },
      () => Array.from({ length: nodes }, () => null),
    );
    for (let i = 0; i < nodes; i++) {
      for (let j = i + 1; j < nodes; j++) {
        const channel = new MessageChannel();
        ports[i][j] = channel.port1;
        ports[j][i] = channel.port2;
      }
    }
    for (let i = 1; i < nodes; i++) this.#workerPorts[i - 1] = ports[i];
    for (const p of ports[0]) if (p !== null) this.#mainPorts.push(p);
    return ports[0];
  }

  start(server: ClusterServer<S>): void {
    this.#server = server;
    const listener = this.#pendingListener;
    this.#pendingListener = null;
    if (listener !== null) {
      this.#listener = new ListenerTarget(
        loopOf(server.manager),
        listener,
        (fd, host, port) => this.#handOff(fd, host, port),
        server.stats,
      );
    }
    for (const slot of this.#slots) this.#spawn(slot);
    // However the main thread's manager ends, the workers go first, then the shared
    // structures.
    const end = (): void => {
      if (this.#slots.every((s) => s.worker === null)) this.#release();
      else void this.#drain({ timeout: 1_000 }).then(() => this.#release());
    };
    server.manager.join().then(end, end);
  }

  // ------------------------------------------------------------------ workers

  #spawn(slot: Slot): void {
    slot.state = slot.everReady ? "restarting" : "starting";
    slot.crash = null;
    slot.startedAt = performance.now();
    slot.exited = Promise.withResolvers<void>();
    let worker: Worker;
    try {
      worker = new Worker(this.#module, {
        type: "module",
        name: workerName(slot.index, this.address.port),
      });
    } catch (err) {
      slot.exited.resolve();
      this.#fail(slot, err);
      return;
    }
    slot.worker = worker;
    worker.onmessage = (event: MessageEvent) => {
      if (slot.worker === worker && isOurs(event.data)) this.#onMessage(slot, event.data as ToMain);
    };
    worker.onerror = (event: ErrorEvent) => {
      // Handled here: an error of a worker must not end the main thread.
      event.preventDefault();
      if (slot.worker !== worker) return;
      const text = event.error instanceof Error
        ? (event.error.stack ?? event.error.message)
        : event.message;
      this.#ended(slot, text);
    };
    slot.startTimer = setTimeout(() => {
      slot.startTimer = null;
      if (slot.state === "starting" || slot.state === "restarting") {
        this.#fail(
          slot,
          new ClusterError(
            "WORKER_START_TIMEOUT",
            `worker ${slot.index} did not listen within ${START_TIMEOUT_MS} ms: does its ` +
              `module (${this.#module}) call serve({ workers }) like the main thread?`,
          ),
        );
      }
    }, START_TIMEOUT_MS);
  }

  /** Posts to a worker; false when it is gone (its end is handled by #ended). */
  #post(slot: Slot, message: ToWorker, transfer: Transferable[] = []): boolean {
    if (slot.worker === null) return false;
    try {
      slot.worker.postMessage(message, transfer);
      return true;
    } catch {
      return false;
    }
  }

  #onMessage(slot: Slot, message: ToMain): void {
    switch (message.fdws) {
      case "hello": {
        if (this.#stopping) {
          // Started while the group stops: it stops before it opens anything more.
          this.#post(slot, { fdws: "shutdown", code: 1001, reason: "", timeout: 0 });
          return;
        }
        const ports = this.#workerPorts[slot.index] ?? null;
        // Ports can be given once: a restarted worker of the messages transport gets none.
        this.#workerPorts[slot.index] = null;
        const transfer = (ports ?? []).filter((p): p is MessagePort => p !== null);
        this.#post(slot, {
          fdws: "init",
          topology: this.#topo(),
          node: slot.index + 1,
          ports,
          listen: this.#accept === "reuseport",
          loads: this.#loads,
        }, transfer);
        return;
      }
      case "ready":
        if (slot.startTimer !== null) clearTimeout(slot.startTimer);
        slot.startTimer = null;
        if (this.#stopping) return;
        slot.state = "running";
        slot.everReady = true;
        if (this.#tlsReload !== null) {
          this.#post(slot, { fdws: "reloadTls", options: this.#tlsReload });
        }
        if (!this.#allReady && this.#slots.every((s) => s.state === "running")) this.#onAllReady();
        return;
      case "failed":
        this.#fail(
          slot,
          new ClusterError(
            "WORKER_START_FAILED",
            `worker ${slot.index} could not start: ${message.error}`,
          ),
        );
        return;
      case "stats":
        this.#statsRequests.get(message.id)?.(slot.index, message.stats as NodeStats<S>);
        return;
      case "groupStats": {
        const id = message.id;
        this.#stats().then(
          (stats) => void this.#post(slot, { fdws: "groupStats", id, stats }),
          (err) => this.#server?.reportError(err),
        );
        return;
      }
      case "crashed":
        slot.crash = message.error;
        return;
      case "exited":
        this.#ended(slot, null);
        return;
    }
  }

  #onAllReady(): void {
    this.#allReady = true;
    // The workers hold the port now.
    this.#reservation?.close();
    this.#reservation = null;
    const server = this.#server!;
    if (this.#listener !== null) {
      loopOf(server.manager).addTarget(this.#listener, Interest.READABLE);
    }
    try {
      server.onListen?.(this.address);
    } catch (err) {
      server.reportError(err);
    }
    this.#ready.resolve();
  }

  /** A worker is gone (it said so, or it failed): clean its traces, restart it or not. */
  #ended(slot: Slot, error: string | null): void {
    const worker = slot.worker;
    if (worker === null) return;
    slot.worker = null;
    if (slot.startTimer !== null) clearTimeout(slot.startTimer);
    slot.startTimer = null;
    worker.terminate();
    this.#forget(slot.index);
    slot.exited?.resolve();
    const crash = error ?? slot.crash;
    if (this.#stopping) {
      slot.state = "stopped";
      return;
    }
    if (!slot.everReady) {
      this.#fail(
        slot,
        new ClusterError(
          "WORKER_START_FAILED",
          `worker ${slot.index} ended before it listened${crash === null ? "" : `: ${crash}`}`,
        ),
      );
      return;
    }
    this.#server?.reportError(
      crash === null
        ? new ClusterError("WORKER_EXITED", `worker ${slot.index} stopped on its own`)
        : new ClusterError("WORKER_CRASHED", `worker ${slot.index} crashed: ${crash}`),
    );
    // The messages transport cannot give a new worker its ports again.
    if (!this.#restart || this.#topo().transport !== "ring") {
      slot.state = "stopped";
      return;
    }
    // A worker that crashes right after starting waits longer each time.
    const ran = performance.now() - slot.startedAt;
    slot.restartDelay = ran > STABLE_MS
      ? RESTART_MIN_MS
      : Math.min(RESTART_MAX_MS, slot.restartDelay * 2);
    slot.state = "restarting";
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = null;
      if (this.#stopping) {
        slot.state = "stopped";
        return;
      }
      slot.restarts++;
      this.#restarts++;
      this.#spawn(slot);
    }, ran > STABLE_MS ? RESTART_MIN_MS : slot.restartDelay);
  }

  /** What a gone worker leaves in shared memory: its subscriptions, its read cursors. */
  #forget(index: number): void {
    const node = index + 1;
    const topology = this.#topo();
    InterestTable.clearNode(topology.interest, topology.nodes, node);
    for (const ring of topology.rings) forceAbsent(ring, topology.nodes, node);
    Atomics.store(this.#loadWords, index, 0);
  }

  /** A worker could not start: the group stops, `ready` rejects. */
  #fail(slot: Slot, error: unknown): void {
    if (this.#failed || this.#stopping) {
      this.#ended(slot, null);
      return;
    }
    this.#failed = true;
    this.#ended(slot, null);
    this.#server?.reportError(error);
    this.#ready.reject(error);
    void this.#server?.shutdown({ timeout: 1_000 });
  }

  // ------------------------------------------------------------------ connections

  /** `workerAccept: "main"`: an accepted connection goes to the least loaded worker. */
  #handOff(fd: number, host: string, port: number): void {
    const loads = this.#loadWords;
    let best: Slot | null = null;
    let bestLoad = Infinity;
    for (const slot of this.#slots) {
      if (slot.state !== "running") continue;
      const load = Atomics.load(loads, slot.index);
      if (load < bestLoad) {
        bestLoad = load;
        best = slot;
      }
    }
    if (best === null) {
      // No worker can take it right now (all restarting): refuse rather than hold it.
      closeFd(fd);
      return;
    }
    Atomics.add(loads, best.index, 1);
    if (!this.#post(best, { fdws: "conn", fd, host, port })) closeFd(fd);
  }

  // ------------------------------------------------------------------ stats

  async #stats(): Promise<ClusterStats<S>> {
    const server = this.#server!;
    const id = ++this.#statsId;
    const answers: (NodeStats<S> | null)[] = this.#slots.map(() => null);
    const asked = this.#slots.filter((s) => s.state === "running");
    const done = Promise.withResolvers<void>();
    let left = asked.length;
    this.#statsRequests.set(id, (index, stats) => {
      if (answers[index] !== null) return;
      answers[index] = stats;
      if (--left === 0) done.resolve();
    });
    for (const slot of asked) this.#post(slot, { fdws: "stats", id });
    const timer = setTimeout(() => done.resolve(), STATS_TIMEOUT_MS);
    if (left === 0) done.resolve();
    await done.promise;
    clearTimeout(timer);
    this.#statsRequests.delete(id);
    const own = server.snapshot();
    const answered = answers.filter((a): a is NodeStats<S> => a !== null);
    return {
      workers: this.#slots.map((slot) => ({
        index: slot.index,
        state: slot.state,
        restarts: slot.restarts,
        stats: answers[slot.index],
      })),
      total: sumCounters([own, ...answered]),
      main: { manager: own.manager, backplane: own.backplane },
      restarts: this.#restarts,
    };
  }

  // ------------------------------------------------------------------ shutdown

  stopAccepting(options: ShutdownOptions): Promise<void> {
    return this.#drain(options);
  }

  reloadTls(options: TlsReloadOptions): void {
    // Kept for workers started later (restarts): they begin with the original options.
    this.#tlsReload = { ...this.#tlsReload, ...options };
    for (const slot of this.#slots) {
      if (slot.state === "running") this.#post(slot, { fdws: "reloadTls", options });
    }
  }

  abandon(): void {
    // No worker was started yet: only what listen() took is held.
    this.#ready.promise.catch(() => {});
    this.#ready.reject(new ClusterError("WORKER_START_FAILED", "the server did not start"));
    this.#release();
  }

  /** Stops accepting, asks every worker to close its connections and exit, waits. */
  async #drain(options: ShutdownOptions): Promise<void> {
    this.#stopping = true;
    this.#ready.reject(new ClusterError("WORKER_START_FAILED", "the server stopped"));
    this.#reservation?.close();
    this.#reservation = null;
    const listener = this.#listener;
    this.#listener = null;
    if (listener !== null) {
      if (this.#server !== null) loopOf(this.#server.manager).removeTarget(listener);
      listener.close();
    }
    this.#pendingListener?.close();
    this.#pendingListener = null;
    const timeout = options.timeout ?? 5_000;
    const waits: Promise<void>[] = [];
    for (const slot of this.#slots) {
      if (slot.restartTimer !== null) clearTimeout(slot.restartTimer);
      slot.restartTimer = null;
      if (slot.worker === null) {
        slot.state = "stopped";
        continue;
      }
      slot.state = "stopping";
      this.#post(slot, {
        fdws: "shutdown",
        code: options.code ?? 1001,
        reason: options.reason ?? "server shutting down",
        timeout,
      });
      waits.push(slot.exited!.promise);
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeout + EXIT_GRACE_MS);
    });
    await Promise.race([Promise.all(waits), late]);
    clearTimeout(timer);
    // Whoever did not exit in time is terminated (what it held open stays open).
    for (const slot of this.#slots) {
      if (slot.worker !== null) this.#ended(slot, null);
    }
  }

  /** Every worker is gone: the shared structures go. */
  #release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#stopping = true;
    this.#reservation?.close();
    this.#pendingListener?.close();
    for (const p of this.#mainPorts) p.close();
    // Ports of workers that never said hello.
    for (const ports of this.#workerPorts) for (const p of ports ?? []) p?.close();
    if (this.#topology !== null) closeTopology(this.#topology);
    this.#running(false);
  }
}
