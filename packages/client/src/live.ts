/**
 * The protocol's heartbeat from the outside: one `/@live?` datagram to a UDP endpoint, which
 * must answer `yes` (the gateway answers it only while its backend does). Used by the monitor's
 * gateway probe and by peer-sync, which asks a peer's clients' address before it tells them
 * their cluster is gone. Bounded by timeoutMs; leaves no socket behind. Only a datagram from
 * the address asked counts: anyone else's answer is ignored.
 */
import { HEARTBEAT } from "@pesan/shared/protocol";
import { formatServerAddress } from "./address.ts";
import { Transport } from "./transport.ts";

/**
 * Resolves "yes", or rejects with the reason: no answer in time, another answer, a socket error.
 * With resendEveryMs the datagram is sent again at that interval until the answer or the
 * timeout (UDP may drop one).
 */
export async function askLive(host: string, port: number, timeoutMs: number, resendEveryMs = 0): Promise<string> {
  let settle: (err: Error | undefined) => void = () => undefined;
  const answered = new Promise<string>((resolve, reject) => {
    settle = (err) => (err ? reject(err) : resolve("yes"));
  });
  answered.catch(() => undefined); // awaited below; an early socket error must not count as unhandled
  const transport = new Transport({
    target: formatServerAddress(host, port),
    onError: (err) => settle(err),
    onDatagram: (d) => {
      // Empty: what a UDP proxy sends when its upstream died; keep waiting.
      if (!d.fromTarget || d.text.length === 0) return;
      if (d.text === "yes") settle(undefined);
      else settle(new Error(`answered ${JSON.stringify(d.text.slice(0, 120))} instead of yes`));
    },
  });
  let timer: NodeJS.Timeout | undefined;
  let again: NodeJS.Timeout | undefined;
  try {
    await transport.start();
    timer = setTimeout(() => settle(new Error(`no reply to ${HEARTBEAT} within ${timeoutMs} ms`)), timeoutMs);
    if (resendEveryMs > 0) again = setInterval(() => transport.sendBytes(HEARTBEAT), resendEveryMs);
    transport.sendBytes(HEARTBEAT);
    return await answered;
  } finally {
    clearTimeout(timer);
    clearInterval(again);
    await transport.close();
  }
}
