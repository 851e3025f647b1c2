/**
 * A DNS server of the test's own on a loopback UDP port: A records from a table the test
 * changes as it goes, TTL 0, so a name can stand for several addresses (as Docker's DNS answers
 * a scaled Compose service with one A record per replica) and replicas can come and go. A name
 * not in the table is NXDOMAIN; AAAA and other types get an empty answer. Queried through
 * Node's own resolver (`resolver()`), i.e. the real DNS protocol, nothing injected below it.
 */
import { createSocket, type Socket } from "node:dgram";
import { Resolver } from "node:dns/promises";
import type { Resolver as MonitorResolver } from "../../services/monitor-bot/src/index.ts";

const TYPE_A = 1;
const CLASS_IN = 1;

export class TestDns {
  /** name (lower case, no trailing dot) -> IPv4 addresses */
  readonly records = new Map<string, string[]>();
  private socket: Socket | undefined;
  port = 0;

  async start(host = "127.0.0.1", port = 0): Promise<void> {
    const socket = createSocket("udp4");
    socket.on("message", (msg, rinfo) => {
      const answer = this.answer(msg);
      if (answer) socket.send(answer, rinfo.port, rinfo.address);
    });
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(port, host, () => resolve());
    });
    this.socket = socket;
    this.port = socket.address().port;
  }

  /** A resolver for the monitor that asks this server only. */
  resolver(): MonitorResolver {
    const r = new Resolver({ timeout: 500, tries: 2 });
    r.setServers([`127.0.0.1:${this.port}`]);
    return async (host) => (await r.resolve4(host)).map((address) => ({ address, family: 4 }));
  }

  private answer(msg: Buffer): Buffer | undefined {
    if (msg.length < 12 || msg.readUInt16BE(4) !== 1) return undefined;
    const labels: string[] = [];
    let i = 12;
    while (i < msg.length && msg[i]! !== 0) {
      const n = msg[i]!;
      labels.push(msg.subarray(i + 1, i + 1 + n).toString("ascii"));
      i += 1 + n;
    }
    const qEnd = i + 5; // the zero byte, QTYPE, QCLASS
    if (qEnd > msg.length) return undefined;
    const qtype = msg.readUInt16BE(i + 1);
    const name = labels.join(".").toLowerCase();
    const known = this.records.get(name);
    const ips = known && qtype === TYPE_A ? known : [];
    const header = Buffer.alloc(12);
    header.writeUInt16BE(msg.readUInt16BE(0), 0); // id
    header.writeUInt16BE(0x8180 | (known ? 0 : 3), 2); // response, recursion desired + available; NXDOMAIN if unknown
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(ips.length, 6);
    const answers = ips.map((ip) => {
      const rr = Buffer.alloc(16);
      rr.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
      rr.writeUInt16BE(TYPE_A, 2);
      rr.writeUInt16BE(CLASS_IN, 4);
      rr.writeUInt32BE(0, 6); // TTL 0: nothing may keep an old answer
      rr.writeUInt16BE(4, 10);
      ip.split(".").forEach((o, k) => rr.writeUInt8(Number(o), 12 + k));
      return rr;
    });
    return Buffer.concat([header, msg.subarray(12, qEnd), ...answers]);
  }

  async close(): Promise<void> {
    const s = this.socket;
    this.socket = undefined;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }
}
