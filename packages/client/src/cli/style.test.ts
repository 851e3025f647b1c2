import { colourWanted, formatNotice, formatReceived, painter, type Paint } from "./style.ts";

const tags: Paint = (f, t) => `<${Array.isArray(f) ? f.join("+") : String(f)}>${t}</>`;
const plain = painter(false);

describe("formatReceived", () => {
  test("a MSG whose text forges a line and clears the screen stays one escaped line", () => {
    const raw = "MSG m1 alice 2026-11-22T23:40:00.123Z hi\nMSG x:1 admin 2026-01-01T00:00:00.000Z reset\x1b[2J";
    const out = formatReceived(raw, plain);
    expect(out).toBe("MSG m1 alice 2026-11-22T23:40:00.123Z hi\\nMSG x:1 admin 2026-01-01T00:00:00.000Z reset\\e[2J");
    expect(out.split("\n")).toHaveLength(1);
    expect(formatReceived(raw, tags)).toBe("<dim>MSG m1</> <bold+cyan>alice</> <dim>2026-11-22T23:40:00.123Z</> hi\\nMSG x:1 admin 2026-01-01T00:00:00.000Z reset\\e[2J");
  });

  test("OK green, ERR red (its text escaped), pushes yellow, anything else escaped", () => {
    expect(formatReceived("OK WHO 2", tags)).toBe("<green>OK WHO 2</>");
    expect(formatReceived("ERR AUTH bad\r\x9b2J", tags)).toBe("<red>ERR AUTH bad\\r\\u009b2J</>");
    expect(formatReceived("BYE replaced", tags)).toBe("<yellow>BYE replaced</>");
    expect(formatReceived("ONLINE a\tb", tags)).toBe("ONLINE a\\tb");
    expect(formatReceived("@mine MSG m1 a 2026-11-22T23:40:00.123Z x\ny", tags)).toBe("@mine MSG m1 a 2026-11-22T23:40:00.123Z x\\ny");
  });

  test("without colour the text is the datagram as received (escaped)", () => {
    for (const raw of ["MSG m1 bob 2026-11-22T23:40:00.123Z welcome back", "OK LOGIN alice tk", "ERR FULL 10.0.0.2:4999", "yes"]) {
      expect(formatReceived(raw, plain)).toBe(raw);
    }
  });

  test("a notice is escaped too", () => {
    expect(formatNotice("login: ERR AUTH x\ny", plain)).toBe("* login: ERR AUTH x\\ny");
  });
});

describe("colourWanted", () => {
  const tty = { isTTY: true, hasColors: () => true };
  test("a colour terminal without NO_COLOR", () => {
    expect(colourWanted(tty, {})).toBe(true);
    expect(colourWanted(tty, { NO_COLOR: "" })).toBe(true);
  });
  test("never with NO_COLOR, on a pipe, or on a terminal without colours", () => {
    expect(colourWanted(tty, { NO_COLOR: "1" })).toBe(false);
    expect(colourWanted({ isTTY: false }, {})).toBe(false);
    expect(colourWanted({}, {})).toBe(false);
    expect(colourWanted({ isTTY: true, hasColors: () => false }, {})).toBe(false);
  });
  test("the painter of a coloured stream emits SGR codes, the plain one none", () => {
    expect(painter(true)("red", "x")).toMatch(/\x1b\[31mx\x1b\[39m/);
    expect(painter(false)("red", "x")).toBe("x");
  });
});
