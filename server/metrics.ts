/**
 * A server's counters in the Prometheus text exposition format (version 0.0.4), for a
 * scraper to read from `GET /metrics` (see the `metricsPath` option of `serve()`): one
 * server's, or a worker group's with a `worker` label on every series (sum them in the
 * query; the text holds no totals, which a `sum()` would count twice).
 *
 * @module
 */

import type { BackplaneStats } from "../core/backplane.ts";
import type { ManagerStats } from "../core/stats.ts";
import { TICK_BUCKETS } from "../core/stats.ts";
import type { ClusterStats, NodeStats } from "./cluster/stats.ts";
import type { ServerStats } from "./server_stats.ts";

/** What the metrics are made of. */
export interface MetricsSource {
  /** The manager's counters. */
  manager: ManagerStats;
  /** Open connections. */
  connections: number;
  /** Unsent bytes queued over all connections. */
  bufferedBytes: number;
  /** TCP connections accepted. */
  accepted: number;
  /** WebSockets opened by the upgrade. */
  upgraded: number;
  /** Connections still in their HTTP phase. */
  pendingHandshakes: number;
  /** HTTP answers other than 101, by status (handshake failures among them). */
  responses: Record<number, number>;
  /** Connections closed at accept for lack of descriptors. */
  droppedAtLimit: number;
  /** Connections whose TLS handshake failed. */
  tlsHandshakeFailures: number;
  /** The backplane's counters, when the server has one (else its series are left out). */
  backplane?: BackplaneStats | null;
}

/**
 * Renders one server's `source` as Prometheus text.
 *
 * @example
 * ```ts
 * import { createStats } from "../core/stats.ts";
 * import { prometheusText } from "./metrics.ts";
 *
 * const text = prometheusText({
 *   manager: createStats(),
 *   connections: 0,
 *   bufferedBytes: 0,
 *   accepted: 0,
 *   upgraded: 0,
 *   pendingHandshakes: 0,
 *   responses: { 400: 1 },
 *   droppedAtLimit: 0,
 *   tlsHandshakeFailures: 0,
 * });
 * console.log(text.includes('fdws_http_responses_total{status="400"} 1')); // true
 * ```
 */
export function prometheusText(source: MetricsSource): string {
  const out: string[] = [];
  writeFamilies(out, [{ labels: "", source }]);
  return out.join("\n") + "\n";
}

/**
 * Renders a worker group's counters (`await server.workers.stats()`): every series with a
 * `worker="<index>"` label, plus `fdws_workers`, `fdws_worker_up` (0 for a worker that is
 * not running or did not answer) and `fdws_worker_restarts_total`.
 *
 * @example
 * ```ts
 * import type { ClusterStats } from "./cluster/stats.ts";
 * import { groupPrometheusText } from "./metrics.ts";
 * import type { ServerStats } from "./server_stats.ts";
 *
 * function scrape(stats: ClusterStats<ServerStats>): string {
 *   return groupPrometheusText(stats); // fdws_connections{worker="0"} 12 ...
 * }
 * console.log(typeof scrape); // "function"
 * ```
 */
export function groupPrometheusText(stats: ClusterStats<ServerStats>): string {
  const out: string[] = [];
  const answered = stats.workers.filter((w) => w.stats !== null);
  writeFamilies(
    out,
    answered.map((w) => ({ labels: `worker="${w.index}"`, source: sourceOf(w.stats!) })),
  );
  family(out, "fdws_workers", "gauge", "Workers of the group.", [["", stats.workers.length]]);
  family(
    out,
    "fdws_worker_up",
    "gauge",
    "1 for a worker that is running and answered, else 0.",
    stats.workers.map((w) => [
      `worker="${w.index}"`,
      w.state === "running" && w.stats !== null ? 1 : 0,
    ]),
  );
  family(
    out,
    "fdws_worker_restarts_total",
    "counter",
    "Times a worker was started again after a crash.",
    stats.workers.map((w) => [`worker="${w.index}"`, w.restarts]),
  );
  return out.join("\n") + "\n";
}

