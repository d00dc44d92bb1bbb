//! Every key format of every table and index, in one place. Partition keys (GSI keys too) start
//! with the tenant id, so IAM `dynamodb:LeadingKeys` can fence a tenant and no query crosses
//! tenants by accident; the two platform-wide lookups (`RoutesTable`, the tenant list) hold no
//! personal data. Ids parsed at the edge cannot carry `#`, so the parts cannot run into each other.
//!
//! Index partitions that would otherwise take every write of a tenant (the month buckets of the
//! purge and the pending index of the sweeper) are spread over `SHARDS` partitions by a hash of
//! the item's own key; their readers query every shard. Raise `SHARDS`, never lower it: readers
//! query all shards up to it, so items written under a smaller count are still found.

use crate::domain::{Channel, TenantId};
use crate::privacy::retention::Category;

/// Partitions per month bucket and per pending index of one tenant.
pub const SHARDS: u8 = 8;

/// Joins key parts with one allocation of the exact size.
pub fn concat(parts: &[&str]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    parts.iter().for_each(|p| out.push_str(p));
    out
}

/// The shard of an item, from its key (FNV-1a: stable across processes and releases).
pub fn shard_of(key: &str) -> u8 {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    (hash % u64::from(SHARDS)) as u8
}

/// `prefix` followed by the shard digit of `key`.
pub fn with_shard(prefix: &str, key: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1);
    out.push_str(prefix);
    out.push(char::from(b'0' + shard_of(key)));
    out
}

// ------------------------------------------------------------------ MessagesTable

/// An inbound message, or the delivery record of an outbound one:
/// `<tenant>#MSG#<channel>#<message ref>`, the ref being the keyed hash of the provider's id
/// (`Pseudonymizer::message_ref`: Meta's ids carry phone numbers). A provider's retry finds what
/// its first delivery wrote; a status finds the message it names.
pub fn message_key(tenant: &TenantId, channel: Channel, message_ref: &str) -> String {
    concat(&[tenant.as_str(), "#MSG#", channel.as_str(), "#", message_ref])
}

/// `(tenant, channel, message ref)` of a `message_key`.
pub fn parse_message_key(key: &str) -> Option<(TenantId, Channel, &str)> {
    let mut parts = key.splitn(4, '#');
    let tenant = TenantId::parse(parts.next()?).ok()?;
    if parts.next()? != "MSG" {
        return None;
    }
    let channel = Channel::parse(parts.next()?)?;
    Some((tenant, channel, parts.next().filter(|id| !id.is_empty())?))
}

/// An outbound message under our own id: `<tenant>#OUT#<id>`, written before the provider is called.
pub fn outbound_key(tenant: &TenantId, id: &str) -> String {
    concat(&[tenant.as_str(), "#OUT#", id])
}

/// GSI `conversation`: one contact's messages, both directions.
pub fn conversation_pk(tenant: &TenantId, contact: &str) -> String {
    concat(&[tenant.as_str(), "#CONV#", contact])
}

/// GSI `conversation` sort key: time order; within one second an inbound message sorts before
/// the reply to it (`i` < `o`).
pub fn conversation_sk(at_secs: i64, inbound: bool, id: &str) -> String {
    let mut out = String::with_capacity(14 + id.len());
    push_padded(&mut out, at_secs, 11);
    out.push_str(if inbound { "#i#" } else { "#o#" });
    out.push_str(id);
    out
}

/// GSI `pending` partition: inbound messages not yet answered, in `SHARDS` partitions per tenant.
pub fn pending_pk(tenant: &TenantId, shard: u8) -> String {
    let mut out = String::with_capacity(tenant.as_str().len() + 7);
    out.push_str(tenant.as_str());
    out.push_str("#PEND#");
    out.push(char::from(b'0' + shard));
    out
}

pub fn pending_pk_of(tenant: &TenantId, key: &str) -> String {
    pending_pk(tenant, shard_of(key))
}

/// GSI `pending` sort key: when the sweeper should next look at the message (unix ms).
pub fn pending_sk(due_ms: i64) -> String {
    let mut out = String::with_capacity(13);
    push_padded(&mut out, due_ms, 13);
    out
}

// ------------------------------------------------------------------ expiry buckets (all tables)

/// GSI `expiry` partition: `<tenant>#EXP#<category>#<yyyy-mm>#` + shard, the month the item's
/// retention clock started; its sort key `exp_sk` is that start (unix seconds), so the purge
/// reads exactly the items past the cutoff, and one Query per month and shard catches up on a
/// long gap.
pub fn expiry_bucket_prefix(tenant: &TenantId, category: Category, start_secs: i64) -> String {
    let month = crate::clock::month_label(crate::clock::utc_month(start_secs));
    concat(&[tenant.as_str(), "#EXP#", category.as_str(), "#", &month, "#"])
}

