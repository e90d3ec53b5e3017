/**
 * A worker's side of a group: its server's manager gets the cross-worker backplane at
 * once; the worker says hello to the main thread, which answers with the shared
 * structures; then it joins the backplane and listens on the group's port (or takes the
 * connections the main thread hands it), and says it is ready. It answers stats requests
 * (and asks the main thread for the group's, for `/metrics`), drains when told to, and treats an exception nobody caught as a crash: its listener
 * closes at once, its connections close with 1011, and the main thread starts another.
 *
 * @module
 */

import { composeBackplanes } from "../../backplane/workers/compose.ts";
import { WorkersSlot } from "../../backplane/workers/workers_backplane.ts";
import type { BackplaneFactory } from "../../core/backplane.ts";
import { loopOf } from "../../core/manager.ts";
import { closeFd, listenTcp, type NetAddr } from "../../net/tcp.ts";
import { Interest } from "../../poller/poller.ts";
import { ListenerTarget } from "../listener.ts";
import type {
  ClusterRole,
  ClusterServeOptions,
  ClusterServer,
  ShutdownOptions,
  WorkerGroup,
} from "./contract.ts";
import { isOurs, type ToMain, type ToWorker } from "./messages.ts";
import type { WorkerName } from "./role.ts";
import type { TlsReloadOptions } from "../../transport/tls/server_context.ts";
import type { ClusterStats } from "./stats.ts";
import { ClusterError } from "./errors.ts";

/** The worker global scope, as far as this module uses it. */
interface WorkerScope {
  postMessage(message: unknown): void;
  addEventListener(type: string, listener: (event: Event) => void): void;
  removeEventListener(type: string, listener: (event: Event) => void): void;
  close(): void;
}

/** How often a worker tells the main thread its load (connections), ms. */
const LOAD_PERIOD_MS = 250;

/**
 * How long a worker waits for the group's counters: the main thread waits up to 1 s for
 * each worker, so this leaves room for a busy main thread.
 */
const GROUP_STATS_TIMEOUT_MS = 3_000;

/**
 * A worker's role (see the module).
 *
 * @typeParam S The server's counters.
 */
