//! Identifiers parsed at the edge: past this module an id is known to be well-formed, so keys
//! built from it cannot collide across tenants or smuggle a key separator.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why an identifier was refused. Carries no input, so it can be logged or returned as is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidId {
    #[error("tenant id must be 1-40 characters of a-z, 0-9 and '-', starting with a letter or digit")]
    Tenant,
    #[error("phone number must be E.164: '+' and 8 to 15 digits")]
    Phone,
    #[error("business-scoped user id must be 1-128 printable characters without '#'")]
    BusinessScopedUser,
    #[error("provider message id must be 1-256 printable characters without '#'")]
    ProviderMessage,
    #[error("record id must be 1-64 characters of A-Z, a-z, 0-9, '-', '_' and '.'")]
    Record,
}

/// The conversions serde goes through for an id that is a checked string: in by its `parse`,
/// out as the string it holds.
macro_rules! string_conversions {
    ($($id:ident),+) => {$(
        impl TryFrom<String> for $id {
            type Error = InvalidId;
            fn try_from(s: String) -> Result<Self, InvalidId> {
                Self::parse(&s)
            }
        }

        impl From<$id> for String {
            fn from(id: $id) -> String {
                id.0
            }
        }
    )+};
}

string_conversions!(TenantId, E164, ProviderMessageId, RecordId);

/// A tenant (a business) of Concierge. Lower-case slug; every DynamoDB partition key starts with it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    pub fn parse(s: &str) -> Result<Self, InvalidId> {
        let ok = (1..=40).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-');
        if ok { Ok(Self(s.to_owned())) } else { Err(InvalidId::Tenant) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An E.164 phone number, stored with its leading '+'. Personal data: `Debug` hides it.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct E164(String);

impl E164 {
    /// Accepts `+14155550100`, Meta's `wa_id` form `14155550100`, and Twilio's
    /// `whatsapp:+14155550100`.
    pub fn parse(s: &str) -> Result<Self, InvalidId> {
        let s = s.strip_prefix("whatsapp:").unwrap_or(s);
        let digits = s.strip_prefix('+').unwrap_or(s);
        let ok =
            (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0');
        if !ok {
            return Err(InvalidId::Phone);
        }
        let mut e164 = String::with_capacity(digits.len() + 1);
        e164.push('+');
        e164.push_str(digits);
        Ok(Self(e164))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("E164(..)")
    }
}

/// Who wrote to a tenant. Keyed on the WhatsApp id (the phone number) and, where Meta withholds
/// it, on the business-scoped user id, so one person keeps one key per tenant. Personal data:
/// `Debug` hides it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum ContactId {
    Phone(E164),
    BusinessScoped(String),
}

const BSUID_PREFIX: &str = "bsuid:";

impl ContactId {
    pub fn business_scoped(user_id: &str) -> Result<Self, InvalidId> {
        let ok = (1..=128).contains(&user_id.len()) && user_id.bytes().all(|b| b.is_ascii_graphic() && b != b'#');
        if ok { Ok(Self::BusinessScoped(user_id.to_owned())) } else { Err(InvalidId::BusinessScopedUser) }
    }

    /// Prefer the phone number; fall back to the business-scoped id (DESIGN.md, Data).
    pub fn from_parts(wa_id: Option<&str>, user_id: Option<&str>) -> Result<Self, InvalidId> {
        match (wa_id.filter(|s| !s.is_empty()), user_id.filter(|s| !s.is_empty())) {
            (Some(phone), _) => E164::parse(phone).map(Self::Phone),
            (None, Some(user)) => Self::business_scoped(user),
            (None, None) => Err(InvalidId::Phone),
        }
    }

    /// The stable string used in keys: `+14155550100` or `bsuid:<id>`.
    pub fn key(&self) -> String {
        match self {
            Self::Phone(p) => p.0.clone(),
            Self::BusinessScoped(u) => format!("{BSUID_PREFIX}{u}"),
        }
    }

    pub fn parse_key(key: &str) -> Result<Self, InvalidId> {
        match key.strip_prefix(BSUID_PREFIX) {
            Some(user) => Self::business_scoped(user),
            None => E164::parse(key).map(Self::Phone),
        }
    }
}

impl fmt::Debug for ContactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Phone(_) => "ContactId::Phone(..)",
            Self::BusinessScoped(_) => "ContactId::BusinessScoped(..)",
        })
    }
}

impl Serialize for ContactId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.key())
    }
}

