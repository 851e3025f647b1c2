import { Registry, collectDefaultMetrics, Counter, Gauge, Histogram } from "prom-client";

export { Registry, Counter, Gauge, Histogram };

/** A registry of the service's own (never the global one), with Node's default metrics. */
export function createRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  return registry;
}
