//! What one purge run does for one tenant and category, decided from the tenant's *current*
//! retention, the category's cursor and the time. Pure, so every edge is unit-tested.
//!
//! Items sit in month buckets by the month their retention clock started, sorted by that start,
//! so a run reads exactly the items whose start lies before the cutoff (`now` minus the
//! retention). The cursor remembers the first month not yet wholly purged: a daily run queries
//! the cutoff's month (one Query per table and shard), a shortened retention moves the cutoff
//! forward (old data goes at the next run), a lengthened one moves it back (nothing goes until
//! it is reached again), and a long gap costs one Query per month, not per day.
//!
//! The TTL backstop was stamped at write time with the retention then in force (plus a grace).
//! When the retention is lengthened past that, the live items' stamps are moved out, so the
//! backstop never deletes earlier than the current setting.

use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

pub use crate::clock::Month;
use crate::clock::utc_month;
use crate::privacy::retention::{DAY, TTL_GRACE_DAYS};

/// Where a category's purge stands for one tenant (kept between runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The first month bucket not yet wholly purged.
    pub next_month: Month,
    /// The shortest retention (days) the TTL stamps of live items were written with.
    pub stamped_days: u32,
    /// A lengthening being applied to the TTL stamps.
    #[serde(default)]
    pub restamp: Option<Restamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restamp {
    /// The next month bucket to re-stamp.
    pub next_month: Month,
    /// The retention the new stamps follow.
    pub to_days: u32,
}

impl Cursor {
    /// A category never purged before: from the tenant's first month, stamps as currently set.
    pub fn start(first_month: Month, retention_days: u32) -> Self {
        Self { next_month: first_month, stamped_days: retention_days, restamp: None }
    }
}

/// One run's work for one category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Items that started at or before this (unix seconds) are past the retention.
    pub cutoff: i64,
    /// Month buckets to purge (up to the cutoff), oldest first.
    pub purge: Option<RangeInclusive<Month>>,
    /// Month buckets whose live items' TTL stamps move out to `restamp_to` days.
    pub restamp: Option<RangeInclusive<Month>>,
    pub restamp_to: u32,
}

/// The newest retention-clock start that is past `retention_days` at `now_secs`.
pub fn cutoff(now_secs: i64, retention_days: u32) -> i64 {
    now_secs - i64::from(retention_days) * DAY
}

/// The TTL an item whose clock started at `start` gets under `retention_days`: never before
/// its retention ends.
pub fn ttl_for(start: i64, retention_days: u32) -> i64 {
    start + (i64::from(retention_days) + TTL_GRACE_DAYS) * DAY
}

/// What to do now, and the cursor to start from (the stored one brought up to the setting).
pub fn plan(stored: Option<Cursor>, first_month: Month, retention_days: u32, now_secs: i64) -> (Plan, Cursor) {
    let cutoff = cutoff(now_secs, retention_days);
    let cutoff_month = utc_month(cutoff);
    let mut cursor = stored.unwrap_or_else(|| Cursor::start(first_month, retention_days));
    cursor.restamp = match cursor.restamp {
        Some(r) if r.to_days == retention_days => Some(r),
        // None under way, or one for an earlier setting: (re)start when the setting now lies
        // beyond the shortest stamps, from the oldest live bucket.
        _ => (retention_days > cursor.stamped_days)
            .then_some(Restamp { next_month: cursor.next_month, to_days: retention_days }),
    };
    if cursor.restamp.is_none() {
        // Shortened: the old stamps lie beyond the new retention, where the purge comes first.
        cursor.stamped_days = cursor.stamped_days.min(retention_days);
    }
    let purge = (cursor.next_month <= cutoff_month).then_some(cursor.next_month..=cutoff_month);
    // Nothing is younger than this month; what lies before the cutoff's month is purged.
    let restamp =
        cursor.restamp.map(|r| r.next_month.max(cutoff_month)..=utc_month(now_secs)).filter(|r| !r.is_empty());
    (Plan { cutoff, purge, restamp, restamp_to: retention_days }, cursor)
}

impl Cursor {
    /// Every item of `month` up to the cutoff is gone. The cutoff's own month stays next: its
    /// younger items expire at later runs.
    pub fn purged_through(&mut self, month: Month, cutoff: i64) {
        self.next_month = self.next_month.max((month + 1).min(utc_month(cutoff)));
    }

