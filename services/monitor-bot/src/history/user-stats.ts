/**
 * New-user statistics from the messaging database's users table. Periods are UTC calendar
 * periods, so every replica and every time zone of the viewers agree: today since 00:00 UTC,
 * yesterday the whole UTC day before, this week since Monday 00:00 UTC (ISO weeks), this month
 * since the 1st 00:00 UTC; each count includes today. Probe accounts (names starting with
 * `probe-`, @pesan/shared/names isProbeName: this monitor's own and its peers') are not users
 * and are not counted.
 */
import type { Queryable } from "@pesan/shared/db";
import type { Logger } from "@pesan/shared/observability";
import { countUsers, type UserCounts } from "./store.ts";

export type { UserCounts };

const DAY = 86_400_000;

export function periodStarts(now: Date): { today: Date; yesterday: Date; week: Date; month: Date } {
  const today = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
  // getUTCDay: Sunday 0 ... Saturday 6; days since Monday: Monday 0 ... Sunday 6.
  const sinceMonday = (today.getUTCDay() + 6) % 7;
  return {
    today,
    yesterday: new Date(today.getTime() - DAY),
    week: new Date(today.getTime() - sinceMonday * DAY),
    month: new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1)),
  };
}

export interface UserStatsDeps {
  db: Queryable;
  now: () => Date;
  logger: Logger;
  /** Called with every fresh count (metrics). */
  onCounts?: (c: UserCounts) => void;
}

/** Counts on demand, at most once per cacheMs, however many dashboards poll. */
export class UserStats {
  private readonly deps: UserStatsDeps;
  private readonly cacheMs: number;
  private cached: { at: number; counts: UserCounts } | undefined;
  private inFlight: Promise<UserCounts> | undefined;

  constructor(deps: UserStatsDeps, cacheMs = 2000) {
    this.deps = deps;
    this.cacheMs = cacheMs;
  }

  get(): Promise<UserCounts> {
    const now = this.deps.now().getTime();
    if (this.cached && now - this.cached.at < this.cacheMs) return Promise.resolve(this.cached.counts);
    this.inFlight ??= countUsers(this.deps.db, periodStarts(this.deps.now()))
      .then((counts) => {
        this.cached = { at: now, counts };
        this.deps.onCounts?.(counts);
        return counts;
      })
      .finally(() => {
        this.inFlight = undefined;
      });
    return this.inFlight;
  }

  /** For the periodic refresh: errors are logged, not thrown. */
  async refresh(): Promise<void> {
    this.cached = undefined;
    try {
      await this.get();
    } catch (e) {
      this.deps.logger.warn({ err: e }, "user statistics query failed");
    }
  }
}
