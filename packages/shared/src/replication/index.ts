export * from "./payloads.ts";
export { enqueueFrame, enqueueFrames } from "./outbox.ts";
export {
  enqueueFramesFromRows,
  framesFromRowsSql,
  messageNewFromRow,
  sqlBool,
  sqlInstant,
  sqlText,
  SQL_TRUE,
  type FramesFromRows,
  type SqlPayload,
  type SqlValue,
} from "./sql-frames.ts";
export { handOverUndelivered, type HandOverScope } from "./handover.ts";
