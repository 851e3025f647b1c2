/** The bench's UDP client (used by `pnpm bench` and its soak mode). */
import { RequestTimeoutError, Transport } from "@pesan/client";

const BUF = 4 * 1024 * 1024;

/**
 * One UDP client on the client core's Transport (the library's): replies to call() routed by
 * tag, every other line to onLine. It signs what it sends once a LOGIN reply gave it a session
 * key (protocol v2), so the bench measures with proofs on, as the library runs.
 */
export class Peer {
  private readonly t: Transport;
  onLine: (line: string) => void = () => undefined;

  /** bindHost: the loopback address this client sends from (127.0.0.1 unless the bench spreads users over several). */
  constructor(address: string, proofs: boolean, bindHost = "127.0.0.1") {
    this.t = new Transport({
      target: address,
      bindHost,
      recvBufferSize: BUF,
      sendBufferSize: BUF,
      autoProof: proofs,
      onDatagram: (d) => {
        if (!d.answers) this.onLine(d.text);
      },
    });
  }

  open(): Promise<void> {
    return this.t.start();
  }

  send(line: string): void {
    this.t.send(line);
  }

  /** Sends until the reply tagged `tag` arrives, resending with the same tag (bounded). */
  async call(tag: string, line: string, timeoutMs = 3000, tries = 5): Promise<string> {
    for (let t = 0; t < tries; t++) {
      try {
        const lines = await this.t.request(line, { tag, timeoutMs });
        const reply = lines[lines.length - 1]!.raw.slice(tag.length + 2);
        // ERR UNAVAILABLE: the backend was slow; the retry (same tag) gets the real answer.
        if (!reply.startsWith("ERR UNAVAILABLE")) return reply;
        await new Promise((r) => setTimeout(r, 100));
      } catch (err) {
        if (!(err instanceof RequestTimeoutError)) throw err;
      }
    }
    throw new Error(`no reply to ${line.split(" ")[0]} after ${tries} tries`);
  }

  close(): void {
    void this.t.close(); // never rejects
  }
}


/** A sent request awaiting its answer: its line (without the tag) and when it last went out. */
export interface InFlight {
  line: string;
  at: number;
}

/**
 * Sends again, under the same tag, every request unanswered for `afterMs` (the server answers a
 * tagged repeat once), checking every 500 ms: `inflight[i]` holds the requests `senders[i]` has
 * out. clearInterval the result to stop.
 */
export function resendUnanswered(senders: Peer[], inflight: Array<Map<string, InFlight>>, afterMs = 2000): NodeJS.Timeout {
  return setInterval(() => {
    const now = performance.now();
    senders.forEach((sender, i) => {
      for (const [tag, f] of inflight[i]!) {
        if (now - f.at > afterMs) {
          f.at = now;
          sender.send(`@${tag} ${f.line}`);
        }
      }
    });
  }, 500);
}
