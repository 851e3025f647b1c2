/**
 * The protocol's heartbeat from the outside: one `/@live?` datagram to a UDP endpoint, which
 * must answer `yes` (the gateway answers it only while its backend does). Used by the monitor's
 * gateway probe and by peer-sync, which asks a peer's clients' address before it tells them
 * their cluster is gone. Bounded by timeoutMs; leaves no socket behind.
 */
import { createSocket } from "node:dgram";
import { isIPv6 } from "node:net";
import { HEARTBEAT, unframe } from "./protocol/index.ts";

/**
 * Resolves "yes", or rejects with the reason: no answer in time, another answer, a socket error.
 * With resendEveryMs the datagram is sent again at that interval until the answer or the
 * timeout (UDP may drop one).
 */
export function askLive(host: string, port: number, timeoutMs: number, resendEveryMs = 0): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createSocket(isIPv6(host) ? "udp6" : "udp4");
    let done = false;
    const finish = (err: Error | undefined) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearInterval(again);
      socket.close();
      if (err) reject(err);
      else resolve("yes");
    };
    const timer = setTimeout(() => finish(new Error(`no reply to ${HEARTBEAT} within ${timeoutMs} ms`)), timeoutMs);
    socket.on("error", (e) => finish(e));
    socket.on("message", (buf) => {
      const line = unframe(buf.toString("utf8"));
      if (line.length === 0) return; // what a UDP proxy sends when its upstream died; keep waiting
      if (line === "yes") finish(undefined);
      else finish(new Error(`answered ${JSON.stringify(line.slice(0, 120))} instead of yes`));
    });
    const send = () =>
      socket.send(HEARTBEAT, port, host, (err) => {
        if (err) finish(err);
      });
    const again = resendEveryMs > 0 ? setInterval(send, resendEveryMs) : undefined;
    send();
  });
}