export class WorkerNode<S> implements ClusterRole<S> {
  readonly group: WorkerGroup<S>;
  readonly backplane: BackplaneFactory;
  readonly address: NetAddr;
  readonly signals = false;
  readonly #options: ClusterServeOptions;
  readonly #name: WorkerName;
  readonly #slot = new WorkersSlot();
  readonly #scope = globalThis as unknown as WorkerScope;
  readonly #ready = Promise.withResolvers<void>();
  #server: ClusterServer<S> | null = null;
  #listener: ListenerTarget | null = null;
  #loads: Int32Array | null = null;
  #loadTimer: ReturnType<typeof setInterval> | null = null;
  #count = 0;
  #stopping = false;
  #crashed = false;
  #ended = false;
  #groupStatsId = 0;
  readonly #groupStats = new Map<number, PromiseWithResolvers<ClusterStats<S>>>();
  readonly #onMessage = (event: Event): void => {
    const data = (event as MessageEvent).data;
    if (isOurs(data)) this.#handle(data as ToWorker);
  };
  readonly #onError = (event: Event): void => {
    // Ours to handle: the main thread learns it and starts another worker.
    event.preventDefault();
    this.#crash((event as ErrorEvent).error ?? (event as ErrorEvent).message);
  };
  readonly #onRejection = (event: Event): void => {
    event.preventDefault();
    this.#crash((event as PromiseRejectionEvent).reason);
  };

  /**
   * @param options The options of the worker's `serve()` call.
   * @param name What the worker's name says.
   */
  constructor(options: ClusterServeOptions, name: WorkerName) {
    this.#options = options;
    this.#name = name;
    this.address = {
      transport: "tcp",
      hostname: options.hostname ?? "0.0.0.0",
      port: name.port,
    };
    this.backplane = options.backplane === undefined
      ? this.#slot.factory
      : composeBackplanes(this.#slot, options.backplane);
    this.#ready.promise.catch(() => {});
    const read = (): number => this.#count;
    this.group = {
      role: "worker",
      index: name.index,
      get count(): number {
        return read();
      },
      ready: this.#ready.promise,
      restarts: 0,
      stats: () => this.#askGroupStats(),
    };
  }

  /** The group's port; the worker listens once it has joined. */
  listen(): NetAddr {
    return this.address;
  }

  abandon(): void {
    // listen() takes nothing in a worker.
  }

  reloadTls(_options: TlsReloadOptions): void {
    // A worker's server reloads its own context.
  }

  start(server: ClusterServer<S>): void {
    this.#server = server;
    const scope = this.#scope;
    scope.addEventListener("message", this.#onMessage);
    scope.addEventListener("error", this.#onError);
    scope.addEventListener("unhandledrejection", this.#onRejection);
    const end = (): void => this.#end();
    server.manager.join().then(end, (err) => {
      this.#crash(err);
      end();
    });
    this.#send({ fdws: "hello" });
  }

  #send(message: ToMain): void {
    this.#scope.postMessage(message);
  }

  #handle(message: ToWorker): void {
    const server = this.#server!;
    switch (message.fdws) {
      case "init": {
        if (this.#stopping || this.#count > 0) return;
        this.#count = message.topology.nodes - 1;
        this.#loads = new Int32Array(message.loads);
        this.#slot.fill({
          topology: message.topology,
          node: message.node,
          consumer: true,
          ports: message.ports ?? undefined,
        });
        if (message.listen) {
          try {
            this.#listen(server);
          } catch (err) {
            this.#send({ fdws: "failed", error: String((err as Error)?.message ?? err) });
            void server.shutdown({ timeout: 0 });
            return;
          }
        }
        this.#loadTimer = setInterval(() => this.#updateLoad(), LOAD_PERIOD_MS);
        this.#send({ fdws: "ready" });
        this.#ready.resolve();
        return;
      }
      case "conn":
        if (this.#stopping) {
          closeFd(message.fd);
          return;
        }
        server.accept(message.fd, message.host, message.port);
        this.#updateLoad();
        return;
      case "stats":
        this.#send({ fdws: "stats", id: message.id, stats: server.snapshot() });
        return;
      case "groupStats":
        this.#groupStats.get(message.id)?.resolve(message.stats as ClusterStats<S>);
        this.#groupStats.delete(message.id);
        return;
      case "reloadTls":
        try {
          server.reloadTls(message.options);
        } catch (err) {
          server.reportError(err);
        }
        return;
      case "shutdown":
        void server.shutdown({
          code: message.code,
          reason: message.reason,
          timeout: message.timeout,
        });
        return;
    }
  }

  /** Listens on the group's port, next to the other workers' listeners. */
  #listen(server: ClusterServer<S>): void {
    const options = this.#options;
    const listener = listenTcp({
      hostname: options.hostname ?? "0.0.0.0",
      port: this.#name.port,
      backlog: options.backlog,
      reusePort: true,
      ipv6Only: options.ipv6Only,
    });
    const loop = loopOf(server.manager);
    const target = new ListenerTarget(
      loop,
      listener,
      (fd, host, port) => server.accept(fd, host, port),
      server.stats,
    );
    try {
      loop.addTarget(target, Interest.READABLE);
    } catch (err) {
      target.close();
      throw err;
    }
    this.#listener = target;
  }

  #updateLoad(): void {
    const server = this.#server;
    if (this.#loads === null || server === null) return;
    const s = server.snapshot();
    Atomics.store(this.#loads, this.#name.index, s.connections + s.pendingHandshakes);
  }

  stopAccepting(_options: ShutdownOptions): Promise<void> {
    this.#stopping = true;
    this.#ready.reject(new Error("the worker stopped"));
    if (this.#loadTimer !== null) clearInterval(this.#loadTimer);
    this.#loadTimer = null;
    const listener = this.#listener;
    this.#listener = null;
    if (listener !== null) {
      loopOf(this.#server!.manager).removeTarget(listener);
      listener.close();
    }
    return Promise.resolve();
  }

  /** An exception nobody caught: stop serving at once, tell the main thread. */
  #crash(error: unknown): void {
    if (this.#crashed) return;
    this.#crashed = true;
    const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
    this.#send({ fdws: "crashed", error: text });
    void this.#server?.shutdown({ code: 1011, reason: "server error", timeout: 1_000 });
  }

  /** The manager has stopped (every descriptor of this worker is closed): say so, end. */
  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#loadTimer !== null) clearInterval(this.#loadTimer);
    const listener = this.#listener;
    this.#listener = null;
    listener?.close();
    const scope = this.#scope;
    scope.removeEventListener("message", this.#onMessage);
    this.#dropGroupStats();
    this.#send({ fdws: "exited" });
    scope.close();
  }

  /** The group's counters, from the main thread (which asks every worker). */
  #askGroupStats(): Promise<ClusterStats<S>> {
    if (this.#stopping || this.#ended || this.#count === 0) {
      return Promise.reject(
        new ClusterError("STATS_UNAVAILABLE", "this worker is not serving in a group"),
      );
    }
    const id = ++this.#groupStatsId;
    const request = Promise.withResolvers<ClusterStats<S>>();
    this.#groupStats.set(id, request);
    const timer = setTimeout(() => {
      this.#groupStats.delete(id);
      request.reject(
        new ClusterError(
          "STATS_UNAVAILABLE",
          `the main thread did not send the group's counters within ${GROUP_STATS_TIMEOUT_MS} ms`,
        ),
      );
    }, GROUP_STATS_TIMEOUT_MS);
    this.#send({ fdws: "groupStats", id });
    return request.promise.finally(() => clearTimeout(timer));
  }

  /** Fails the requests for the group's counters still waiting: the worker is ending. */
  #dropGroupStats(): void {
    for (const request of this.#groupStats.values()) {
      request.reject(new ClusterError("STATS_UNAVAILABLE", "the worker stopped"));
    }
    this.#groupStats.clear();
  }
}
