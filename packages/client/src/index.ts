export { PesanClient } from "./client.ts";
export { PesanError, RequestTimeoutError, ClientClosedError } from "./errors.ts";
export { parseServerAddress, formatServerAddress, normalizeServerAddress } from "./address.ts";
export { Transport, loginKey } from "./transport.ts";
export { SessionMachine } from "./session.ts";
export { askLive } from "./live.ts";
export { nearestFirst, probeRtt, rankByRtt, type Probed } from "./nearest.ts";
export type {
  PesanClientOptions,
  PesanClientEvents,
  RequestOptions,
  PesanSession,
  SessionPhase,
  FailoverEvent,
  FullEvent,
  ResumedEvent,
  LineMeta,
  MsgLine,
  ErrLine,
} from "./client.ts";
export type { ServerAddress } from "./address.ts";
export type { CapPhase } from "./session.ts";
export type { TransportOptions, TransportRequestOptions, Datagram, SentRequest } from "./transport.ts";
