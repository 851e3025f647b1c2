import { escapeControls } from "./escape.ts";

describe("escapeControls", () => {
  test("a forged second line and a screen clear stay on one visible line", () => {
    const attack = "hi\nMSG x:1 admin 2026-01-01T00:00:00.000Z reset\x1b[2J";
    const shown = escapeControls(attack);
    expect(shown).toBe("hi\\nMSG x:1 admin 2026-01-01T00:00:00.000Z reset\\e[2J");
    expect(shown).not.toMatch(/[\x00-\x1f\x7f-\x9f]/);
  });

  test("C0 controls have readable names or \\xNN", () => {
    expect(escapeControls("a\r\tb\x00c\x07d\x08e\x0b\x0c")).toBe("a\\r\\tb\\0c\\x07d\\be\\v\\f");
    expect(escapeControls("\x01\x1f")).toBe("\\x01\\x1f");
  });

  test("DEL and the C1 controls (one-byte CSI included) are escaped", () => {
    expect(escapeControls("x\x7fy")).toBe("x\\x7fy");
    expect(escapeControls("\u0085\u009b2J\u0080\u009f")).toBe("\\u0085\\u009b2J\\u0080\\u009f");
  });

  test("line separators and bidi overrides are escaped; printable Unicode is not", () => {
    expect(escapeControls("a\u2028b\u2029c")).toBe("a\\u2028b\\u2029c");
    expect(escapeControls("\u202eevil\u202c \u2066x\u2069")).toBe("\\u202eevil\\u202c \\u2066x\\u2069");
    expect(escapeControls("héllo ünïcode ✓ 😀 日本語 \u00a0")).toBe("héllo ünïcode ✓ 😀 日本語 \u00a0");
  });

  test("a backslash is doubled, so a typed \\n differs from a newline", () => {
    expect(escapeControls("C:\\path\\n")).toBe("C:\\\\path\\\\n");
    expect(escapeControls("\\n")).not.toBe(escapeControls("\n"));
  });

  test("plain text is returned unchanged", () => {
    const s = "OK SENT local:mwt4dagd-000-000 DELIVERED";
    expect(escapeControls(s)).toBe(s);
    expect(escapeControls("")).toBe("");
  });
});
