// A stored alarm this long past its time is taken as lost, not late. A due alarm normally runs
// within milliseconds, and a handler that has started no longer shows in getAlarm().
export const LOST_ALARM_MS = 2_000;

const isLost = (stored: number, now: number): boolean => stored < now - LOST_ALARM_MS;

/**
 * When to set the object's one alarm so that it fires no later than `at`. Returns null when the
 * stored alarm already does.
 *
 * The usual rule is to set it only when none is stored or the stored one is later. That rule
 * alone lets an object stop for good. workerd can keep an alarm in storage that its scheduler
 * no longer holds: its time passes and it never fires (workerd#3138, workerd#7330,
 * cloudflare-docs#18324). Here it happened after workerd was killed and restarted, in the faults
 * suite: the stored alarm stayed 85 s past its time with a backlog waiting behind it. Since
 * every later `at` is later than that stale time, nothing set a new one. So a stored alarm more
 * than LOST_ALARM_MS past its time is set anew, for now. Its work was due then. An alarm that
 * was only late runs once more, and the handlers allow that: the alarm handler runs at least
 * once anyway.
 */
export function alarmToSet(stored: number | null, at: number, now: number): number | null {
  const when = Math.max(now, at);
  if (stored === null || stored > when) return when;
  return isLost(stored, now) ? now : null;
}

/**
 * The alarm to set when checking, from outside the object's own flow (the sweep), that it has
 * not stopped: now, if the stored alarm is lost (as in alarmToSet) or none is stored though
 * `wanted`; else null. A stored alarm still to come is left alone (a backoff stays a backoff).
 */
export function alarmToRepair(stored: number | null, wanted: boolean, now: number): number | null {
  if (stored === null) return wanted ? now : null;
  return isLost(stored, now) ? now : null;
}

/** What armNoLaterThan and repairAlarm need of a Durable Object's storage (this file is also built for Node). */
export interface AlarmStorage {
  getAlarm(): Promise<number | null>;
  setAlarm(scheduledTime: number): Promise<void>;
}

/** Sets the alarm of `storage` so it fires no later than `at` (alarmToSet). */
export async function armNoLaterThan(storage: AlarmStorage, at: number): Promise<void> {
  const set = alarmToSet(await storage.getAlarm(), at, Date.now());
  if (set !== null) await storage.setAlarm(set);
}

/** Sets the alarm of `storage` for now if it was lost, or is missing though `wanted` (alarmToRepair). */
export async function repairAlarm(storage: AlarmStorage, wanted: boolean): Promise<void> {
  const set = alarmToRepair(await storage.getAlarm(), wanted, Date.now());
  if (set !== null) await storage.setAlarm(set);
}
