/**
 * A server's counters in the Prometheus text exposition format (version 0.0.4), for a
 * scraper to read from `GET /metrics` (see the `metricsPath` option of `serve()`).
 *
 * @module
 */

import type { ManagerStats } from "../core/stats.ts";
import { TICK_BUCKETS } from "../core/stats.ts";

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
}

/**
 * Renders `source` as Prometheus text.
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
  const m = source.manager;
  const out: string[] = [];
  const metric = (
    name: string,
    type: "counter" | "gauge",
    help: string,
    value: number | [string, number][],
  ): void => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    if (typeof value === "number") out.push(`${name} ${value}`);
    else for (const [labels, v] of value) out.push(`${name}{${labels}} ${v}`);
  };
  metric("fdws_connections", "gauge", "Open WebSocket connections.", source.connections);
  metric("fdws_connections_opened_total", "counter", "WebSocket connections opened.", m.opened);
  metric(
    "fdws_connections_closed_total",
    "counter",
    "WebSocket connections closed, by close code (1006: without a close frame).",
    Object.entries(m.closedByCode).map(([code, n]) => [`code="${code}"`, n]),
  );
  metric("fdws_messages_received_total", "counter", "Messages received.", m.messagesIn);
  metric("fdws_messages_sent_total", "counter", "Messages queued for sending.", m.messagesOut);
  metric("fdws_bytes_received_total", "counter", "Bytes received.", m.bytesIn);
  metric("fdws_bytes_sent_total", "counter", "Bytes written.", m.bytesOut);
  metric("fdws_buffered_bytes", "gauge", "Bytes queued and not yet written.", source.bufferedBytes);
  metric(
    "fdws_dropped_messages_total",
    "counter",
    "Messages dropped by the backpressure policy.",
    m.droppedMessages,
  );
  metric(
    "fdws_slow_consumers_total",
    "counter",
    "Connections closed for not reading fast enough.",
    m.slowConsumers,
  );
  metric("fdws_idle_timeouts_total", "counter", "Connections closed for silence.", m.idleTimeouts);
  metric(
    "fdws_protocol_errors_total",
    "counter",
    "Connections failed for breaking the protocol.",
    m.protocolErrors,
  );
  metric(
    "fdws_callback_errors_total",
    "counter",
    "Application callbacks that threw.",
    m.callbackErrors,
  );
  metric("fdws_accepted_total", "counter", "TCP connections accepted.", source.accepted);
  metric("fdws_upgraded_total", "counter", "Upgrades accepted (101).", source.upgraded);
  metric(
    "fdws_handshakes_pending",
    "gauge",
    "Connections in their HTTP phase.",
    source.pendingHandshakes,
  );
  metric(
    "fdws_http_responses_total",
    "counter",
    "HTTP answers other than 101, by status (failed handshakes among them).",
    Object.entries(source.responses).map(([status, n]) => [`status="${status}"`, n]),
  );
  metric(
    "fdws_tls_handshake_failures_total",
    "counter",
    "Connections whose TLS handshake failed.",
    source.tlsHandshakeFailures,
  );
  metric(
    "fdws_dropped_at_limit_total",
    "counter",
    "Connections closed at accept because the process had no descriptor left.",
    source.droppedAtLimit,
  );
  const t = m.ticks;
  out.push(
    "# HELP fdws_loop_tick_seconds Duration of the loop's ticks (read, dispatch, write).",
    "# TYPE fdws_loop_tick_seconds histogram",
  );
  let cumulative = 0;
  for (let i = 0; i < TICK_BUCKETS.length; i++) {
    cumulative += t.counts[i];
    out.push(`fdws_loop_tick_seconds_bucket{le="${TICK_BUCKETS[i]}"} ${cumulative}`);
  }
  out.push(`fdws_loop_tick_seconds_bucket{le="+Inf"} ${t.count}`);
  out.push(`fdws_loop_tick_seconds_sum ${t.sum}`);
  out.push(`fdws_loop_tick_seconds_count ${t.count}`);
  return out.join("\n") + "\n";
}
