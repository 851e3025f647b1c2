import { framesFromRowsSql, messageNewFromRow, sqlBool, sqlInstant, sqlText, SQL_TRUE, type FramesFromRows } from "./sql-frames.ts";

test("one frame per row, fields as jsonb_build_object, the kind a literal, the order and target as given", () => {
  expect(
    framesFromRowsSql({
      with: "h AS (SELECT * FROM messages)",
      kind: "message.new",
      payload: messageNewFromRow("h."),
      from: "h",
      orderBy: "h.sent_at, h.id",
      target: "$2",
    }),
  ).toBe(
    "WITH h AS (SELECT * FROM messages)\nINSERT INTO peer_outbox (kind, payload, target)\n" +
      `SELECT 'message.new', jsonb_build_object('id', h.id, 'sentAt', to_char(h.sent_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), ` +
      "'sender', h.sender, 'recipient', h.recipient, 'body', h.body), $2 FROM h ORDER BY h.sent_at, h.id",
  );
  expect(framesFromRowsSql({ kind: "message.state", payload: { id: sqlText("id"), recipient: sqlText("recipient"), deleted: SQL_TRUE }, from: "del" })).toBe(
    "INSERT INTO peer_outbox (kind, payload)\nSELECT 'message.state', jsonb_build_object('id', id, 'recipient', recipient, 'deleted', true) FROM del",
  );
});

test("a kind or a field outside the types (a cast) is refused before any SQL is built", () => {
  const bad = { kind: "user.delete", payload: {}, from: "users" } as unknown as FramesFromRows<"user.register">;
  expect(() => framesFromRowsSql(bad)).toThrow("not a frame kind: user.delete");
  const badKey = { kind: "message.state", payload: { "id', 1, 'x": sqlText("id") }, from: "del" } as unknown as FramesFromRows<"message.state">;
  expect(() => framesFromRowsSql(badKey)).toThrow("not a payload field");
});

// What tsc refuses: each line below is a payload that does not match its kind's schema. If a
// type stopped refusing it, `@ts-expect-error` itself fails the type check.
test("payloads that do not match the frame schema are type errors", () => {
  const state = (f: FramesFromRows<"message.state">) => f;
  const full = { id: sqlText("id"), recipient: sqlText("r"), sender: sqlText("s"), sentAt: sqlInstant("t"), body: sqlText("b"), delivered: sqlBool("d"), read: sqlBool("x") };
  state({ kind: "message.state", payload: full, from: "m" });
  // @ts-expect-error a boolean field given text
  state({ kind: "message.state", payload: { ...full, read: sqlText("x") }, from: "m" });
  // @ts-expect-error a field missing (read)
  state({ kind: "message.state", payload: { id: full.id, recipient: full.recipient, sender: full.sender, sentAt: full.sentAt, body: full.body, delivered: full.delivered }, from: "m" });
  // @ts-expect-error the two members of the union mixed (deleted with a body)
  state({ kind: "message.state", payload: { id: sqlText("id"), recipient: sqlText("r"), deleted: SQL_TRUE, body: sqlText("b") }, from: "m" });
  // @ts-expect-error deleted must be the literal true, not any boolean
  state({ kind: "message.state", payload: { id: sqlText("id"), recipient: sqlText("r"), deleted: sqlBool("d") }, from: "m" });
  // @ts-expect-error not a frame kind (and refused at run time too)
  expect(() => framesFromRowsSql({ kind: "user.delete", payload: {}, from: "users" })).toThrow("not a frame kind");
  // @ts-expect-error a field the schema does not have (user.register has no email)
  framesFromRowsSql({ kind: "user.register", payload: { name: sqlText("n"), passHash: sqlText("p"), createdAt: sqlInstant("c"), home: sqlText("h"), email: sqlText("e") }, from: "users" });
});