function sourceOf(node: NodeStats<ServerStats>): MetricsSource {
  const s = node.server;
  return {
    manager: node.manager,
    connections: node.connections,
    bufferedBytes: node.bufferedBytes,
    accepted: s.accepted,
    upgraded: s.upgraded,
    pendingHandshakes: node.pendingHandshakes,
    responses: s.responses,
    droppedAtLimit: s.droppedAtLimit,
    tlsHandshakeFailures: s.tlsHandshakeFailures,
    backplane: node.backplane,
  };
}

/** A source with the labels (`worker="1"`, or none) its series carry. */
interface Labelled {
  labels: string;
  source: MetricsSource;
}

/** One metric family: its help and type once, then a sample per label set. */
function family(
  out: string[],
  name: string,
  type: "counter" | "gauge",
  help: string,
  samples: [string, number][],
): void {
  out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  for (const [labels, v] of samples) {
    out.push(labels === "" ? `${name} ${v}` : `${name}{${labels}} ${v}`);
  }
}

/** Joins two label lists. */
function join(a: string, b: string): string {
  return a === "" ? b : b === "" ? a : `${a},${b}`;
}

function writeFamilies(out: string[], nodes: Labelled[]): void {
  const each = (get: (s: MetricsSource) => number): [string, number][] =>
    nodes.map((n) => [n.labels, get(n.source)]);
  const byKey = (
    get: (s: MetricsSource) => Record<number | string, number>,
    key: string,
  ): [string, number][] =>
    nodes.flatMap((n) =>
      Object.entries(get(n.source)).map(([k, v]): [string, number] => [
        join(n.labels, `${key}="${k}"`),
        v,
      ])
    );
  family(
    out,
    "fdws_connections",
    "gauge",
    "Open WebSocket connections.",
    each((s) => s.connections),
  );
  family(
    out,
    "fdws_connections_opened_total",
    "counter",
    "WebSocket connections opened.",
    each((s) => s.manager.opened),
  );
  family(
    out,
    "fdws_connections_closed_total",
    "counter",
    "WebSocket connections closed, by close code (1006: without a close frame).",
    byKey((s) => s.manager.closedByCode, "code"),
  );
  family(
    out,
    "fdws_messages_received_total",
    "counter",
    "Messages received.",
    each((s) => s.manager.messagesIn),
  );
  family(
    out,
    "fdws_messages_sent_total",
    "counter",
    "Messages queued for sending.",
    each((s) => s.manager.messagesOut),
  );
  family(
    out,
    "fdws_bytes_received_total",
    "counter",
    "Bytes received.",
    each((s) => s.manager.bytesIn),
  );
  family(
    out,
    "fdws_bytes_sent_total",
    "counter",
    "Bytes written.",
    each((s) => s.manager.bytesOut),
  );
  family(
    out,
    "fdws_buffered_bytes",
    "gauge",
    "Bytes queued and not yet written.",
    each((s) => s.bufferedBytes),
  );
  family(
    out,
    "fdws_dropped_messages_total",
    "counter",
    "Messages dropped by the backpressure policy.",
    each((s) => s.manager.droppedMessages),
  );
  family(
    out,
    "fdws_slow_consumers_total",
    "counter",
    "Connections closed for not reading fast enough.",
    each((s) => s.manager.slowConsumers),
  );
  family(
    out,
    "fdws_idle_timeouts_total",
    "counter",
    "Connections closed for silence.",
    each((s) => s.manager.idleTimeouts),
  );
  family(
    out,
    "fdws_protocol_errors_total",
    "counter",
    "Connections failed for breaking the protocol.",
    each((s) => s.manager.protocolErrors),
  );
  family(
    out,
    "fdws_callback_errors_total",
    "counter",
    "Application callbacks that threw.",
    each((s) => s.manager.callbackErrors),
  );
  family(
    out,
    "fdws_heap_trims_total",
    "counter",
    "Times freed C heap memory was given back to the system.",
    each((s) => s.manager.heapTrims),
  );
  family(
    out,
    "fdws_heap_trim_seconds_total",
    "counter",
    "Time spent giving freed C heap memory back to the system.",
    each((s) => s.manager.heapTrimSeconds),
  );
  family(
    out,
    "fdws_accepted_total",
    "counter",
    "TCP connections accepted.",
    each((s) => s.accepted),
  );
  family(
    out,
    "fdws_upgraded_total",
    "counter",
    "Upgrades accepted (101).",
    each((s) => s.upgraded),
  );
  family(
    out,
    "fdws_handshakes_pending",
    "gauge",
    "Connections in their HTTP phase.",
    each((s) => s.pendingHandshakes),
  );
  family(
    out,
    "fdws_http_responses_total",
    "counter",
    "HTTP answers other than 101, by status (failed handshakes among them).",
    byKey((s) => s.responses, "status"),
  );
  family(
    out,
    "fdws_tls_handshake_failures_total",
    "counter",
    "Connections whose TLS handshake failed.",
    each((s) => s.tlsHandshakeFailures),
  );
  family(
    out,
    "fdws_dropped_at_limit_total",
    "counter",
    "Connections closed at accept because the process had no descriptor left.",
    each((s) => s.droppedAtLimit),
  );
  writeBackplane(out, nodes);
  out.push(
    "# HELP fdws_loop_tick_seconds Duration of the loop's ticks (read, dispatch, write).",
    "# TYPE fdws_loop_tick_seconds histogram",
  );
  for (const { labels, source } of nodes) {
    const t = source.manager.ticks;
    const at = (extra: string): string => `{${join(labels, extra)}}`;
    let cumulative = 0;
    for (let i = 0; i < TICK_BUCKETS.length; i++) {
      cumulative += t.counts[i];
      out.push(`fdws_loop_tick_seconds_bucket${at(`le="${TICK_BUCKETS[i]}"`)} ${cumulative}`);
    }
    out.push(`fdws_loop_tick_seconds_bucket${at('le="+Inf"')} ${t.count}`);
    const suffix = labels === "" ? "" : `{${labels}}`;
    out.push(`fdws_loop_tick_seconds_sum${suffix} ${t.sum}`);
    out.push(`fdws_loop_tick_seconds_count${suffix} ${t.count}`);
  }
}

