import { expandUrl } from "./actions.ts";
import { formatDuration, parseDuration } from "../config/duration.ts";
import { eventEnv, eventFrom, matchesPattern } from "./events.ts";

const event = eventFrom(
  { component: "host:web1/cpu", kind: "threshold", at: new Date("2026-11-23T10:00:05.000Z"), since: new Date("2026-11-23T10:00:05.000Z"), detail: "95 >= 90" },
  "high",
  95,
);

test("event environment for command actions", () => {
  expect(eventEnv(event)).toMatchObject({
    PESAN_EVENT: "threshold",
    PESAN_COMPONENT: "host:web1/cpu",
    PESAN_STATUS: "high",
    PESAN_VALUE: "95",
    PESAN_SINCE: "2026-11-23T10:00:05.000Z",
    PESAN_AT: "2026-11-23T10:00:05.000Z",
    PESAN_DETAIL: "95 >= 90",
  });
  expect(eventEnv(event).PESAN_MESSAGE).toMatch(/^HIGH host:web1\/cpu \(95\)/);
});

test("component patterns", () => {
  expect(matchesPattern("*", "anything")).toBe(true);
  expect(matchesPattern("host:*", "host:web1/cpu")).toBe(true);
  expect(matchesPattern("service:web1/*", "service:web2/nginx")).toBe(false);
  expect(matchesPattern("http:router@*", "http:router@[::1]:9200")).toBe(true);
  expect(matchesPattern("host:web1", "host:web1/cpu")).toBe(false);
  expect(matchesPattern("a.b", "aXb")).toBe(false);
});

test("URL placeholders are URL-encoded; unknown ones stay", () => {
  expect(expandUrl("https://sms.example/send?c={component}&v={value}&x={nope}&t={message}", event)).toBe(
    `https://sms.example/send?c=host%3Aweb1%2Fcpu&v=95&x={nope}&t=${encodeURIComponent(event.message)}`,
  );
});

test("durations", () => {
  expect(parseDuration(250)).toBe(250);
  expect(parseDuration("250")).toBe(250);
  expect(parseDuration("1.5s")).toBe(1500);
  expect(parseDuration("10m")).toBe(600_000);
  expect(parseDuration("7d")).toBe(604_800_000);
  expect(parseDuration("ten seconds")).toBeUndefined();
  expect(parseDuration(-1)).toBeUndefined();
  expect(formatDuration(600_000)).toBe("10m");
  expect(formatDuration(1500)).toBe("1500ms");
});
