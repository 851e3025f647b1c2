import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pesanVersion, readCommandLine } from "./cli.ts";

const USAGE = "usage: thing [--port N] [--dry]\n";
const spec = { usage: USAGE, options: { port: { type: "string" as const }, dry: { type: "boolean" as const } } };
const v = () => "9.8.7";

test("--help and -h print the usage on stdout, exit 0, before anything else is looked at", () => {
  for (const a of [["--help"], ["-h"], ["--port", "1", "--help"]]) expect(readCommandLine(a, spec, v)).toEqual({ run: false, code: 0, stdout: USAGE, stderr: "" });
});

test("--version and -V print the name and version", () => {
  expect(readCommandLine(["--version"], spec, v)).toEqual({ run: false, code: 0, stdout: "pesan 9.8.7\n", stderr: "" });
  expect(readCommandLine(["-V"], { ...spec, name: "pesan chat" }, v)).toEqual({ run: false, code: 0, stdout: "pesan chat 9.8.7\n", stderr: "" });
});

test("an unknown flag, a missing value or a stray word: the error, then the usage, on stderr; exit 2", () => {
  for (const [argv, err] of [
    [["--bogus"], "Unknown option '--bogus'"],
    [["--port"], "Option '--port <value>' argument missing"],
    [["word"], "Unexpected argument 'word'"],
  ] as const) {
    const r = readCommandLine([...argv], spec, v);
    expect(r).toMatchObject({ run: false, code: 2, stdout: "" });
    expect(!r.run && r.stderr.startsWith(err) && r.stderr.endsWith(`\n\n${USAGE}`)).toBe(true);
  }
});

test("good options come back as values", () => {
  expect(readCommandLine(["--port", "80", "--dry"], spec, v)).toEqual({ run: true, values: { port: "80", dry: true }, positionals: [] });
  expect(readCommandLine(["a", "b"], { ...spec, allowPositionals: true }, v)).toEqual({ run: true, values: {}, positionals: ["a", "b"] });
});

test("the version is the one of the package.json named pesan, found walking up", () => {
  const root = mkdtempSync(join(tmpdir(), "pesan-version-"));
  try {
    writeFileSync(join(root, "package.json"), JSON.stringify({ name: "pesan", version: "3.1.4" }));
    mkdirSync(join(root, "services/x/src"), { recursive: true });
    // A package.json on the way up that is not the root's is passed over.
    writeFileSync(join(root, "services/x/package.json"), JSON.stringify({ name: "@pesan/x", version: "0.0.1" }));
    expect(pesanVersion([join(root, "services/x/src")])).toBe("3.1.4");
    expect(pesanVersion([tmpdir()])).toBe("unknown");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
