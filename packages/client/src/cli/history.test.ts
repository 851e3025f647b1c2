import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { historyPath, keptLines, loadHistory, saveHistory } from "./history.ts";

describe("historyPath", () => {
  test("XDG_STATE_HOME when absolute, else ~/.local/state", () => {
    expect(historyPath({ XDG_STATE_HOME: "/x/state" }, "/home/u")).toBe("/x/state/pesan/history");
    expect(historyPath({}, "/home/u")).toBe("/home/u/.local/state/pesan/history");
    expect(historyPath({ XDG_STATE_HOME: "rel" }, "/home/u")).toBe("/home/u/.local/state/pesan/history");
  });
});

describe("keptLines", () => {
  test("drops lines with passwords or tokens and blank ones, keeps the newest max", () => {
    expect(keptLines(["/who", "LOGIN alice secret1", "", "/login alice", "/register bob pw1234", "SEND bob hi"])).toEqual(["/who", "/login alice", "SEND bob hi"]);
    expect(keptLines(["a", "b", "c", "d"], 2)).toEqual(["c", "d"]);
  });
});

describe("loadHistory / saveHistory", () => {
  const dir = mkdtempSync(join(tmpdir(), "pesan-history-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("round trip, bounded, private, never a password", () => {
    const path = join(dir, "state", "pesan", "history");
    expect(loadHistory(path)).toEqual([]);
    saveHistory(path, ["/who", "/login alice hunter22", "SEND bob one", "SEND bob two"], 3);
    const text = readFileSync(path, "utf8");
    expect(text).toBe("/who\nSEND bob one\nSEND bob two\n");
    expect(text).not.toContain("hunter22");
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(loadHistory(path, 2)).toEqual(["SEND bob one", "SEND bob two"]);
  });

  test("a file edited by hand with a password in it does not bring it back", () => {
    const path = join(dir, "edited");
    writeFileSync(path, "/who\nLOGIN alice secret1\n");
    expect(loadHistory(path)).toEqual(["/who"]);
  });
});
