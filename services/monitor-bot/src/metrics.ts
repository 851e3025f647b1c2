import { Counter, Gauge, Histogram, type Registry } from "@pesan/shared/observability";

export type MonitorMetrics = ReturnType<typeof createMonitorMetrics>;

/**
 * Labels come from config names (targets, services, components, probes, actions) and fixed
 * words; a component's address label follows what its name resolves to, and a label set is
 * removed when its address is forgotten, so the series stay bounded.
 */
export function createMonitorMetrics(registry: Registry) {
  return {
    hostUp: new Gauge({ name: "pesan_monitor_host_up", help: "1 when the target answers over SSH", labelNames: ["target"], registers: [registry] }),
    hostPercent: new Gauge({
      name: "pesan_monitor_host_percent",
      help: "Last CPU, memory and disk use of a target, in percent",
      labelNames: ["target", "resource"],
      registers: [registry],
    }),
    serviceUp: new Gauge({ name: "pesan_monitor_service_up", help: "1 when the service's status command exits 0", labelNames: ["target", "service"], registers: [registry] }),
    componentUp: new Gauge({
      name: "pesan_monitor_component_up",
      help: "1 when one address of a probed component answers",
      labelNames: ["type", "component", "address"],
      registers: [registry],
    }),
    messagingUp: new Gauge({ name: "pesan_monitor_messaging_up", help: "1 when the last messaging probe was OK", labelNames: ["probe"], registers: [registry] }),
    messagingStatus: new Gauge({
      name: "pesan_monitor_messaging_status",
      help: "1 for the last messaging probe result (OK, FAIL or EXPIRED), 0 for the others",
      labelNames: ["probe", "status"],
      registers: [registry],
    }),
    messagingDelay: new Gauge({ name: "pesan_monitor_messaging_delay_seconds", help: "End-to-end delay of the last OK messaging probe", labelNames: ["probe"], registers: [registry] }),
    newUsers: new Gauge({ name: "pesan_monitor_new_users", help: "New users per UTC period (total: all users)", labelNames: ["period"], registers: [registry] }),
    probeSeconds: new Histogram({
      name: "pesan_monitor_probe_seconds",
      help: "Time one probe took, by kind and outcome",
      labelNames: ["probe", "outcome"],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    events: new Counter({ name: "pesan_monitor_events_total", help: "Status changes, by kind", labelNames: ["kind"], registers: [registry] }),
    actions: new Counter({
      name: "pesan_monitor_actions_total",
      help: "Actions run, by action and outcome (ok, failed, timeout, dropped)",
      labelNames: ["action", "outcome"],
      registers: [registry],
    }),
    telegramMessages: new Counter({
      name: "pesan_monitor_telegram_messages_total",
      help: "Telegram sends by outcome (sent, rate_limited, retried, refused, dropped)",
      labelNames: ["outcome"],
      registers: [registry],
    }),
    telegramQueued: new Gauge({ name: "pesan_monitor_telegram_queued", help: "Telegram messages waiting to be sent", registers: [registry] }),
    telegramLeader: new Gauge({ name: "pesan_monitor_telegram_leader", help: "1 while this replica holds the alert lease", registers: [registry] }),
    telegramUpdates: new Counter({
      name: "pesan_monitor_telegram_updates_total",
      help: "Telegram updates received, by outcome (handled, duplicate, failed)",
      labelNames: ["outcome"],
      registers: [registry],
    }),
    alerts: new Counter({ name: "pesan_monitor_alerts_total", help: "Alert messages queued per member, by kind (down, up, threshold)", labelNames: ["kind"], registers: [registry] }),
    historyDropped: new Counter({ name: "pesan_monitor_history_dropped_total", help: "History rows dropped because the database stayed unwritable", registers: [registry] }),
  };
}
