/**
 * The chat CLI as a person uses it: in a real terminal (tmux) against a real cluster. What a
 * message shows (one line, control characters escaped, the screen not cleared), where the
 * password comes from (PESAN_PASSWORD, the prompt without echo), the history kept between
 * runs without passwords, and colours only where wanted (not with NO_COLOR, not into a pipe).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT } from "@pesan/cluster";
import { useCluster } from "./support/fixture.ts";
import { requireTools } from "./support/needs.ts";
import { shQuote, Tmux, type TmuxSession } from "./support/tmux.ts";

// Not a skip: without tmux this file fails naming it (./pesan test --without tmux leaves it out).
requireTools("tmux");

const CHAT = join(REPO_ROOT, "packages/client/src/chat.ts");
const ATTACK = "hi\nMSG x:1 admin 2026-01-01T00:00:00.000Z reset\x1b[2J";
const ATTACK_SHOWN = "hi\\nMSG x:1 admin 2026-01-01T00:00:00.000Z reset\\e[2J";

const fx = useCluster("chatcli", { gateways: 1, routers: 1 });
const state = mkdtempSync(join(tmpdir(), "pesan-chat-state-"));
let tm: Tmux;

beforeAll(async () => {
  tm = await Tmux.start({ XDG_STATE_HOME: state });
  for (const [u, p] of [["alice", "secret1"], ["bob", "secret2"], ["carol", "secret3"], ["dave", "secret4"]] as const) {
    const c = await fx.client();
    expect(await c.request(`REGISTER ${u} ${p}`)).toBe(`OK REGISTERED ${u}`);
  }
});
afterAll(async () => {
  await tm?.stop();
  rmSync(state, { recursive: true, force: true });
});

/** The CLI in a terminal of its own. */
function chat(args: string, env: Record<string, string> = {}, pipe = ""): Promise<TmuxSession> {
  return tm.session(`${shQuote(process.execPath)} ${shQuote(CHAT)} --server ${fx.address} --heartbeat-ms 1000 ${args}${pipe}`, { env });
}

const SGR = /\x1b\[[0-9;]*m/;

test("a message that forges a line and clears the screen shows as ONE escaped line; the password came from PESAN_PASSWORD", async () => {
  const bob = await chat("--user bob", { PESAN_PASSWORD: "secret2" });
  try {
    await bob.waitFor(`logged in as bob on ${fx.address}`);
    const { c: alice } = await fx.login("alice", "secret1");
    expect(await alice.request(`SEND bob ${ATTACK}`)).toMatch(/^OK SENT \S+ DELIVERED$/);
    const screen = await bob.waitFor(ATTACK_SHOWN);
    const lines = screen.split("\n");
    const shown = lines.filter((l) => l.includes("reset"));
    expect(shown).toHaveLength(1);
    expect(shown[0]).toMatch(new RegExp(`^MSG \\S+ alice \\S+ ${ATTACK_SHOWN.replace(/[\\[\]]/g, "\\$&")}$`));
    expect(lines.filter((l) => l.startsWith("MSG x:1 admin"))).toEqual([]);
    // Not cleared: what was printed before the message is still there.
    expect(screen).toContain(`* connected to ${fx.address}`);
    expect(screen.indexOf("* connected to")).toBeLessThan(screen.indexOf(ATTACK_SHOWN));
    expect(screen).not.toContain("secret2");
    // Colours in a terminal (so the NO_COLOR test below means something).
    expect(await bob.screen({ escapes: true })).toMatch(SGR);
  } finally {
    await bob.kill();
  }
});

test("the password typed at the prompt is not echoed, and the history survives a restart without it", async () => {
  const histFile = join(state, "pesan", "history");
  rmSync(histFile, { force: true });
  const carol = await chat("--user carol");
  try {
    await carol.waitFor("password for carol: ");
    await carol.line("secret3");
    const after = await carol.waitFor("logged in as carol");
    expect(after).toMatch(/^password for carol: $/m); // nothing after the prompt: no echo
    expect(after).not.toContain("secret3");
    await carol.line("/who");
    await carol.waitFor(/^OK WHO \d+$/m);
    await carol.line("/send alice from carol");
    await carol.waitFor(/^OK SENT \S+ DELIVERED$/m);
    // A login typed with its password works, but must not be remembered.
    await carol.line("/login carol secret3");
    await carol.waitFor(/logged in as carol[\s\S]*logged in as carol/);
    await carol.line("/quit");
    await carol.waitDead();
  } finally {
    await carol.kill();
  }
  // Where XDG says, holding what was typed but neither password.
  expect(existsSync(histFile)).toBe(true);
  const saved = readFileSync(histFile, "utf8");
  expect(saved).toBe("/who\n/send alice from carol\n/quit\n");
  expect(saved).not.toContain("secret3");

  const again = await chat("--user carol", { PESAN_PASSWORD: "secret3" });
  try {
    await again.waitFor("logged in as carol");
    await again.keys("Up", "Up");
    await again.waitFor(/^> \/send alice from carol$/m);
    await again.keys("Up");
    await again.waitFor(/^> \/who$/m);
  } finally {
    await again.kill();
  }
});

test("NO_COLOR: no escape codes on the screen", async () => {
  const s = await chat("--user dave", { PESAN_PASSWORD: "secret4", NO_COLOR: "1" });
  try {
    await s.waitFor("logged in as dave");
    await s.line("/who");
    await s.waitFor(/^OK WHO \d+$/m);
    const screen = await s.screen({ escapes: true });
    expect(screen).toContain("OK WHO");
    expect(screen).not.toMatch(/\x1b/);
  } finally {
    await s.kill();
  }
});

test("output into a pipe carries no escape codes, even typed at a terminal", async () => {
  // cat -v shows an ESC as ^[, so any escape code the CLI wrote would be on the screen.
  const s = await chat("--user dave --no-history", { PESAN_PASSWORD: "secret4" }, " 2>&1 | cat -v");
  try {
    await s.waitFor("logged in as dave");
    const { c: alice } = await fx.login("alice", "secret1");
    expect(await alice.request(`SEND dave ${ATTACK}`)).toMatch(/^OK SENT /);
    await s.line("/who");
    const screen = await s.waitFor(/^OK WHO \d+$/m);
    expect(screen).toContain(ATTACK_SHOWN);
    expect(screen).not.toContain("^[");
    expect(screen).not.toMatch(/M-/); // nor any other byte above 0x7f cat -v would show (C1)
  } finally {
    await s.kill();
  }
});
