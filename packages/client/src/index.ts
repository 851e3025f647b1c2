export {
  PesanClient,
  PesanError,
  RequestTimeoutError,
  ClientClosedError,
  parseServerAddress,
  formatServerAddress,
} from "./client.ts";
export type {
  PesanClientOptions,
  PesanClientEvents,
  RequestOptions,
  PesanSession,
  ServerAddress,
  FailoverEvent,
  ResumedEvent,
  LineMeta,
  MsgLine,
  ErrLine,
} from "./client.ts";
