export * from "./codec.ts";
export * from "./proof.ts";
export * from "./address.ts";
export * from "./passhash.ts";
export * from "./send-id.ts";
