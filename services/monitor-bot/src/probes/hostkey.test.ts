import { generateKeyPairSync } from "node:crypto";
import { fingerprintOf, hostKeyAlgorithms, hostKeyMatches, parseHostKeyPin, type HostKeyPin } from "./hostkey.ts";

/** An ssh-ed25519 public key blob: string "ssh-ed25519", string <32 raw bytes>. */
function ed25519Blob(): Buffer {
  const der = generateKeyPairSync("ed25519").publicKey.export({ type: "spki", format: "der" });
  const raw = der.subarray(der.length - 32);
  const str = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b]);
  return Buffer.concat([str(Buffer.from("ssh-ed25519")), str(raw)]);
}

const blob = ed25519Blob();
const other = ed25519Blob();
const b64 = blob.toString("base64");

describe("host key pins", () => {
  test("known_hosts lines with and without host patterns", () => {
    for (const line of [`ssh-ed25519 ${b64}`, `[127.0.0.1]:2222 ssh-ed25519 ${b64}`, `web1,10.0.0.1 ssh-ed25519 ${b64} comment here`]) {
      const pin = parseHostKeyPin(line) as HostKeyPin;
      expect(pin).toMatchObject({ kind: "key", type: "ssh-ed25519" });
      expect(hostKeyMatches(blob, [pin])).toBe(true);
      expect(hostKeyMatches(other, [pin])).toBe(false);
    }
  });

  test("SHA256 fingerprints, with or without the trailing =", () => {
    const fp = fingerprintOf(blob);
    expect(fp).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    const pin = parseHostKeyPin(fp) as HostKeyPin;
    expect(hostKeyMatches(blob, [pin])).toBe(true);
    expect(hostKeyMatches(other, [pin])).toBe(false);
    expect(hostKeyMatches(blob, [parseHostKeyPin(`${fp}=`) as HostKeyPin])).toBe(true);
  });

  test("any pin of a list may match", () => {
    const pins = [parseHostKeyPin(fingerprintOf(other)) as HostKeyPin, parseHostKeyPin(`ssh-ed25519 ${b64}`) as HostKeyPin];
    expect(hostKeyMatches(blob, pins)).toBe(true);
  });

  test("bad pins say what was expected", () => {
    expect(parseHostKeyPin("SHA256:short")).toMatch(/43 base64/);
    expect(parseHostKeyPin("yes")).toMatch(/known_hosts line/);
    expect(parseHostKeyPin(`@cert-authority * ssh-ed25519 ${b64}`)).toMatch(/markers/);
    expect(parseHostKeyPin(`ssh-rsa ${b64}`)).toMatch(/not an ssh-rsa key/);
    expect(parseHostKeyPin("ssh-ed25519 !!!")).toMatch(/base64/);
  });

  test("the algorithms offered follow key pins; a fingerprint leaves them open", () => {
    const keyPin = parseHostKeyPin(`ssh-ed25519 ${b64}`) as HostKeyPin;
    expect(hostKeyAlgorithms([keyPin])).toEqual(["ssh-ed25519"]);
    expect(hostKeyAlgorithms([keyPin, parseHostKeyPin(fingerprintOf(blob)) as HostKeyPin])).toBeUndefined();
  });
});
