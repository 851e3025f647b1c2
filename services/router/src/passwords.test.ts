import { hashPassword, PasswordChecker, verifyPassword } from "./passwords.ts";

test("a hash made here verifies; a wrong password does not", async () => {
  const h = await hashPassword("s3cret", 10);
  expect(await verifyPassword("s3cret", h)).toBe(true);
  expect(await verifyPassword("other", h)).toBe(false);
});

test("a stored hash with parameters no router makes fails at once and never throws", async () => {
  const h = await hashPassword("s3cret", 10);
  const [, , , , salt, key] = h.split("$");
  const checker = new PasswordChecker(10);
  const started = Date.now();
  // r and p raised (minutes of work), N not a number (scrypt throws), and a cost outside the range.
  for (const stored of [`scrypt$16$8$64$${salt}$${key}`, `scrypt$NaN$8$1$${salt}$${key}`, `scrypt$30$8$1$${salt}$${key}`, `scrypt$10$1$1$${salt}$${key}`]) {
    await expect(checker.verify("s3cret", stored)).resolves.toBe(false);
  }
  expect(Date.now() - started).toBeLessThan(500);
});
