import { ProofSigner, REPLAY_WINDOW, ReplayWindow, isProofKey, newProofKey, proofKeyId, signDatagram, splitProof, verifyProof } from "./proof.ts";

// The test vector of docs/protocol.md ("Security"); openssl computes the same:
// printf 'pesan-v2 1 @t1 SEND bob hi' | openssl dgst -sha256 -mac HMAC -macopt hexkey:000102030405060708090a0b0c0d0e0f -binary | base64
const KEY = "AAECAwQFBgcICQoLDA0ODw";

describe("session proofs", () => {
  test("the documented test vector", () => {
    expect(signDatagram(KEY, 1, "@t1 SEND bob hi")).toBe("~1.sYJUcs0L4B1f9_lp @t1 SEND bob hi");
  });

  test("a signed datagram splits and verifies; any change to key, seq or payload does not", () => {
    const d = signDatagram(KEY, 42, "SEND bob hi there\nsecond line");
    const s = splitProof(d);
    expect(s.kind).toBe("proof");
    if (s.kind !== "proof") return;
    expect(s.seq).toBe(42);
    expect(s.payload).toBe("SEND bob hi there\nsecond line");
    expect(verifyProof(KEY, s.seq, s.mac, s.payload)).toBe(true);
    expect(verifyProof(newProofKey(), s.seq, s.mac, s.payload)).toBe(false);
    expect(verifyProof(KEY, 43, s.mac, s.payload)).toBe(false);
    expect(verifyProof(KEY, s.seq, s.mac, "SEND bob hi there\nsecond linE")).toBe(false);
  });

  test("plain and malformed datagrams are told apart, never thrown on", () => {
    expect(splitProof("SEND bob hi").kind).toBe("plain");
    expect(splitProof("@t1 WHO").kind).toBe("plain");
    for (const bad of ["~", "~1.short WHO", "~0.AAAAAAAAAAAAAAAA WHO", "~01.AAAAAAAAAAAAAAAA WHO", "~1.AAAAAAAAAAAAAAAAWHO", "~9999999999999999.AAAAAAAAAAAAAAAA WHO", "~x.AAAAAAAAAAAAAAAA WHO"]) {
      expect(splitProof(bad).kind).toBe("malformed");
    }
    expect(verifyProof("not a key", 1, "AAAAAAAAAAAAAAAA", "WHO")).toBe(false);
    expect(verifyProof(KEY, 1, "short", "WHO")).toBe(false);
  });

  test("keys are 22 base64url characters, fresh each time; ids do not reveal them", () => {
    const a = newProofKey();
    expect(isProofKey(a)).toBe(true);
    expect(newProofKey()).not.toBe(a);
    expect(proofKeyId(a)).toHaveLength(12);
    expect(a).not.toContain(proofKeyId(a));
  });

  test("the replay window accepts each number once, tolerates reordering, refuses what is too old", () => {
    const w = new ReplayWindow();
    expect(w.accept(1)).toBe(true);
    expect(w.accept(1)).toBe(false);
    expect(w.accept(3)).toBe(true);
    expect(w.accept(2)).toBe(true);
    expect(w.accept(2)).toBe(false);
    expect(w.accept(5000)).toBe(true);
    expect(w.accept(5000 - REPLAY_WINDOW)).toBe(false);
    expect(w.accept(5000 - REPLAY_WINDOW + 1)).toBe(true);
    expect(w.accept(4999)).toBe(true);
    expect(w.accept(4999)).toBe(false);
    expect(w.accept(0)).toBe(false);
    expect(w.accept(1.5)).toBe(false);
    expect(w.highest).toBe(5000);
  });

  test("a slot reused after the window moved on is free again", () => {
    const w = new ReplayWindow();
    expect(w.accept(7)).toBe(true);
    expect(w.accept(7 + REPLAY_WINDOW)).toBe(true);
    expect(w.accept(7 + 2 * REPLAY_WINDOW)).toBe(true);
    expect(w.accept(7 + REPLAY_WINDOW)).toBe(false);
  });

  test("the signer counts from 1 per key", () => {
    const s = new ProofSigner(KEY);
    expect(s.sign("@t1 SEND bob hi")).toBe("~1.sYJUcs0L4B1f9_lp @t1 SEND bob hi");
    expect(splitProof(s.sign("WHO"))).toMatchObject({ kind: "proof", seq: 2, payload: "WHO" });
  });
});
