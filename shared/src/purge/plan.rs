//! What one purge run does for one tenant and category, decided from the tenant's *current*
//! retention, the category's cursor and the day. Pure, so every edge is unit-tested.
//!
//! Items sit in day buckets by the day their retention clock started; retention counts from the
//! end of that day, so a bucket goes whole once its last second is past the retention. The
//! cursor remembers the first bucket not yet purged: a daily run queries one new day per table
//! and shard, a shortened retention moves the last expired day forward (old data goes at the next
//! run), a lengthened one moves it back (nothing goes until it is reached again).
//!
//! The TTL backstop was stamped at write time with the retention then in force (plus a grace).
//! When the retention is lengthened past that, the live items' stamps are moved out before the
//! grace runs out, so the backstop never deletes earlier than the current setting.

use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

use crate::privacy::retention::{DAY, TTL_GRACE_DAYS};

/// Days since the unix epoch (UTC).
pub type Day = i64;

pub fn day_of(unix_secs: i64) -> Day {
    unix_secs.div_euclid(DAY)
}

/// Where a category's purge stands for one tenant (kept between runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The first day bucket not yet purged.
    pub next_day: Day,
    /// The shortest retention (days) the TTL stamps of live items were written with.
    pub stamped_days: u32,
    /// A lengthening being applied to the TTL stamps.
    #[serde(default)]
    pub restamp: Option<Restamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restamp {
    /// The next day bucket to re-stamp.
    pub next_day: Day,
    /// The retention the new stamps follow.
    pub to_days: u32,
}

impl Cursor {
    /// A category never purged before: from the tenant's first day, stamps as currently set.
    pub fn start(first_day: Day, retention_days: u32) -> Self {
        Self { next_day: first_day, stamped_days: retention_days, restamp: None }
    }
}

/// One run's work for one category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Day buckets to purge, oldest first.
    pub purge: Option<RangeInclusive<Day>>,
    /// Day buckets whose TTL stamps move out to `restamp_to` days.
    pub restamp: Option<RangeInclusive<Day>>,
    pub restamp_to: u32,
}

/// The last day bucket whose every item is past `retention_days` at `now_secs`.
pub fn last_expired_day(now_secs: i64, retention_days: u32) -> Day {
    day_of(now_secs) - i64::from(retention_days) - 1
}

/// The TTL an item of bucket `day` gets under `retention_days`: never before its retention ends.
pub fn ttl_for(day: Day, retention_days: u32) -> i64 {
    (day + 1 + i64::from(retention_days) + TTL_GRACE_DAYS) * DAY
}

/// What to do now, and the cursor to start from (the stored one brought up to the setting).
pub fn plan(stored: Option<Cursor>, first_day: Day, retention_days: u32, now_secs: i64) -> (Plan, Cursor) {
    let today = day_of(now_secs);
    let last = last_expired_day(now_secs, retention_days);
    let mut cursor = stored.unwrap_or_else(|| Cursor::start(first_day, retention_days));
    cursor.restamp = match cursor.restamp {
        Some(r) if r.to_days == retention_days => Some(r),
        // None under way, or one for an earlier setting: (re)start when the setting now lies
        // beyond the shortest stamps, from the oldest live bucket.
        _ => (retention_days > cursor.stamped_days)
            .then_some(Restamp { next_day: cursor.next_day, to_days: retention_days }),
    };
    if cursor.restamp.is_none() {
        // Shortened: the old stamps lie beyond the new retention, where the purge comes first.
        cursor.stamped_days = cursor.stamped_days.min(retention_days);
    }
    let purge = (cursor.next_day <= last).then(|| cursor.next_day..=last);
    // Buckets that this run purges need no new stamp; nothing is younger than today.
    let restamp = cursor.restamp.map(|r| r.next_day.max(last + 1)..=today).filter(|r| !r.is_empty());
    (Plan { purge, restamp, restamp_to: retention_days }, cursor)
}

