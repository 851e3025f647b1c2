/** The errors the client library rejects with. */
import type { ServerLine } from "@pesan/shared/protocol";
import { addressesIn } from "./address.ts";

/** An `ERR` (or otherwise unexpected) final reply to one of the convenience methods. */
export class PesanError extends Error {
  /** The ERR code (`AUTH`, `FULL`, ...) or `UNEXPECTED` for a final line that is not OK/ERR. */
  readonly code: string;
  readonly line: ServerLine;
  /** For `ERR FULL`: the other servers it lists (`host:port`, nearest first); else empty. */
  readonly alternatives: string[];

  constructor(command: string, line: ServerLine) {
    const code = line.kind === "ERR" ? line.code : "UNEXPECTED";
    super(`${command}: ${line.kind === "ERR" ? `ERR ${line.code} ${line.text}`.trimEnd() : `unexpected reply ${JSON.stringify(line.raw)}`}`);
    this.name = "PesanError";
    this.code = code;
    this.line = line;
    this.alternatives = line.kind === "ERR" ? addressesIn(line.text) : [];
  }
}

export class RequestTimeoutError extends Error {
  readonly code = "TIMEOUT";
  readonly request: string;
  readonly server: string;
  readonly timeoutMs: number;

  constructor(request: string, server: string, timeoutMs: number) {
    super(`no reply from ${server} to ${JSON.stringify(shorten(request))} within ${timeoutMs} ms`);
    this.name = "RequestTimeoutError";
    this.request = request;
    this.server = server;
    this.timeoutMs = timeoutMs;
  }
}

export class ClientClosedError extends Error {
  readonly code = "CLOSED";

  constructor() {
    super("client closed");
    this.name = "ClientClosedError";
  }
}

function shorten(s: string): string {
  return s.length > 60 ? `${s.slice(0, 60)}...` : s;
}
