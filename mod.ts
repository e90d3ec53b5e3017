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
 * ```ts ignore
 * import { serve } from "@fdws/fdws";
 *
 * serve({ port: 9001, websocket: { message: (ws, data) => ws.send(data as string) } });
 * ```
 *
 * @module
 */

export { FdwsError } from "./errors.ts";
export { SyscallError } from "./ffi/errno.ts";
export {
  type BinaryType,
  InvalidStateError,
  type ReadyState,
  type Role,
  WebSocket,
} from "./core/websocket.ts";
export {
  type BackpressurePolicy,
  ManagerError,
  type ManagerOptions,
  type ManagerStats,
  type WebSocketHandlers,
  WebSocketManager,
} from "./core/manager.ts";
export {
  type FetchResult,
  serve,
  type ServeOptions,
  Server,
  type ServerStats,
  type UpgradeOptions,
} from "./server/server.ts";
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
export { BasePoller } from "./poller/base.ts";
export { Registry } from "./poller/registry.ts";
export type { NetAddr } from "./net/tcp.ts";
export { CloseCode, CloseCodeError } from "./protocol/frame/close_codes.ts";
export { HandshakeError, type HandshakeErrorCode } from "./protocol/http/handshake_error.ts";
export { connect, ConnectError, type ConnectOptions } from "./client/connect.ts";
export { type ResolvedAddress, ResolveError, resolveHost } from "./net/resolve.ts";