/// One shard of one month's bucket (what the purge job and the tenant wipe query).
pub fn expiry_bucket(tenant: &TenantId, category: Category, month: crate::clock::Month, shard: u8) -> String {
    let label = crate::clock::month_label(month);
    let mut out = concat(&[tenant.as_str(), "#EXP#", category.as_str(), "#", &label, "#"]);
    out.push(char::from(b'0' + shard));
    out
}

// ------------------------------------------------------------------ ContactsTable

/// Everything about one contact of one tenant shares a partition: export and erasure are one
/// Query, and no query about a contact can reach another contact's items.
pub fn contact_pk(tenant: &TenantId, contact: &str) -> String {
    concat(&[tenant.as_str(), "#C#", contact])
}

pub const CONTACT_SK: &str = "PROFILE";
pub const CONVERSATION_SK_PREFIX: &str = "CONV#";
pub const CONSENT_SK_PREFIX: &str = "CONSENT#";
pub const LEAD_SK_PREFIX: &str = "LEAD#";
pub const APPOINTMENT_SK_PREFIX: &str = "APPT#";
/// A subject export of the contact (`EXPORT#<request id>`): how an erasure finds earlier exports.
pub const EXPORT_SK_PREFIX: &str = "EXPORT#";

/// The objects of one subject export in the data bucket.
pub fn export_prefix(tenant: &TenantId, request: &str) -> String {
    concat(&[tenant.as_str(), "/exports/", request, "/"])
}

pub fn conversation_item_sk(channel: Channel) -> String {
    concat(&[CONVERSATION_SK_PREFIX, channel.as_str()])
}

/// Consent history in time order.
pub fn consent_sk(at_ms: i64) -> String {
    let mut out = String::from(CONSENT_SK_PREFIX);
    push_padded(&mut out, at_ms, 13);
    out
}

pub fn lead_sk(id: &str) -> String {
    concat(&[LEAD_SK_PREFIX, id])
}

pub fn appointment_sk(id: &str) -> String {
    concat(&[APPOINTMENT_SK_PREFIX, id])
}

/// GSI `byTime` of ContactsTable: a tenant's leads of one stage, latest change last.
pub fn leads_by_stage_pk(tenant: &TenantId, stage: &str) -> String {
    concat(&[tenant.as_str(), "#LEAD#", stage])
}

/// GSI `byTime`: booked appointments starting in one UTC hour (`yyyy-mm-ddThh`), for reminders.
pub fn appointments_due_pk(tenant: &TenantId, hour: &str) -> String {
    concat(&[tenant.as_str(), "#DUE#", hour])
}

/// The UTC hour bucket (`yyyy-mm-ddThh`) of a unix time.
pub fn utc_hour(unix_secs: i64) -> String {
    let ts = jiff::Timestamp::from_second(unix_secs).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    ts.strftime("%Y-%m-%dT%H").to_string()
}

/// GSI `byTime` sort key: time, then id.
pub fn by_time_sk(at: i64, id: &str) -> String {
    let mut out = String::with_capacity(14 + id.len());
    push_padded(&mut out, at, 13);
    out.push('#');
    out.push_str(id);
    out
}

/// One bookable slot of one tenant-local day: taken at most once (conditional put).
pub fn slot_pk(tenant: &TenantId, local_date: &str) -> String {
    concat(&[tenant.as_str(), "#SLOT#", local_date])
}

// ------------------------------------------------------------------ AuditTable

/// A tenant's audit chain; the sort key is the sequence number (a number).
pub fn audit_pk(tenant: &TenantId) -> String {
    concat(&[tenant.as_str(), "#AUDIT"])
}

// ------------------------------------------------------------------ TenantsTable and RoutesTable

pub const PROFILE_SK: &str = "PROFILE";
pub const KB_PREFIX: &str = "KB#";
/// GSI `tenants` of TenantsTable: every profile under this one partition, so platform jobs list
/// tenants with a Query. Written only when a tenant's settings change.
pub const TENANT_LIST_PK: &str = "TENANTS";

/// Where the retention purge stands for one category of a tenant (`TenantsTable`, under the
/// tenant's partition).
pub const PURGE_CURSOR_PREFIX: &str = "PURGE#";

pub fn purge_cursor_sk(category: Category) -> String {
    concat(&[PURGE_CURSOR_PREFIX, category.as_str()])
}

pub fn knowledge_sk(index: usize) -> String {
    format!("{KB_PREFIX}{index:04}")
}

pub fn meta_route(phone_number_id: &str) -> String {
    concat(&["meta#", phone_number_id])
}

pub fn shopify_route(shop_domain: &str) -> String {
    concat(&["shopify#", &shop_domain.to_ascii_lowercase()])
}

/// Privacy requests live in their tenant's partition of `TenantsTable`, next to its profile.
pub const PRIVACY_REQUEST_PREFIX: &str = "PRIV#";

/// `PRIV#<request id>`: one Query on the prefix lists a tenant's requests.
pub fn privacy_request_sk(id: &crate::domain::RecordId) -> String {
    concat(&[PRIVACY_REQUEST_PREFIX, id.as_str()])
}

