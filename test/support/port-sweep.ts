#!/usr/bin/env node
/**
 * A source-port sweep, run as its own process so the flood's own work never delays the test's
 * measuring client: one datagram from every source port of HOST (1-65535; ports the machine
 * holds already are skipped), paced at RATE datagrams/s, to TARGET. Prints one JSON line:
 * {"sent": n, "skipped": m, "ms": elapsed}.
 *
 *   node test/support/port-sweep.ts HOST TARGET_HOST TARGET_PORT RATE DATAGRAM
 */
import { createSocket, type Socket } from "node:dgram";

const [host, targetHost, targetPortText, rateText, datagram] = process.argv.slice(2);
const targetPort = Number(targetPortText);
const rate = Number(rateText);
if (!host || !targetHost || !Number.isInteger(targetPort) || !(rate > 0) || datagram === undefined) {
  process.stderr.write("usage: port-sweep.ts HOST TARGET_HOST TARGET_PORT RATE DATAGRAM\n");
  process.exit(2);
}

const CHUNK = 500;
const open = (port: number): Promise<Socket | undefined> =>
  new Promise((resolve) => {
    const s = createSocket("udp4");
    s.once("error", () => {
      s.close();
      resolve(undefined);
    });
    s.bind(port, host, () => resolve(s));
  });
const send = (s: Socket): Promise<void> => new Promise((resolve) => s.send(datagram, targetPort, targetHost, () => resolve()));
const close = (s: Socket): Promise<void> => new Promise((resolve) => s.close(() => resolve()));

const started = performance.now();
let sent = 0;
let skipped = 0;
for (let first = 1; first <= 65535; first += CHUNK) {
  const ports = Array.from({ length: Math.min(CHUNK, 65536 - first) }, (_, i) => first + i);
  const socks = await Promise.all(ports.map(open));
  const live = socks.filter((s): s is Socket => s !== undefined);
  skipped += socks.length - live.length;
  await Promise.all(live.map(send));
  sent += live.length;
  await Promise.all(live.map(close));
  // Pace: this chunk may not leave before its share of the rate's time.
  const due = started + (sent / rate) * 1000;
  const wait = due - performance.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}
process.stdout.write(`${JSON.stringify({ sent, skipped, ms: Math.round(performance.now() - started) })}\n`);
