/**
 * A bench or soak stopped by the user (Ctrl-C, `kill`): without this, Node exits at the signal
 * and skips the `finally` that stops the cluster, so its gateways and routers keep running and
 * its database and Redis keys stay. `cleanup` runs once, on the first SIGINT or SIGTERM, then the
 * process exits as the signal would have (130, 143). The returned function removes the handlers.
 */
export function cleanupOnSignals(cleanup: () => Promise<void>, log: (line: string) => void): () => void {
  let started = false;
  const handler = (sig: NodeJS.Signals): void => {
    if (started) return;
    started = true;
    log(`${sig}: stopping the processes started and dropping what was created`);
    cleanup()
      .catch((e: unknown) => log(`clean-up after ${sig} failed: ${String(e)}`))
      .finally(() => process.exit(sig === "SIGINT" ? 130 : 143));
  };
  process.once("SIGINT", handler);
  process.once("SIGTERM", handler);
  return () => {
    process.off("SIGINT", handler);
    process.off("SIGTERM", handler);
  };
}

/** Makes an async clean-up run at most once, whoever calls it first (the finally or a signal). */
export function once(fn: () => Promise<void>): () => Promise<void> {
  let p: Promise<void> | undefined;
  return () => (p ??= fn());
}
