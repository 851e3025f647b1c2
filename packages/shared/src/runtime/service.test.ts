import { EventEmitter } from "node:events";
import { createLogger } from "../observability/log.ts";
import type { Lifecycle } from "./lifecycle.ts";
import { runService, type RunServiceHost } from "./service.ts";

function fakeHost(argv: string[] = []) {
  const events = new EventEmitter();
  const exits: number[] = [];
  const out: string[] = [];
  const host: RunServiceHost = {
    argv,
    writeOut: (s) => void out.push(s),
    once: (event, fn) => void events.once(event, fn),
    on: (event, fn) => void events.on(event, fn),
    exit: (code) => void exits.push(code),
  };
  return { host, events, exits, out };
}

function recorder(log: string[], name: string): Lifecycle {
  return {
    name,
    start: async () => void log.push(`start ${name}`),
    close: async () => void log.push(`close ${name}`),
  };
}

const logger = createLogger("test", "silent");
const flush = () => new Promise((r) => setImmediate(r));

describe("runService", () => {
  it("starts in order, and on SIGTERM closes in reverse once, then exits 0", async () => {
    const { host, events, exits } = fakeHost();
    const log: string[] = [];
    let started = 0;
    const stop = await runService(
      {
        help: "help",
        config: () => ({ n: 3 }),
        build: async () => ({
          components: ["a", "b", "c"].map((n) => recorder(log, n)),
          logger,
          deadlineMs: 1000,
          started: () => void (started += 1),
        }),
      },
      host,
    );
    expect(stop).toBeDefined();
    expect(log).toEqual(["start a", "start b", "start c"]);
    expect(started).toBe(1);
    events.emit("SIGTERM", "SIGTERM");
    events.emit("SIGTERM", "SIGTERM");
    await flush();
    // A second stop (as a SIGINT during shutdown would make) closes nothing again.
    await stop!();
    await flush();
    expect(log).toEqual(["start a", "start b", "start c", "close c", "close b", "close a"]);
    expect(exits).toEqual([0]);
  });

  it("closes only what started when a start fails, and exits 1", async () => {
    const { host, exits } = fakeHost();
    const log: string[] = [];
    const broken: Lifecycle = { name: "broken", start: async () => Promise.reject(new Error("no")), close: async () => void log.push("close broken") };
    await runService({ help: "", config: () => 0, build: async () => ({ components: [recorder(log, "a"), broken, recorder(log, "c")], logger, deadlineMs: 1000 }) }, host);
    expect(log).toEqual(["start a", "close a"]);
    expect(exits).toEqual([1]);
  });

  it("prints --help without reading the configuration", async () => {
    const { host, out } = fakeHost(["--help"]);
    const stop = await runService({ help: "usage: x\n", config: () => { throw new Error("not read"); }, build: async () => undefined }, host);
    expect(stop).toBeUndefined();
    expect(out).toEqual(["usage: x\n"]);
  });

  it("answers --version, and an unknown flag with the usage on stderr and exit code 2, without reading the configuration", async () => {
    const def = { help: "usage: x\n", config: () => { throw new Error("not read"); }, build: async () => undefined };
    const v = fakeHost(["--version"]);
    expect(await runService(def, v.host)).toBeUndefined();
    expect(v.out).toEqual([expect.stringMatching(/^pesan \S+\n$/)]);
    expect(v.exits).toEqual([]);
    const bad = fakeHost(["--bogus"]);
    const err: string[] = [];
    expect(await runService(def, { ...bad.host, writeErr: (s) => void err.push(s) })).toBeUndefined();
    expect(bad.exits).toEqual([2]);
    expect(err.join("")).toMatch(/^Unknown option '--bogus'[\s\S]*\n\nusage: x\n$/);
  });

  it("passes its own options to config and build, and runs nothing when build says so", async () => {
    const { host } = fakeHost(["--check", "--config", "f.yaml"]);
    const seen: unknown[] = [];
    const stop = await runService(
      {
        help: "",
        options: { config: { type: "string" }, check: { type: "boolean" } },
        config: (args) => args.config,
        build: async (config, args) => void seen.push(config, args.check),
      },
      host,
    );
    expect(stop).toBeUndefined();
    expect(seen).toEqual(["f.yaml", true]);
  });
});
