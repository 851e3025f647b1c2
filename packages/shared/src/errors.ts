/**
 * The one registry of error codes. Protocol codes are what clients see after `ERR`;
 * each has a default human text so every reply of one kind reads the same.
 */
export const PROTOCOL_ERRORS = {
  BAD_REQUEST: "bad request",
  UNKNOWN_COMMAND: "unknown command",
  TOO_LONG: "message text is longer than 4000 bytes",
  NOT_LOGGED_IN: "log in first",
  AUTH: "wrong user name, password or token",
  TAKEN: "that user name is taken",
  BAD_PASSWORD: "password must be 6 to 128 bytes",
  NO_SUCH_USER: "no such user",
  NO_SUCH_MESSAGE: "no such message",
  FULL: "this server is full, try",
  RATE_LIMITED: "too many requests, slow down",
  UNAVAILABLE: "service unavailable, try again or use another server",
  BOX_FULL: "the recipient's box of undelivered messages is full, try again later",
} as const;

export type ProtocolErrorCode = keyof typeof PROTOCOL_ERRORS;

/** Thrown at start-up when configuration is invalid; the message names every bad setting. */
export class ConfigError extends Error {
  readonly issues: string[];
  constructor(issues: string[]) {
    super(`invalid configuration:\n  - ${issues.join("\n  - ")}`);
    this.name = "ConfigError";
    this.issues = issues;
  }
}

/** A migration file or the migration table is inconsistent with what this build expects. */
export class MigrationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MigrationError";
  }
}
