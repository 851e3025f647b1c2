import { SessionMachine } from "./session.ts";

const s1 = { user: "alice", token: "t1" };

test("login binds; a lost binding asks for one RESUME; its outcome decides the next state", () => {
  const m = new SessionMachine(false);
  expect([m.phase, m.cap, m.session]).toEqual(["none", "off", undefined]);
  expect(m.lost()).toBe(false); // nothing to lose
  expect(m.beginResume()).toBe(false);
  m.loggedIn(s1);
  expect([m.phase, m.session]).toEqual(["bound", s1]);
  expect(m.beginResume()).toBe(false); // bound: nothing to resume
  expect(m.lost()).toBe(true);
  expect(m.phase).toBe("unbound");
  expect(m.beginResume()).toBe(true);
  expect(m.beginResume()).toBe(false); // one at a time
  expect(m.phase).toBe("resuming");
  expect(m.resumeFailed(true)).toBe(true);
  expect(m.phase).toBe("unbound"); // transient: retried later
  expect(m.beginResume()).toBe(true);
  expect(m.resumeFailed(false)).toBe(true);
  expect(m.phase).toBe("detached"); // final here: not retried on this server
  expect(m.beginResume()).toBe(false);
  m.serverChanged();
  expect(m.phase).toBe("unbound"); // the next server tries again
  expect(m.beginResume()).toBe(true);
  m.loggedIn(s1);
  expect(m.phase).toBe("bound");
  expect(m.resumeFailed(true)).toBe(false); // a late failure of a finished RESUME changes nothing
  expect(m.phase).toBe("bound");
});

test("ERR AUTH to RESUME and BYE forget the session; a server change without a session stays none", () => {
  const m = new SessionMachine(false);
  m.loggedIn(s1);
  m.lost();
  m.beginResume();
  expect(m.resumeRefused()).toBe(true);
  expect([m.phase, m.session]).toEqual(["none", undefined]);
  m.serverChanged();
  expect(m.phase).toBe("none");
  m.loggedIn(s1);
  m.forget();
  expect([m.phase, m.session]).toEqual(["none", undefined]);
  expect(m.resumeRefused()).toBe(false);
});

test("CAP: unsent -> sending -> ok / failed / unsent again, and each server change starts over", () => {
  const m = new SessionMachine(true);
  expect(m.cap).toBe("unsent");
  expect(m.capEnded("ok")).toBe(false); // not sending
  expect(m.capStarted()).toBe(true);
  expect(m.capStarted()).toBe(false); // already on its way
  expect(m.capEnded("unsent")).toBe(true); // refused before login
  expect(m.capStarted()).toBe(true);
  expect(m.capEnded("ok")).toBe(true);
  expect(m.cap).toBe("ok");
  expect(m.capStarted()).toBe(false);
  m.serverChanged();
  expect(m.cap).toBe("unsent");
  expect(m.capStarted()).toBe(true);
  expect(m.capEnded("failed")).toBe(true);
  expect(m.capStarted()).toBe(false);
  const off = new SessionMachine(false);
  expect(off.capStarted()).toBe(false);
  off.serverChanged();
  expect(off.cap).toBe("off");
});