impl Cursor {
    /// Every bucket through `day` is purged.
    pub fn purged_through(&mut self, day: Day) {
        self.next_day = self.next_day.max(day + 1);
    }

    /// Every bucket through `day` carries the new stamps; `today` ends the re-stamp.
    pub fn restamped_through(&mut self, day: Day, today: Day) {
        if let Some(r) = &mut self.restamp {
            if day >= today {
                self.stamped_days = r.to_days;
                self.restamp = None;
            } else {
                r.next_day = r.next_day.max(day + 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 20_000 * DAY + 3_600; // 01:00 on day 20,000

    #[test]
    fn a_bucket_goes_once_its_last_second_is_past_the_retention() {
        assert_eq!(last_expired_day(NOW, 30), 20_000 - 31);
        // Started at the last second of day 19,969: 30 days later is the last second of 19,999.
        let started = 19_970 * DAY - 1;
        assert!(started + 30 * DAY < NOW);
        assert_eq!(day_of(started), last_expired_day(NOW, 30));
    }

    #[test]
    fn the_first_run_starts_at_the_tenants_first_day_and_later_runs_go_on_from_the_cursor() {
        let (p, mut c) = plan(None, 19_000, 30, NOW);
        assert_eq!(p.purge, Some(19_000..=19_969));
        assert_eq!(p.restamp, None);
        c.purged_through(19_969);
        let (p, _) = plan(Some(c), 19_000, 30, NOW + DAY);
        assert_eq!(p.purge, Some(19_970..=19_970), "one new day per run");
        let (p, _) = plan(Some(c), 19_000, 30, NOW);
        assert_eq!(p.purge, None, "a second run on the same day has nothing left");
    }

    #[test]
    fn a_shortened_retention_reaches_old_data_at_the_next_run() {
        let mut c = Cursor::start(19_000, 730);
        c.purged_through(last_expired_day(NOW, 730));
        let (p, c2) = plan(Some(c), 19_000, 30, NOW);
        assert_eq!(p.purge, Some(last_expired_day(NOW, 730) + 1..=last_expired_day(NOW, 30)));
        assert_eq!((c2.stamped_days, p.restamp), (30, None));
    }

    #[test]
    fn a_lengthened_retention_keeps_the_data_and_moves_the_ttl_stamps_out() {
        let mut c = Cursor::start(19_000, 30);
        c.purged_through(last_expired_day(NOW, 30));
        let (p, mut c) = plan(Some(c), 19_000, 400, NOW);
        assert_eq!(p.purge, None, "nothing is past 400 days");
        assert_eq!(p.restamp, Some(c.next_day..=20_000), "every live bucket");
        assert_eq!(p.restamp_to, 400);
        // Interrupted half way: the next run goes on from there.
        c.restamped_through(19_985, 20_000);
        let (p, mut c) = plan(Some(c), 19_000, 400, NOW + DAY);
        assert_eq!(p.restamp, Some(19_986..=20_001));
        c.restamped_through(20_001, 20_001);
        assert_eq!((c.stamped_days, c.restamp), (400, None));
        let (p, _) = plan(Some(c), 19_000, 400, NOW + 2 * DAY);
        assert_eq!(p.restamp, None, "done");
        // The new stamps are never earlier than the new retention's end.
        assert!(ttl_for(19_986, 400) >= (19_987 + 400) * DAY);
    }

    #[test]
    fn a_second_lengthening_during_a_restamp_starts_it_over() {
        let mut c = Cursor::start(19_000, 30);
        c.purged_through(19_969);
        let (_, mut c) = plan(Some(c), 19_000, 100, NOW);
        c.restamped_through(19_990, 20_000);
        let (p, c) = plan(Some(c), 19_000, 200, NOW);
        assert_eq!(p.restamp, Some(19_970..=20_000));
        assert_eq!(c.restamp, Some(Restamp { next_day: 19_970, to_days: 200 }));
    }
}
