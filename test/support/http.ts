/** A plain HTTP server answering "ok" on a loopback port: something a monitor's check can find up, then down. */
import { createServer, type Server } from "node:http";

export function okServer(port: number): Promise<Server> {
  const s = createServer((_req, res) => res.end("ok"));
  return new Promise((resolve, reject) => {
    s.once("error", reject);
    s.listen(port, "127.0.0.1", () => resolve(s));
  });
}

export async function closeServer(s: Server | undefined): Promise<void> {
  if (!s) return;
  s.closeAllConnections();
  await new Promise<void>((r) => s.close(() => r()));
}
