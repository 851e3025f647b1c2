/**
 * What a replicated frame kind is to peer-sync: a payload schema and an idempotent apply
 * handler, run in the receiver's batch transaction. The registry (FRAME_KINDS) is frames.ts's.
 */
import type { Queryable } from "@pesan/shared/db";
import type { IgnoreReason } from "./ownership.ts";

export interface ApplyContext {
  /** The sending cluster. */
  peer: string;
  /** This cluster. */
  self: string;
  now: Date;
  /**
   * A frame of this run is not applied because its sender does not own what it changes. The
   * applier counts and logs these after the batch commits (a retried transaction counts once).
   */
  ignore(kind: string, reason: IgnoreReason, detail: Record<string, string>): void;
  /**
   * Users whose session the sender ended with reason `unregistered` earlier in this batch:
   * the user.unregister that routers of an earlier version wrote after it is then the
   * session holder's, although the row is gone by the time it applies.
   */
  unregisteredSessions: Set<string>;
}


export interface Validator<T> {
  safeParse(data: unknown): { success: true; data: T } | { success: false; error: { issues: ReadonlyArray<{ path: ReadonlyArray<PropertyKey>; message: string }> } };
}

/**
 * One kind of replicated frame. applyRun gets a run of consecutive frames of this kind, in
 * order, inside the batch's transaction, so a kind can apply many rows in one statement; its
 * effect must equal applying them one by one, and be idempotent: positions make a re-sent
 * frame rare, not impossible (a new epoch, a restore).
 */
export interface FrameKind<T = unknown> {
  /** A zod schema, or anything with the same safeParse. */
  schema: Validator<T>;
  applyRun(tx: Queryable, ctx: ApplyContext, run: T[]): Promise<void>;
}

/** A run handler from a handler of one frame (for kinds too rare to be worth a bulk statement). */
export function oneByOne<T>(apply: (tx: Queryable, ctx: ApplyContext, data: T) => Promise<void>): FrameKind<T>["applyRun"] {
  return async (tx, ctx, run) => {
    for (const d of run) await apply(tx, ctx, d);
  };
}

// `any`: each entry pairs its own schema with its own handler; the registry only routes by kind.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type FrameKinds = Readonly<Record<string, FrameKind<any>>>;
