//! How long each category of personal data is kept, per tenant (DESIGN.md defaults), and the
//! expiry stamps every item carries: a TTL attribute (free but lazy deletes) and a day bucket
//! that the purge job queries so its cost follows what expired, not the table size.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::domain::TenantId;

const DAY: i64 = 86_400;

/// Retention per category, in days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionDays {
    pub messages: u32,
    pub leads: u32,
    pub appointments: u32,
    pub logs: u32,
    pub idempotency_keys: u32,
    pub audit: u32,
    pub exports: u32,
}

impl Default for RetentionDays {
    fn default() -> Self {
        Self { messages: 730, leads: 730, appointments: 730, logs: 365, idempotency_keys: 8, audit: 365, exports: 7 }
    }
}

impl RetentionDays {
    pub fn validate(&self) -> Result<(), &'static str> {
        let all =
            [self.messages, self.leads, self.appointments, self.logs, self.idempotency_keys, self.audit, self.exports];
        if all.iter().any(|d| *d == 0 || *d > 3650) {
            return Err("retention_days must be between 1 and 3650");
        }
        Ok(())
    }
}

/// When an item stored at `now` expires, and the purge bucket it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    /// Unix seconds; the DynamoDB TTL attribute.
    pub at: i64,
    /// `<tenant>#EXP#<yyyy-mm-dd>`: the sparse GSI partition the purge job reads.
    pub bucket: String,
}

impl Expiry {
    pub fn after_days(tenant: &TenantId, now: i64, days: u32) -> Self {
        let at = now + i64::from(days) * DAY;
        Self { at, bucket: format!("{tenant}#EXP#{}", day_of(at)) }
    }
}

fn day_of(unix: i64) -> String {
    let date = OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH).date();
    format!("{:04}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let d = RetentionDays::default();
        assert_eq!((d.messages, d.idempotency_keys, d.exports), (730, 8, 7));
        assert!(d.validate().is_ok());
        assert!(RetentionDays { messages: 0, ..d }.validate().is_err());
    }

    #[test]
    fn expiry_lands_in_the_right_day_bucket() {
        let t = TenantId::parse("acme").unwrap();
        // 2026-01-01T00:00:00Z + 730 days = 2028-01-01 (2027 is not a leap year, 2028 is).
        let e = Expiry::after_days(&t, 1_767_225_600, 730);
        assert_eq!(e.at, 1_767_225_600 + 730 * DAY);
        assert_eq!(e.bucket, "acme#EXP#2028-01-01");
    }
}
