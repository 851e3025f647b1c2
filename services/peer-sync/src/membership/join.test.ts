import { PeerCallError } from "../client.ts";
import { joinRetryable } from "./join.ts";

test("a join with no answer, or told 'later' (429, 5xx), is sent again; any other refusal is final", () => {
  expect(joinRetryable(new PeerCallError("network", "socket hang up"))).toBe(true);
  expect(joinRetryable(new PeerCallError("timeout", "no answer within 5000 ms"))).toBe(true);
  expect(joinRetryable(new PeerCallError("bad_response", "the answer is not signed with this link's key", 200))).toBe(true);
  expect(joinRetryable(new Error("ECONNREFUSED"))).toBe(true);
  expect(joinRetryable(new PeerCallError("refused", "HTTP 429 (rate_limited)", 429))).toBe(true);
  expect(joinRetryable(new PeerCallError("refused", "HTTP 503 (unavailable)", 503))).toBe(true);
  for (const [status, error] of [[403, "invite_used"], [401, "bad_signature"], [409, "name_taken"], [400, "bad_request"]] as const) {
    expect(joinRetryable(new PeerCallError("refused", `HTTP ${status} (${error})`, status))).toBe(false);
  }
});
