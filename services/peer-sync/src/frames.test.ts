import { z } from "zod";
import { announceBody, comparePositions, framesBody, statusReply, type FrameKind } from "./frames.ts";

const server = { name: "b", address: "127.0.0.1:4999", syncUrl: "http://127.0.0.1:7000", quota: 10, online: 2 };

test("positions compare by transaction, then row id, as big integers", () => {
  expect(comparePositions({ txid: "2", id: "1" }, { txid: "1", id: "99" })).toBe(1);
  expect(comparePositions({ txid: "1", id: "2" }, { txid: "1", id: "10" })).toBe(-1);
  expect(comparePositions({ txid: "9007199254740993", id: "1" }, { txid: "9007199254740992", id: "1" })).toBe(1);
  expect(comparePositions({ txid: "5", id: "5" }, { txid: "5", id: "5" })).toBe(0);
});

test("v1 bodies validate; other versions, kinds and shapes do not", () => {
  expect(announceBody.safeParse({ v: 1, kind: "announce", server }).success).toBe(true);
  expect(statusReply.safeParse({ v: 1, kind: "status", server }).success).toBe(true);
  expect(announceBody.safeParse({ v: 2, kind: "announce", server }).success).toBe(false);
  expect(announceBody.safeParse({ v: 1, kind: "hello", server }).success).toBe(false);
  for (const bad of [{ name: "b c" }, { address: "nowhere" }, { online: -1 }, { quota: 1.5 }]) {
    expect(announceBody.safeParse({ v: 1, kind: "announce", server: { ...server, ...bad } }).success).toBe(false);
  }
});

test("a frames batch needs an epoch, decimal positions and at least one frame", () => {
  const f = { txid: "10", id: "3", kind: "user.add", data: { name: "x" } };
  expect(framesBody.safeParse({ v: 1, kind: "frames", epoch: "e", frames: [f] }).success).toBe(true);
  expect(framesBody.safeParse({ v: 1, kind: "frames", epoch: "e", frames: [] }).success).toBe(false);
  expect(framesBody.safeParse({ v: 1, kind: "frames", epoch: "e", frames: [{ ...f, txid: 10 }] }).success).toBe(false);
  expect(framesBody.safeParse({ v: 1, kind: "frames", epoch: "e", frames: [{ ...f, kind: "User Add" }] }).success).toBe(false);
});

test("a zod schema is a frame kind's validator", () => {
  const k: FrameKind<{ name: string }> = { schema: z.object({ name: z.string() }), applyRun: async () => undefined };
  expect(k.schema.safeParse({ name: "x" })).toEqual({ success: true, data: { name: "x" } });
  expect(k.schema.safeParse({}).success).toBe(false);
});
