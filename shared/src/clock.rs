//! Time as the stores and providers count it (unix seconds and milliseconds), behind a trait so
//! that logic never reads the wall clock itself: functions take `now` from the clock at their
//! edge, and tests drive time instead of waiting for it.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// Unix time in milliseconds.
    fn now_ms(&self) -> i64;

    /// Unix time in seconds.
    fn now(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now_ms(&self) -> i64 {
        (**self).now_ms()
    }
}

/// The system's wall clock: what a deployed function uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
    }
}

/// A clock that follows tokio's clock from a fixed start: under `#[tokio::test(start_paused =
/// true)]` time advances only when every task waits, so waiting logic runs instantly and
/// deterministically, and unix timestamps stay consistent with tokio's sleeps.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start_ms: i64,
    start: tokio::time::Instant,
}

impl TokioClock {
    pub fn starting_at(unix_ms: i64) -> Self {
        Self { start_ms: unix_ms, start: tokio::time::Instant::now() }
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> i64 {
        self.start_ms + self.start.elapsed().as_millis() as i64
    }
}

/// A clock that stands still until told to move.
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    pub fn at(unix_ms: i64) -> Self {
        Self(std::sync::atomic::AtomicI64::new(unix_ms))
    }

    pub fn set(&self, unix_ms: i64) {
        self.0.store(unix_ms, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A month as a number (`year * 12 + month - 1`, UTC): what the expiry buckets are counted in.
pub type Month = i64;

pub fn utc_month(unix_secs: i64) -> Month {
    let ts = jiff::Timestamp::from_second(unix_secs).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let date = ts.to_zoned_datetime(jiff::tz::TimeZone::UTC).date();
    i64::from(date.year()) * 12 + i64::from(date.month()) - 1
}

/// A month as `yyyy-mm`, for bucket keys.
pub fn month_label(month: Month) -> String {
    format!("{:04}-{:02}", month.div_euclid(12), month.rem_euclid(12) + 1)
}

/// Parses an RFC 3339 timestamp (e.g. an EventBridge event's `time`) into unix milliseconds.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    text.parse::<jiff::Timestamp>().ok().map(|t| t.as_millisecond())
}

/// Formats unix milliseconds as RFC 3339 (UTC).
pub fn rfc3339(unix_ms: i64) -> String {
    jiff::Timestamp::from_millisecond(unix_ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_timestamps_round_trip() {
        assert_eq!(month_label(utc_month(1_767_225_600)), "2026-01");
        assert_eq!(month_label(utc_month(1_767_225_599)), "2025-12");
        assert_eq!(utc_month(1_767_225_600) - utc_month(1_767_225_599), 1);
        assert_eq!(parse_rfc3339_ms("2026-01-01T00:00:00Z"), Some(1_767_225_600_000));
        assert_eq!(rfc3339(1_767_225_600_000), "2026-01-01T00:00:00Z");
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::at(5_000);
        assert_eq!((clock.now_ms(), clock.now()), (5_000, 5));
        clock.advance(1_500);
        assert_eq!(clock.now(), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn the_tokio_clock_follows_paused_time() {
        let clock = TokioClock::starting_at(1_000);
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        assert_eq!(clock.now_ms(), 4_000);
    }
}
