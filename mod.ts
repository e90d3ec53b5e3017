/**
 * fdws: a WebSocket server and client for Deno that does its own network I/O. It binds
 * libc through `Deno.dlopen`, polls raw sockets with epoll (Linux), kqueue (macOS,
 * FreeBSD) or select, and runs a {@link WebSocketManager} that maps each descriptor to a
 * {@link WebSocket} with explicit lifecycle methods and a corked broadcast path.
 *
 * Needs `--allow-ffi` (which, like `--allow-all`, gives the process the power of native
 * code).
 *
 * @example Echo server
 * ```ts
 * import { serve } from "./mod.ts";
 *
 * const server = serve({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   websocket: { message: (ws, data) => void ws.send(data as string | Uint8Array) },
 * });
 * console.log(`ws://127.0.0.1:${server.port}/`);
 * await server.shutdown();
 * ```
 *
 * @module
 */

export { FdwsError } from "./errors.ts";
export { SyscallError } from "./ffi/errno.ts";
export type { ReadyState, Role } from "./core/connection.ts";
export {
  type BinaryType,
  InvalidStateError,
  type Message,
  type SendOptions,
  SendStatus,
  WebSocket,
  type WebSocketHandlers,
  type WebSocketHost,
} from "./core/websocket.ts";
export {
  type BackpressurePolicy,
  type DeliverOptions,
  ManagerError,
  type ManagerOptions,
  WebSocketManager,
} from "./core/manager.ts";
export type { ManagerStats, TickHistogram } from "./core/stats.ts";
export type { IoLoop, PollTarget } from "./core/io_loop.ts";
export type {
  Backplane,
  BackplaneFactory,
  BackplaneGap,
  BackplaneHandlers,
  BackplaneStats,
} from "./core/backplane.ts";
export {
  redisBackplane,
  type RedisBackplaneMode,
  type RedisBackplaneOptions,
} from "./backplane/redis/redis_backplane.ts";
export { RedisBackplaneError } from "./backplane/redis/errors.ts";
export {
  type ClusterOptions,
  type ShutdownOptions,
  type WorkerAccept,
  type WorkerGroup,
} from "./server/cluster/cluster.ts";
export { ClusterError } from "./server/cluster/errors.ts";
export { workerIndex } from "./server/cluster/role.ts";
export type { ClusterStats, NodeStats, WorkerState, WorkerStats } from "./server/cluster/stats.ts";
export type { WorkersBackplaneOptions, WorkersTransport } from "./backplane/workers/topology.ts";
export { WorkersBackplaneError } from "./backplane/workers/errors.ts";
export {
  type FetchResult,
  serve,
  type ServeOptions,
  Server,
  type UpgradeOptions,
} from "./server/serve.ts";
export type { ServerStats } from "./server/server_stats.ts";
export { connect, type ConnectOptions } from "./client/connect.ts";
export { TlsError } from "./ffi/openssl.ts";
export type {
  DeflateClientOptions,
  DeflateMode,
  DeflateServerOptions,
} from "./protocol/deflate/options.ts";
export type { TlsReloadOptions, TlsServerOptions } from "./transport/tls/server_context.ts";
export type { TlsClientOptions } from "./transport/tls/client_context.ts";
export type { TlsIdentity, TlsMinVersion } from "./transport/tls/native.ts";
export type { PemInput } from "./transport/tls/pem.ts";
export { ConnectError } from "./client/errors.ts";
export {
  Events,
  Interest,
  type InterestSet,
  type Poller,
  PollerError,
  type PollerKind,
  Ready,
} from "./poller/poller.ts";
export { createPoller, defaultPollerKind } from "./poller/default.ts";
export { EpollPoller } from "./poller/epoll.ts";
export { KqueuePoller } from "./poller/kqueue.ts";
export { SelectPoller } from "./poller/select.ts";
export type { NetAddr } from "./net/tcp.ts";
export { CloseCode, CloseCodeError } from "./protocol/frame/close_codes.ts";
export { HandshakeError, type HandshakeErrorCode } from "./protocol/http/handshake_error.ts";
export { type ResolvedAddress, ResolveError, resolveHost } from "./net/resolve.ts";
