/**
 * A test never skips itself because a tool is missing: it fails naming the tool and the package
 * that brings it. Only the run's explicit `--without` list (PESAN_TEST_WITHOUT) leaves tests out:
 * whole files through jest.config.cjs, single tests through testNeeding (test.skip), and
 * `./pesan test` prints at the end what went untested. The table is tools/preflight/src/needs.ts.
 */
import { findMissing, missingMessage, need, parseWithout, systemProbe } from "../../tools/preflight/src/needs.ts";

const without = (): string[] => parseWithout(process.env.PESAN_TEST_WITHOUT);

/**
 * Throws, failing the test file before any of its tests runs, unless the machine has every part
 * of these needs. Call it at the top of a file that needs them as a whole.
 */
export function requireTools(...names: string[]): void {
  requireParts(names);
}

/** requireTools, for only the parts named in `only` (labels from the table) when given. */
function requireParts(names: string[], only?: string[]): void {
  const needs = names.filter((n) => !without().includes(n)).map(need);
  const missing = findMissing(
    needs.map((n) => (only ? { ...n, parts: n.parts.filter((p) => only.includes(p.label)) } : n)),
    systemProbe(),
  );
  if (missing.length > 0) throw new Error(missingMessage(missing, { root: process.getuid?.() === 0 }));
}

/**
 * `test` for tests that need this tool: test.skip when the run left it out, else test; when the
 * machine lacks it (or, given `only`, those of its parts), the file fails naming it.
 */
export function testNeeding(name: string, only?: string[]): jest.It {
  if (without().includes(name)) return test.skip;
  requireParts([name], only);
  return test;
}

/** Whether the run left this need out (for set-up that only the tests needing it use). */
export function leftOut(name: string): boolean {
  return without().includes(name);
}
