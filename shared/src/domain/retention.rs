//! How long what we store is kept, by plan (docs/RETENTION.md says it in prose).
//!
//! - A raw event expires at its time plus the plan's history window; the store deletes it then
//!   (DynamoDB's TTL, or the local purge), and queries stop showing it as soon as it leaves the
//!   *current* plan's window.
//! - An hourly rollup is kept while it can be shown (its hour plus the history window) and, in
//!   any case, until the monthly report of its month has been made: `REPORT_GRACE_MS` after the
//!   month ends, which leaves room for retries and for report months in any timezone.
//! - When the plan changes, a background pass re-applies these rules to what is stored: events
//!   still held are kept for the new window, or deleted once outside it.

use super::time::{HOUR_MS, next_month_start};

/// Rollups outlive their (UTC) month by this much, so the month's report can be made and re-run.
pub const REPORT_GRACE_MS: i64 = 7 * 86_400_000;

/// When an event at `ts_ms` expires under a plan keeping `history_ms`.
pub fn event_expiry_ms(ts_ms: i64, history_ms: i64) -> i64 {
    ts_ms + history_ms
}

/// When the rollup of `hour` (hours since the epoch) expires under a plan keeping `history_ms`.
pub fn rollup_expiry_ms(hour: i64, history_ms: i64) -> i64 {
    let end = (hour + 1) * HOUR_MS;
    let report_done = next_month_start(hour * HOUR_MS).timestamp_millis() + REPORT_GRACE_MS;
    (end + history_ms).max(report_done)
}

/// The first hour whose rollups are still kept at `now_ms`: every later hour is kept too, since
/// expiry never decreases with the hour.
pub fn rollups_kept_from(history_ms: i64, now_ms: i64) -> i64 {
    // Candidates: the hour the window starts in, and the first hour of every month whose
    // report may still be pending. The earliest one still alive is the answer.
    let window = (now_ms - history_ms).div_euclid(HOUR_MS);
    let mut first = window;
    // A month is still needed while now < its end + grace, so only the last two can be.
    let this_month = next_month_start(now_ms - 62 * 86_400_000).timestamp_millis();
    let mut month = this_month;
    while month <= now_ms {
        let hour = month.div_euclid(HOUR_MS);
        if rollup_expiry_ms(hour, history_ms) > now_ms {
            first = first.min(hour);
            break;
        }
        month = next_month_start(month).timestamp_millis();
    }
    // Hours just before the window can still be alive when the window starts mid-hour.
    while rollup_expiry_ms(first - 1, history_ms) > now_ms {
        first -= 1;
    }
    while rollup_expiry_ms(first, history_ms) <= now_ms {
        first += 1;
    }
    first
}

/// What the retention pass does to one stored event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventFate {
    /// Keep it, expiring at this time.
    ExpireAt(i64),
    /// Outside the window: delete it now.
    Delete,
    /// Already past its own expiry: leave it to be purged, never bring it back.
    Leave,
}

/// The pass's rule for an event at `ts_ms` now expiring at `expires_ms`.
pub fn event_fate(ts_ms: i64, expires_ms: i64, history_ms: i64, now_ms: i64) -> EventFate {
    if expires_ms <= now_ms {
        EventFate::Leave
    } else if event_expiry_ms(ts_ms, history_ms) <= now_ms {
        EventFate::Delete
    } else {
        EventFate::ExpireAt(event_expiry_ms(ts_ms, history_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::plan::Plan;

    fn ms(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn a_rollup_lasts_for_its_window_or_until_its_report_whichever_is_later() {
        let free = Plan::Free.history_ms();
        // 2 Nov: the window ends 9 Nov, but November's report needs it until 7 Dec.
        let h = ms("2026-11-02T10:00:00Z") / HOUR_MS;
        assert_eq!(rollup_expiry_ms(h, free), ms("2026-12-08T00:00:00Z"));
        // 30 Nov 23:00 on the team plan: the window (a year) is longer.
        let h = ms("2026-11-30T23:00:00Z") / HOUR_MS;
        let team = Plan::Team.history_ms();
        assert_eq!(rollup_expiry_ms(h, team), ms("2026-12-01T00:00:00Z") + team);
    }

    #[test]
    fn kept_from_is_the_first_hour_not_yet_expired() {
        let start = ms("2026-01-01T00:00:00Z");
        for plan in Plan::ALL {
            let history = plan.history_ms();
            // Every 7 hours and a bit over two years: month ends, grace ends, leap days.
            let mut now = start;
            while now < start + 800 * 86_400_000 {
                let first = rollups_kept_from(history, now);
                assert!(rollup_expiry_ms(first, history) > now, "{plan:?} at {now}");
                assert!(
                    rollup_expiry_ms(first - 1, history) <= now,
                    "{plan:?} at {now}"
                );
                now += 7 * HOUR_MS + 123_457;
            }
        }
    }

    #[test]
    fn the_retention_pass_keeps_deletes_or_leaves() {
        let day = 86_400_000;
        let now = ms("2026-11-27T12:00:00Z");
        let pro = Plan::Pro.history_ms();
        let free = Plan::Free.history_ms();
        // Upgrade: a 3-day-old event kept for free is now kept for pro's 90 days.
        let ts = now - 3 * day;
        assert_eq!(
            event_fate(ts, ts + free, pro, now),
            EventFate::ExpireAt(ts + pro)
        );
        // Downgrade: a 30-day-old event is outside free's week.
        let ts = now - 30 * day;
        assert_eq!(event_fate(ts, ts + pro, free, now), EventFate::Delete);
        // An event already expired (but not yet purged) is never brought back by an upgrade.
        let ts = now - 8 * day;
        assert_eq!(event_fate(ts, ts + free, pro, now), EventFate::Leave);
    }
}