    /// Every live item of `month` carries the new stamp; the current month ends the re-stamp.
    pub fn restamped_through(&mut self, month: Month, now_secs: i64) {
        if let Some(r) = &mut self.restamp {
            if month >= utc_month(now_secs) {
                self.stamped_days = r.to_days;
                self.restamp = None;
            } else {
                r.next_month = r.next_month.max(month + 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-06-15T12:00:00Z.
    const NOW: i64 = 1_781_524_800;

    fn month(label: &str) -> Month {
        let (y, m) = label.split_once('-').unwrap();
        y.parse::<i64>().unwrap() * 12 + m.parse::<i64>().unwrap() - 1
    }

    #[test]
    fn the_cutoff_is_exact_to_the_second() {
        assert_eq!(cutoff(NOW, 30), NOW - 30 * DAY);
        assert_eq!(utc_month(cutoff(NOW, 30)), month("2026-05"));
        assert!(ttl_for(NOW, 30) >= NOW + 30 * DAY);
    }

    #[test]
    fn the_first_run_starts_at_the_tenants_first_month_and_later_runs_go_on_from_the_cursor() {
        let (p, mut c) = plan(None, month("2025-01"), 30, NOW);
        assert_eq!(p.purge, Some(month("2025-01")..=month("2026-05")));
        assert_eq!(p.restamp, None);
        for m in month("2025-01")..=month("2026-05") {
            c.purged_through(m, p.cutoff);
        }
        assert_eq!(c.next_month, month("2026-05"), "the cutoff's month is read again next time");
        let (p, _) = plan(Some(c), month("2025-01"), 30, NOW + DAY);
        assert_eq!(p.purge, Some(month("2026-05")..=month("2026-05")), "one month per daily run");
        let (p, _) = plan(Some(c), month("2025-01"), 30, NOW + 20 * DAY);
        assert_eq!(p.purge, Some(month("2026-05")..=month("2026-06")), "the cutoff moved into June");
    }

    #[test]
    fn a_shortened_retention_reaches_old_data_at_the_next_run() {
        let mut c = Cursor::start(month("2024-01"), 730);
        c.purged_through(month("2024-06"), cutoff(NOW, 730));
        assert_eq!(c.next_month, month("2024-06"));
        let (p, c2) = plan(Some(c), month("2024-01"), 30, NOW);
        assert_eq!(p.purge, Some(month("2024-06")..=month("2026-05")));
        assert_eq!((c2.stamped_days, p.restamp), (30, None));
    }

    #[test]
    fn a_lengthened_retention_keeps_the_data_and_moves_the_ttl_stamps_out() {
        let mut c = Cursor::start(month("2026-01"), 30);
        c.purged_through(month("2026-05"), cutoff(NOW, 30));
        let (p, mut c) = plan(Some(c), month("2026-01"), 400, NOW);
        assert_eq!(p.purge, None, "nothing is past 400 days");
        assert_eq!(p.restamp, Some(month("2026-05")..=month("2026-06")), "every live bucket");
        assert_eq!(p.restamp_to, 400);
        // Interrupted half way: the next run goes on from there.
        c.restamped_through(month("2026-05"), NOW);
        let (p, mut c) = plan(Some(c), month("2026-01"), 400, NOW + DAY);
        assert_eq!(p.restamp, Some(month("2026-06")..=month("2026-06")));
        c.restamped_through(month("2026-06"), NOW + DAY);
        assert_eq!((c.stamped_days, c.restamp), (400, None));
        let (p, _) = plan(Some(c), month("2026-01"), 400, NOW + 2 * DAY);
        assert_eq!(p.restamp, None, "done");
    }

    #[test]
    fn a_second_lengthening_during_a_restamp_starts_it_over() {
        let mut c = Cursor::start(month("2026-01"), 30);
        c.purged_through(month("2026-05"), cutoff(NOW, 30));
        let (_, mut c) = plan(Some(c), month("2026-01"), 100, NOW);
        c.restamped_through(month("2026-05"), NOW);
        let (p, c) = plan(Some(c), month("2026-01"), 200, NOW);
        assert_eq!(c.restamp, Some(Restamp { next_month: month("2026-05"), to_days: 200 }));
        // What lies before May went under the 30-day setting: only May and June are live.
        assert_eq!(p.restamp, Some(month("2026-05")..=month("2026-06")));
    }
}
