//! Who a privacy request is about: a phone number (as the shop or operator gave it), an email,
//! a shop's customer id. A phone number in E.164 *is* a contact's key; emails and customer ids
//! are found through the identity index (`keys::identity_pk`): items filed under a keyed hash
//! of the identifier, written with the lead that recorded it, erased with the contact.

use std::fmt;

use aws_sdk_dynamodb::Client;

use crate::domain::{ContactId, TenantId};
use crate::privacy::Pseudonymizer;
use crate::store::{StoreError, get_s, keys, query_partition};

/// A kind of identifier the index files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdentityKind {
    Email,
    /// A phone number other than the contact's own (a lead may give another).
    Phone,
    ShopifyCustomer,
}

impl IdentityKind {
    pub const ALL: [IdentityKind; 3] = [Self::Email, Self::Phone, Self::ShopifyCustomer];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Phone => "phone",
            Self::ShopifyCustomer => "shopify",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The form an identifier is hashed in, so `Jana@Example.com ` and `jana@example.com` meet.
    pub fn normalise(self, value: &str) -> Option<String> {
        let value = value.trim();
        let normal = match self {
            Self::Email => value.to_lowercase(),
            Self::Phone => crate::domain::E164::parse(value).ok()?.as_str().to_owned(),
            Self::ShopifyCustomer => value.to_owned(),
        };
        (!normal.is_empty()).then_some(normal)
    }
}

/// One identifier of a contact, as the index holds it: its kind and keyed hash.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdentityRef {
    pub kind: IdentityKind,
    pub hash: String,
}

impl IdentityRef {
    pub fn of(pseudonyms: &Pseudonymizer, tenant: &TenantId, kind: IdentityKind, value: &str) -> Option<Self> {
        let normal = kind.normalise(value)?;
        Some(Self { kind, hash: pseudonyms.identity(tenant, kind.as_str(), &normal) })
    }

    /// The `ID#<kind>#<hash>` sort key of the contact's own pointer to its index item.
    pub fn parse_ref_sk(sk: &str) -> Option<Self> {
        let (kind, hash) = sk.strip_prefix(keys::IDENTITY_SK_PREFIX)?.split_once('#')?;
        Some(Self { kind: IdentityKind::parse(kind)?, hash: hash.to_owned() })
    }

    pub fn index_pk(&self, tenant: &TenantId) -> String {
        keys::identity_pk(tenant, self.kind.as_str(), &self.hash)
    }

    pub fn ref_sk(&self) -> String {
        keys::identity_ref_sk(self.kind.as_str(), &self.hash)
    }
}

/// The identifiers a request names. Personal data: `Debug` shows which are present, not them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SubjectIds {
    /// As given (any common format; read in the tenant's country).
    pub phone: Option<String>,
    pub email: Option<String>,
    pub shopify_customer_id: Option<String>,
    /// A contact key (`ContactId::key`) already known, e.g. from the operator's `--contact`.
    pub contact: Option<String>,
}

impl fmt::Debug for SubjectIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubjectIds")
            .field("phone", &self.phone.is_some())
            .field("email", &self.email.is_some())
            .field("shopify_customer_id", &self.shopify_customer_id.is_some())
            .field("contact", &self.contact.is_some())
            .finish()
    }
}

/// The contacts a request is about, and the keyed hash its audit entry names.
#[derive(Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Distinct, in key order.
    pub contacts: Vec<ContactId>,
    pub subject_hash: String,
}

impl fmt::Debug for Resolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolved")
            .field("contacts", &self.contacts.len())
            .field("subject_hash", &self.subject_hash)
            .finish()
    }
}

/// Finds the contacts of a subject: one Query per indexed identifier, nothing else.
#[derive(Debug, Clone)]
pub struct IdentityLookup {
    client: Client,
    contacts_table: String,
    pseudonyms: Pseudonymizer,
}

impl IdentityLookup {
    pub fn new(client: Client, contacts_table: String, pseudonyms: Pseudonymizer) -> Self {
        Self { client, contacts_table, pseudonyms }
    }

