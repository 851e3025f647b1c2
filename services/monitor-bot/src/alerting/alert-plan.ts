/**
 * When to tell the members what: a pure function of what was already said (one record per
 * component alerted about), what is down now, and the clock. The alert leader keeps the records
 * in Redis, so a successor continues the same cadence instead of starting over.
 *
 * - A component that is down and has no record is alerted at once.
 * - One with a record is alerted again once the interval has passed since the last alert.
 * - A record whose component is no longer down gives one recovery, then is dropped.
 * - A suppressed component (muted, acked, in maintenance: see suppression.ts) gets no alert. Its
 *   record, if members were already told, is kept as it is: not a recovery, and when the silence
 *   ends while it is still down, the reminder is due at once. A recovery is told whenever a
 *   record exists, silenced or not: members who heard "down" should hear "back up".
 */

export interface AlertRecord {
  /** When the outage began (ms since the epoch), the earliest any leader saw. */
  since: number;
  /** When the last alert about it was queued. */
  lastAt: number;
  /** Alerts sent about this outage so far. */
  count: number;
}

export interface DownNow {
  component: string;
  since: Date;
  detail: string;
}

export interface AlertPlan {
  /** Due now, in the order given (oldest outage first). */
  reminders: Array<DownNow & { count: number }>;
  recoveries: Array<{ component: string; since: Date; at: Date }>;
  /** The records after this plan is carried out. */
  records: Map<string, AlertRecord>;
  /** Records that changed (to store) and components that were dropped (to delete). */
  changed: Map<string, AlertRecord>;
  removed: string[];
  /** When the next reminder falls due, if anything is still down. */
  nextDueAt: number | undefined;
}

/**
 * Timers fire a little early or late and ticks do not land exactly on the due time; a reminder
 * within this share of the interval counts as due, so the cadence does not slip by a whole tick.
 */
const EARLY_SHARE = 0.05;

/**
 * upAt: when components came back (from the monitor's `up` events), for an exact downtime; a
 * recovery not found there is dated `now`.
 */
export function planAlerts(
  previous: ReadonlyMap<string, AlertRecord>,
  down: readonly DownNow[],
  upAt: ReadonlyMap<string, Date>,
  now: number,
  intervalMs: number,
  suppressed: ReadonlySet<string> = new Set(),
): AlertPlan {
  const records = new Map(previous);
  const changed = new Map<string, AlertRecord>();
  const reminders: AlertPlan["reminders"] = [];
  const downIds = new Set<string>();
  const early = intervalMs * EARLY_SHARE;

  for (const d of down) {
    downIds.add(d.component);
    if (suppressed.has(d.component)) continue;
    const rec = records.get(d.component);
    // Matched by component only: a successor's own probes date the same outage a little
    // differently, and that must not read as a recovery followed by a new outage.
    const since = Math.min(rec?.since ?? Infinity, d.since.getTime());
    if (rec && now - rec.lastAt < intervalMs - early) {
      if (since !== rec.since) changed.set(d.component, { ...rec, since });
      continue;
    }
    const next = { since, lastAt: now, count: (rec?.count ?? 0) + 1 };
    records.set(d.component, next);
    changed.set(d.component, next);
    reminders.push({ ...d, since: new Date(since), count: next.count });
  }

  const recoveries: AlertPlan["recoveries"] = [];
  const removed: string[] = [];
  for (const [component, rec] of previous) {
    if (downIds.has(component)) continue;
    const at = upAt.get(component);
    recoveries.push({ component, since: new Date(rec.since), at: at && at.getTime() >= rec.since ? at : new Date(now) });
    records.delete(component);
    removed.push(component);
  }
  for (const [component, rec] of changed) if (records.has(component)) records.set(component, rec);

  let nextDueAt: number | undefined;
  // A suppressed record is overdue by design; counting it would make the alerter spin.
  for (const [component, rec] of records) if (!suppressed.has(component)) nextDueAt = Math.min(nextDueAt ?? Infinity, rec.lastAt + intervalMs);
  return { reminders, recoveries, records, changed, removed, nextDueAt };
}