impl<'de> Deserialize<'de> for ContactId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let key = String::deserialize(d)?;
        Self::parse_key(&key).map_err(serde::de::Error::custom)
    }
}

/// The id a provider gave a message (`wamid.…` from Meta, `SM…`/`MM…` from Twilio). Meta's
/// carry the sender's phone number (base64 inside the id): `Debug` hides it, and keys hold a
/// keyed hash of it (`Pseudonymizer::message_ref`).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProviderMessageId(String);

impl fmt::Debug for ProviderMessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProviderMessageId(..)")
    }
}

impl ProviderMessageId {
    pub fn parse(s: &str) -> Result<Self, InvalidId> {
        let ok = (1..=256).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic() && b != b'#');
        if ok { Ok(Self(s.to_owned())) } else { Err(InvalidId::ProviderMessage) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An id we give a record (an outbound message, a lead, an appointment): unique, and safe in keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RecordId(String);

impl RecordId {
    /// A fresh id, unique across processes (see `crypto::unique_id`).
    pub fn generate() -> Self {
        Self(crate::crypto::unique_id())
    }

    pub fn parse(s: &str) -> Result<Self, InvalidId> {
        let ok = (1..=64).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if ok { Ok(Self(s.to_owned())) } else { Err(InvalidId::Record) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn phone_forms_normalise_to_one_key() {
        let a = E164::parse("+14155550100").unwrap();
        assert_eq!(E164::parse("14155550100").unwrap(), a);
        assert_eq!(E164::parse("whatsapp:+14155550100").unwrap(), a);
        assert_eq!(a.as_str(), "+14155550100");
    }

    #[test]
    fn bad_phones_are_refused() {
        for s in ["", "+", "+0123456789", "+1415555", "+1234567890123456", "+1415 555 0100", "abc"] {
            assert_eq!(E164::parse(s), Err(InvalidId::Phone), "{s:?}");
        }
    }

    #[test]
    fn contact_prefers_phone_then_business_scoped_id() {
        let both = ContactId::from_parts(Some("4915112345678"), Some("US.1234")).unwrap();
        assert_eq!(both.key(), "+4915112345678");
        let withheld = ContactId::from_parts(None, Some("US.1234")).unwrap();
        assert_eq!(withheld.key(), "bsuid:US.1234");
        assert_eq!(ContactId::parse_key(&withheld.key()).unwrap(), withheld);
        assert!(ContactId::from_parts(None, None).is_err());
    }

    #[test]
    fn debug_output_never_shows_a_phone_number_or_user_id() {
        let phone = ContactId::parse_key("+4915112345678").unwrap();
        let bsuid = ContactId::parse_key("bsuid:DE.998877").unwrap();
        // A Meta id as Meta makes them: base64 over the sender's number.
        let wamid =
            ProviderMessageId::parse("wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFjNFQjBEMjc3RTY3QjVGQkYwNjFBAA==").unwrap();
        let printed = format!("{phone:?} {bsuid:?} {:?} {wamid:?}", E164::parse("+4915112345678").unwrap());
        assert!(!printed.contains("4915112345678") && !printed.contains("998877"), "{printed}");
        assert!(!printed.contains("HBgN"), "{printed}");
    }

    #[test]
    fn generated_record_ids_parse_and_differ() {
        let a = RecordId::generate();
        assert_eq!(RecordId::parse(a.as_str()).unwrap(), a);
        assert_ne!(a, RecordId::generate());
        assert!(RecordId::parse("a#b").is_err());
    }

    #[test]
    fn tenant_ids_cannot_carry_separators() {
        assert!(TenantId::parse("acme-dental").is_ok());
        for s in ["", "Acme", "a#b", "-a", "a b", &"x".repeat(41)] {
            assert!(TenantId::parse(s).is_err(), "{s:?}");
        }
    }

    proptest! {
        #[test]
        fn parsed_tenant_ids_round_trip_and_never_hold_a_hash(s in "\\PC{0,50}") {
            if let Ok(t) = TenantId::parse(&s) {
                prop_assert!(!t.as_str().contains('#'));
                prop_assert_eq!(TenantId::parse(t.as_str()).unwrap(), t);
            }
        }

        #[test]
        fn parsed_phones_are_canonical(s in "(whatsapp:)?\\+?[0-9]{6,17}") {
            if let Ok(p) = E164::parse(&s) {
                prop_assert!(p.as_str().starts_with('+'));
                prop_assert_eq!(E164::parse(p.as_str()).unwrap(), p);
            }
        }
    }
}