/** The backplane's series, for the nodes that have one (none at all when no node has). */
function writeBackplane(out: string[], nodes: Labelled[]): void {
  const withBackplane = nodes.flatMap((n) =>
    n.source.backplane ? [{ labels: n.labels, stats: n.source.backplane }] : []
  );
  if (withBackplane.length === 0) return;
  const each = (get: (s: BackplaneStats) => number): [string, number][] =>
    withBackplane.map((n) => [n.labels, get(n.stats)]);
  family(
    out,
    "fdws_backplane_up",
    "gauge",
    "1 while every connection the backplane needs is up, else 0.",
    each((s) => s.connected ? 1 : 0),
  );
  const counters: [string, string, (s: BackplaneStats) => number][] = [
    ["published", "Messages handed to the backplane and accepted.", (s) => s.published],
    ["received", "Messages from other nodes delivered to this one.", (s) => s.received],
    ["gaps", "Gaps detected in what other nodes published.", (s) => s.gaps],
    ["missed", "Messages known to be lost (over sequence gaps).", (s) => s.missed],
    ["duplicates", "Messages received twice and not delivered again.", (s) => s.duplicates],
    ["dropped", "Messages the backplane could not queue and dropped.", (s) => s.dropped],
    ["reconnects", "Backplane connections re-established after a loss.", (s) => s.reconnects],
    ["errors", "Backplane errors (connection failures included).", (s) => s.errors],
  ];
  for (const [name, help, get] of counters) {
    family(out, `fdws_backplane_${name}_total`, "counter", help, each(get));
  }
  family(
    out,
    "fdws_backplane_buffered_bytes",
    "gauge",
    "Bytes of outgoing messages not yet acknowledged by the backplane's transport.",
    each((s) => s.buffered),
  );
}
