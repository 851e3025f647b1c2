import { isAcceptablePassHash, parsePassHash, PASS_HASH_COST_MAX, PASS_HASH_COST_MIN } from "./passhash.ts";

const salt = Buffer.alloc(16, 7).toString("base64");
const key = Buffer.alloc(32, 9).toString("base64");
const hash = (logN: string | number, r: string | number = 8, p: string | number = 1, s = salt, k = key) => `scrypt$${logN}$${r}$${p}$${s}$${k}`;

test("a hash with the parameters a router makes parses, at every cost of PASSWORD_HASH_COST's range", () => {
  for (let n = PASS_HASH_COST_MIN; n <= PASS_HASH_COST_MAX; n++) {
    const h = parsePassHash(hash(n));
    expect(h).toEqual({ logN: n, r: 8, p: 1, salt: Buffer.alloc(16, 7), key: Buffer.alloc(32, 9) });
  }
});

test("costly, throwing or malformed parameters are refused before any scrypt runs", () => {
  const bad = [
    hash(16, 8, 64), // 64 times the work: ~20 s per LOGIN
    hash("NaN"), // scrypt throws
    hash(PASS_HASH_COST_MIN - 1),
    hash(PASS_HASH_COST_MAX + 1),
    hash("1e1"),
    hash("0x10"),
    hash(" 17"),
    hash(17, 16),
    hash(17, 8, 2),
    hash(17, 8, 1, Buffer.alloc(8).toString("base64")),
    hash(17, 8, 1, salt, Buffer.alloc(64).toString("base64")),
    hash(17, 8, 1, "not*base64", key),
    hash(17, 8, 1, salt, `${key}$extra`),
    "bcrypt$17$8$1$x$y",
    "x",
    "",
  ];
  for (const b of bad) expect([b, isAcceptablePassHash(b)]).toEqual([b, false]);
});
