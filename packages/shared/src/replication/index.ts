export * from "./payloads.ts";
export { enqueueFrame, enqueueFrames } from "./outbox.ts";