// ------------------------------------------------------------------ privacy (ContactsTable, bucket)

/// A contact's pointer to an identity index entry it owns (`ID#<kind>#<hash>`), so an
/// erasure's partition Query finds it (as it finds earlier exports, `EXPORT_SK_PREFIX`).
pub const IDENTITY_SK_PREFIX: &str = "ID#";

/// The identity index: `<tenant>#ID#<kind>#<keyed hash of the identifier>`, one item per
/// contact it names (`sk` = the contact's key). Finds a contact from an email or a shop's
/// customer id without the identifier in clear anywhere.
pub fn identity_pk(tenant: &TenantId, kind: &str, hash: &str) -> String {
    concat(&[tenant.as_str(), "#ID#", kind, "#", hash])
}

pub fn identity_ref_sk(kind: &str, hash: &str) -> String {
    concat(&[IDENTITY_SK_PREFIX, kind, "#", hash])
}

pub fn export_sk(request: &str) -> String {
    concat(&[EXPORT_SK_PREFIX, request])
}

/// What stays of an erased contact's consent: `<tenant>#ERASED#<keyed hash of the contact>`.
pub fn erased_pk(tenant: &TenantId, contact_hash: &str) -> String {
    concat(&[tenant.as_str(), "#ERASED#", contact_hash])
}

pub const ERASED_SK: &str = "CONSENT";

/// Every object of a tenant in the data bucket.
pub fn tenant_objects_prefix(tenant: &TenantId) -> String {
    concat(&[tenant.as_str(), "/"])
}

/// The media copied for one message (`media::media_key` names each object under it).
pub fn media_prefix(tenant: &TenantId, message_ref: &str) -> String {
    concat(&[tenant.as_str(), "/media/", message_ref, "/"])
}

/// `value` in decimal, zero-padded to `width` (sort keys compare as text).
fn push_padded(out: &mut String, value: i64, width: usize) {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(value.max(0));
    out.extend(std::iter::repeat_n('0', width.saturating_sub(digits.len())));
    out.push_str(digits);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(s: &str) -> TenantId {
        TenantId::parse(s).unwrap()
    }

    #[test]
    fn message_keys_round_trip_and_name_their_tenant_first() {
        let key = message_key(&t("acme"), Channel::Twilio, "SM1");
        assert_eq!(key, "acme#MSG#twilio#SM1");
        assert_eq!(parse_message_key(&key), Some((t("acme"), Channel::Twilio, "SM1")));
        assert_eq!(parse_message_key("acme#OUT#x"), None);
        assert_eq!(parse_message_key("acme#MSG#fax#1"), None);
    }

    #[test]
    fn sort_keys_order_by_time_and_put_a_question_before_its_answer() {
        let question = conversation_sk(1_767_225_600, true, "wamid.z");
        let answer = conversation_sk(1_767_225_600, false, "01a");
        let later = conversation_sk(1_767_225_601, true, "wamid.a");
        assert!(question < answer && answer < later);
        assert!(pending_sk(999) < pending_sk(1_000));
        assert!(consent_sk(5) < consent_sk(40));
        assert_eq!(by_time_sk(7, "x"), "0000000000007#x");
    }

    #[test]
    fn day_and_hour_buckets() {
        let january = crate::clock::utc_month(1_767_225_600);
        assert_eq!(expiry_bucket(&t("acme"), Category::Leads, january, 3), "acme#EXP#leads#2026-01#3");
        assert_eq!(expiry_bucket_prefix(&t("acme"), Category::Leads, 1_767_225_600), "acme#EXP#leads#2026-01#");
        assert_eq!(utc_hour(1_767_229_200), "2026-01-01T01");
        assert_eq!(pending_pk(&t("acme"), 7), "acme#PEND#7");
        assert_eq!(knowledge_sk(3), "KB#0003");
    }

    proptest! {
        #[test]
        fn shards_are_stable_and_in_range(key in "\\PC{0,80}") {
            let s = shard_of(&key);
            prop_assert!(s < SHARDS);
            prop_assert_eq!(s, shard_of(&key));
            let bucket = with_shard("p#", &key);
            prop_assert_eq!(bucket.len(), 3);
        }

        #[test]
        fn parsed_message_keys_give_back_their_parts(id in "[!-\"$-~]{1,40}") {
            let key = message_key(&t("acme-1"), Channel::Meta, &id);
            prop_assert_eq!(parse_message_key(&key), Some((t("acme-1"), Channel::Meta, id.as_str())));
        }
    }

    #[test]
    fn shards_spread_keys() {
        let mut counts = [0u32; SHARDS as usize];
        for i in 0..8_000 {
            counts[shard_of(&format!("acme#MSG#meta#wamid.{i}")) as usize] += 1;
        }
        assert!(counts.iter().all(|c| (800..1_200).contains(c)), "{counts:?}");
    }
}
