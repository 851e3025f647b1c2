import { createSocket, type Socket } from "node:dgram";
import { askLive } from "./live.ts";

/** A UDP endpoint that drops the first `drop` heartbeats and answers the rest with `answer`. */
async function endpoint(drop: number, answer = "yes"): Promise<{ s: Socket; port: number; seen: () => number }> {
  const s = createSocket("udp4");
  let seen = 0;
  s.on("message", (m, r) => {
    if (m.toString() !== "/@live?") return;
    if (++seen > drop) s.send(answer, r.port, r.address);
  });
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
  return { s, port: s.address().port, seen: () => seen };
}

test("askLive: yes resolves; another answer or silence rejects with the reason", async () => {
  const ok = await endpoint(0);
  const wrong = await endpoint(0, "ERR UNAVAILABLE backend down");
  const silent = await endpoint(1_000_000);
  try {
    await expect(askLive("127.0.0.1", ok.port, 1000)).resolves.toBe("yes");
    await expect(askLive("127.0.0.1", wrong.port, 1000)).rejects.toThrow('answered "ERR UNAVAILABLE backend down" instead of yes');
    await expect(askLive("127.0.0.1", silent.port, 200)).rejects.toThrow("no reply to /@live? within 200 ms");
  } finally {
    for (const e of [ok, wrong, silent]) e.s.close();
  }
});

test("askLive with resendEveryMs survives a lost datagram; without it, one loss is a timeout", async () => {
  const once = await endpoint(1);
  const twice = await endpoint(1);
  try {
    await expect(askLive("127.0.0.1", once.port, 500)).rejects.toThrow(/no reply/);
    expect(once.seen()).toBe(1);
    await expect(askLive("127.0.0.1", twice.port, 1000, 100)).resolves.toBe("yes");
    expect(twice.seen()).toBeGreaterThanOrEqual(2);
  } finally {
    once.s.close();
    twice.s.close();
  }
});
