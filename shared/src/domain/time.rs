//! Time helpers. All stored times are UTC epoch milliseconds; rollups are bucketed by UTC hour.

use chrono::{DateTime, Datelike, TimeZone, Utc};

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// Epoch hours: the rollup bucket of a timestamp.
pub fn hour_of(ts_ms: i64) -> i64 {
    ts_ms.div_euclid(HOUR_MS)
}

/// The calendar month (UTC) of a timestamp as `YYYY-MM`: the quota period.
pub fn month_of(ts_ms: i64) -> String {
    let t = to_datetime(ts_ms);
    format!("{:04}-{:02}", t.year(), t.month())
}

/// The first millisecond of the next UTC month: when a monthly quota resets.
pub fn next_month_start(ts_ms: i64) -> DateTime<Utc> {
    let t = to_datetime(ts_ms);
    let (y, m) = if t.month() == 12 {
        (t.year() + 1, 1)
    } else {
        (t.year(), t.month() + 1)
    };
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single().unwrap_or(t)
}

pub fn to_datetime(ts_ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ts_ms).unwrap_or(DateTime::UNIX_EPOCH)
}

pub fn rfc3339(ts_ms: i64) -> String {
    to_datetime(ts_ms).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_roll_over_at_year_end() {
        let dec = DateTime::parse_from_rfc3339("2026-12-31T23:59:59Z")
            .unwrap()
            .timestamp_millis();
        assert_eq!(month_of(dec), "2026-12");
        assert_eq!(
            next_month_start(dec).to_rfc3339(),
            "2027-01-01T00:00:00+00:00"
        );
        assert_eq!(hour_of(-1), -1);
    }
}