    pub async fn resolve(
        &self,
        tenant: &TenantId,
        default_country: Option<&str>,
        ids: &SubjectIds,
    ) -> Result<Resolved, StoreError> {
        let mut contacts = Vec::new();
        let mut lookups = Vec::new();
        if let Some(key) = &ids.contact {
            contacts.extend(ContactId::parse_key(key).ok());
        }
        if let Some(phone) = ids.phone.as_deref() {
            // The phone's own conversation (its contact key), and any lead that gave it.
            if let Some(e164) = phone_key(phone, default_country) {
                contacts.extend(ContactId::parse_key(&e164).ok());
                lookups.extend(IdentityRef::of(&self.pseudonyms, tenant, IdentityKind::Phone, &e164));
            }
        }
        if let Some(email) = ids.email.as_deref() {
            lookups.extend(IdentityRef::of(&self.pseudonyms, tenant, IdentityKind::Email, email));
        }
        if let Some(id) = ids.shopify_customer_id.as_deref() {
            lookups.extend(IdentityRef::of(&self.pseudonyms, tenant, IdentityKind::ShopifyCustomer, id));
        }
        for lookup in &lookups {
            let items = query_partition(
                &self.client,
                &self.contacts_table,
                &lookup.index_pk(tenant),
                None,
                Some("sk"),
                "Query identity index",
            )
            .await?;
            contacts.extend(items.iter().filter_map(|i| ContactId::parse_key(get_s(i, "sk")?).ok()));
        }
        let mut keyed: Vec<(String, ContactId)> = contacts.into_iter().map(|c| (c.key(), c)).collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        keyed.dedup_by(|a, b| a.0 == b.0);
        let subject_hash = match keyed.first() {
            Some((key, _)) => self.pseudonyms.contact_key(tenant, key),
            None => self.pseudonyms.opaque(&opaque_subject(tenant, ids)),
        };
        Ok(Resolved { contacts: keyed.into_iter().map(|(_, c)| c).collect(), subject_hash })
    }
}

/// A phone number in any common format, read in the tenant's country, as the E.164 key a
/// contact of that number has. Not checked against numbering plans: a lookup only has to meet
/// the key WhatsApp gave the contact, and refusing an odd but real number would miss them.
pub fn phone_key(text: &str, default_country: Option<&str>) -> Option<String> {
    let number = crate::tenants::settings::read_phone(text, default_country)?;
    let e164 = number.format().mode(phonenumber::Mode::E164).to_string();
    crate::domain::E164::parse(&e164).ok().map(|p| p.as_str().to_owned())
}

/// What an unmatched subject is hashed from (only ever hashed).
fn opaque_subject(tenant: &TenantId, ids: &SubjectIds) -> String {
    let part = |v: &Option<String>| v.as_deref().map(str::trim).unwrap_or_default().to_lowercase();
    format!("{tenant}#{}#{}#{}", part(&ids.phone), part(&ids.email), part(&ids.shopify_customer_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    #[test]
    fn identifiers_are_hashed_in_their_normal_form_per_tenant_and_kind() {
        let p = Pseudonymizer::new(b"k");
        let a = IdentityRef::of(&p, &t(), IdentityKind::Email, " Jana@Example.com").unwrap();
        let b = IdentityRef::of(&p, &t(), IdentityKind::Email, "jana@example.com").unwrap();
        assert_eq!(a, b);
        let other = TenantId::parse("bella").unwrap();
        assert_ne!(a, IdentityRef::of(&p, &other, IdentityKind::Email, "jana@example.com").unwrap());
        assert_ne!(a.hash, IdentityRef::of(&p, &t(), IdentityKind::ShopifyCustomer, "jana@example.com").unwrap().hash);
        assert!(!a.index_pk(&t()).contains("jana"));
        assert_eq!(IdentityRef::parse_ref_sk(&a.ref_sk()), Some(a));
        assert!(IdentityRef::of(&p, &t(), IdentityKind::Phone, "not a number").is_none());
        assert!(IdentityRef::of(&p, &t(), IdentityKind::Email, "  ").is_none());
    }

    #[test]
    fn phone_numbers_meet_the_contact_key_in_any_common_format() {
        for given in ["+49 151 12345678", "+4915112345678", "0049 151 1234 5678", "+49 (151) 123-456-78"] {
            assert_eq!(phone_key(given, Some("DE")).as_deref(), Some("+4915112345678"), "{given}");
        }
        assert_eq!(phone_key("0151 12345678", Some("DE")).as_deref(), Some("+4915112345678"));
        assert_eq!(phone_key("(555) 625-1199", Some("US")).as_deref(), Some("+15556251199"));
        assert_eq!(phone_key("+4915199887766", Some("US")).as_deref(), Some("+4915199887766"));
        assert_eq!(phone_key("+49 151 12345678", None).as_deref(), Some("+4915112345678"));
        assert_eq!(phone_key("not a number", Some("DE")), None);
    }

    #[test]
    fn debug_output_shows_no_identifier() {
        let ids = SubjectIds {
            phone: Some("+4915112345678".into()),
            email: Some("jana@example.com".into()),
            ..SubjectIds::default()
        };
        let printed = format!("{ids:?}");
        assert!(!printed.contains("4915112345678") && !printed.contains("jana"), "{printed}");
    }
}
