export * from "./codec.ts";
export * from "./proof.ts";
