import type { Logger } from "../observability/log.ts";

/** Anything long-lived: started once, closed idempotently. */
export interface Lifecycle {
  readonly name: string;
  start(): Promise<void>;
  close(): Promise<void>;
}

/** The parts of `process` runComponents uses; a test passes its own to signal and watch exits. */
export interface ProcessHost {
  once(event: "SIGTERM" | "SIGINT", fn: (signal: string) => void): void;
  on(event: "uncaughtException" | "unhandledRejection", fn: (err: unknown) => void): void;
  exit(code: number): void;
}

const realProcess: ProcessHost = {
  once: (event, fn) => void process.once(event, fn),
  on: (event, fn) => void process.on(event, fn),
  exit: (code) => process.exit(code),
};

/**
 * Starts components in order and stops them in reverse on SIGTERM/SIGINT, within a deadline.
 * An uncaught exception is logged and ends the process: carrying on in an unknown state risks
 * acknowledging work that was never done; the supervisor restarts us and the streams redeliver.
 */
export async function runComponents(components: Lifecycle[], logger: Logger, deadlineMs: number, host: ProcessHost = realProcess): Promise<() => Promise<void>> {
  const started: Lifecycle[] = [];
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      const timer = setTimeout(() => {
        logger.error({ deadlineMs }, "shutdown deadline passed, exiting");
        host.exit(1);
      }, deadlineMs);
      timer.unref();
      for (const c of [...started].reverse()) {
        try {
          await c.close();
        } catch (e) {
          logger.error({ err: e, component: c.name }, "error while closing");
        }
      }
      clearTimeout(timer);
    })();
    return stopping;
  };
  const onSignal = (signal: string) => {
    logger.info({ signal }, "shutting down");
    void stop().then(() => {
      logger.info("stopped");
      host.exit(0);
    });
  };
  host.once("SIGTERM", onSignal);
  host.once("SIGINT", onSignal);
  host.on("uncaughtException", (err) => {
    logger.fatal({ err }, "uncaught exception, exiting");
    host.exit(1);
  });
  host.on("unhandledRejection", (err) => {
    logger.fatal({ err }, "unhandled rejection, exiting");
    host.exit(1);
  });
  try {
    for (const c of components) {
      await c.start();
      started.push(c);
    }
  } catch (e) {
    logger.fatal({ err: e }, "start-up failed");
    await stop();
    host.exit(1);
  }
  return stop;
}

/** A resource that needs no starting, only closing (a pool, a connection), as a Lifecycle. */
export function closeOnly(name: string, close: () => Promise<void>): Lifecycle {
  return { name, start: async () => undefined, close };
}

/** Turns a config error (or any start-up error) into one clear line on stderr and exit code 2. */
export function exitOnStartupError(e: unknown): never {
  process.stderr.write(`${(e as Error).message ?? String(e)}\n`);
  process.exit(2);
}
