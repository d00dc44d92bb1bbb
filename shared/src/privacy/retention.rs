//! How long each category of personal data is kept, per tenant (DESIGN.md defaults), and the
//! stamps every item carries: a day bucket that the purge job queries, keyed by the day the
//! item's retention clock *started* (so the tenant's current setting decides, whether it was
//! shortened or lengthened after the item was written), and a DynamoDB TTL attribute as a lazy
//! backstop, set a grace period past the retention at write time.

use serde::{Deserialize, Serialize};

use crate::domain::TenantId;
use crate::store::keys;

pub const DAY: i64 = 86_400;

/// The TTL backstop fires this long after the retention at write time: the purge job is what
/// deletes on time; the grace leaves it room to re-stamp items when a tenant lengthens a
/// retention, so the backstop never deletes earlier than the current setting.
pub const TTL_GRACE_DAYS: i64 = 7;

/// The longest retention a tenant may set.
pub const MAX_RETENTION_DAYS: i64 = 3650;

/// The TTL backstop of an audit entry written at `now_secs`. The purge trims the chain at the
/// tenant's audit retention after anchoring where the kept part starts; a TTL firing first would
/// cut the chain where no anchor vouches for it, so the backstop lies beyond any setting.
pub fn audit_ttl(now_secs: i64) -> i64 {
    now_secs + (MAX_RETENTION_DAYS + TTL_GRACE_DAYS) * DAY
}

/// Retention per category, in days. Stored profiles are read with it too, so it accepts fields it
/// does not know; the tenants file refuses them on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
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
        if all.iter().any(|d| *d == 0 || i64::from(*d) > MAX_RETENTION_DAYS) {
            return Err("retention_days must be between 1 and 3650");
        }
        Ok(())
    }

    pub fn days(&self, category: Category) -> u32 {
        match category {
            Category::Messages => self.messages,
            Category::Leads => self.leads,
            Category::Appointments => self.appointments,
            Category::Logs => self.logs,
            Category::IdempotencyKeys => self.idempotency_keys,
            Category::Audit => self.audit,
            Category::Exports => self.exports,
        }
    }
}

/// A retention category: what the purge job deletes on one tenant setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Messages, their media, and the contact, conversation and consent records they keep alive.
    Messages,
    Leads,
    /// Appointments and the slots they hold.
    Appointments,
    Logs,
    /// Delivery-status stubs, webhook deduplication records.
    IdempotencyKeys,
    Audit,
    Exports,
}

impl Category {
    pub const ALL: [Category; 7] = [
        Self::Messages,
        Self::Leads,
        Self::Appointments,
        Self::Logs,
        Self::IdempotencyKeys,
        Self::Audit,
        Self::Exports,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Messages => "messages",
            Self::Leads => "leads",
            Self::Appointments => "appointments",
            Self::Logs => "logs",
            Self::IdempotencyKeys => "idempotency_keys",
            Self::Audit => "audit",
            Self::Exports => "exports",
        }
    }
}

/// The retention stamps of one item whose retention clock starts at `start` (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    /// Unix seconds; the DynamoDB TTL attribute (backstop).
    pub ttl: i64,
    /// `<tenant>#EXP#<category>#<start day>#` without its shard: the item's key picks the shard.
    pub bucket_prefix: String,
}

impl Expiry {
    pub fn new(tenant: &TenantId, category: Category, start: i64, retention: &RetentionDays) -> Self {
        let days = i64::from(retention.days(category)) + TTL_GRACE_DAYS;
        Self { ttl: start + days * DAY, bucket_prefix: keys::expiry_bucket_prefix(tenant, category, start) }
    }

    /// The bucket of the item keyed `key`.
    pub fn bucket(&self, key: &str) -> String {
        keys::with_shard(&self.bucket_prefix, key)
    }
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
        assert_eq!(d.days(Category::Audit), 365);
    }

    #[test]
    fn the_bucket_is_the_start_day_and_the_ttl_leaves_a_grace() {
        let t = TenantId::parse("acme").unwrap();
        // 2026-01-01T00:00:00Z
        let e = Expiry::new(&t, Category::Messages, 1_767_225_600, &RetentionDays::default());
        assert_eq!(e.ttl, 1_767_225_600 + (730 + TTL_GRACE_DAYS) * DAY);
        assert!(e.bucket_prefix.starts_with("acme#EXP#messages#2026-01-01#"), "{}", e.bucket_prefix);
        let bucket = e.bucket("acme#MSG#meta#wamid.1");
        assert_eq!(bucket, e.bucket("acme#MSG#meta#wamid.1"), "the shard follows the key");
        assert!(bucket.len() == e.bucket_prefix.len() + 1);
    }
}
