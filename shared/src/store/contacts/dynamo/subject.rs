//! Everything about one contact, for privacy requests: their whole partition read and parsed
//! (one paged Query), the identity index entries written with their leads, the record of an
//! export, and the tombstone an erasure leaves.

use std::fmt;

use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use serde::{Deserialize, Serialize};

use super::{AppointmentItem, ConsentItem, DynamoContacts, LeadItem, build, contact_of, conversation_of};
use crate::domain::{Appointment, ConsentChange, Contact, ContactId, Conversation, Lead, TenantId};
use crate::privacy::identity::{IdentityKind, IdentityRef};
use crate::privacy::{Expiry, Pseudonymizer};
use crate::store::{Item, StoreError, condition_failed, from_item, get_s, keys, query_partition, to_item};

/// A contact's partition, parsed. `Debug` shows counts only.
#[derive(Clone, Default)]
pub struct ContactRecords {
    pub contact: Option<Contact>,
    pub conversations: Vec<Conversation>,
    /// Oldest first.
    pub consent: Vec<ConsentChange>,
    pub leads: Vec<Lead>,
    pub appointments: Vec<Appointment>,
    pub exports: Vec<ExportRecord>,
    pub identities: Vec<IdentityRef>,
    /// The sort key of every item of the partition, whatever it is (what erasure deletes).
    pub sort_keys: Vec<String>,
}

impl fmt::Debug for ContactRecords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContactRecords")
            .field("contact", &self.contact.is_some())
            .field("conversations", &self.conversations.len())
            .field("consent", &self.consent.len())
            .field("leads", &self.leads.len())
            .field("appointments", &self.appointments.len())
            .field("exports", &self.exports.len())
            .field("items", &self.sort_keys.len())
            .finish()
    }
}

/// An export made for the contact: its objects, so a later erasure deletes them too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRecord {
    pub request: String,
    pub objects: Vec<String>,
    pub created_at_ms: i64,
}

#[derive(Serialize, Deserialize)]
struct ExportItem {
    pk: String,
    sk: String,
    #[serde(flatten)]
    record: ExportRecord,
    expires_at: i64,
    exp_pk: String,
    exp_sk: i64,
}

#[derive(Serialize, Deserialize)]
struct IdentityItem {
    pk: String,
    sk: String,
    kind: String,
    expires_at: i64,
    exp_pk: String,
    exp_sk: i64,
}

#[derive(Serialize, Deserialize)]
struct TombstoneItem {
    pk: String,
    sk: String,
    erased_at_ms: i64,
    opted_out: bool,
    expires_at: i64,
    exp_pk: String,
    exp_sk: i64,
}

/// The identifiers a lead adds to what the contact's key says: its email, and a phone
/// number other than the contact's own.
pub(super) fn lead_identities(pseudonyms: &Pseudonymizer, tenant: &TenantId, lead: &Lead) -> Vec<IdentityRef> {
    let email = lead.email.as_deref().and_then(|e| IdentityRef::of(pseudonyms, tenant, IdentityKind::Email, e));
    let phone = lead
        .phone
        .as_deref()
        .filter(|p| *p != lead.contact.key())
        .and_then(|p| IdentityRef::of(pseudonyms, tenant, IdentityKind::Phone, p));
    email.into_iter().chain(phone).collect()
}

impl DynamoContacts {
    /// The lead, its identity index entries and the contact's pointers to them, in one write:
    /// an email on record is always findable.
    pub(super) async fn save_lead_with_identities(
        &self,
        tenant: &TenantId,
        lead: &Lead,
        lead_item: Item,
        identities: &[IdentityRef],
        expiry: &Expiry,
    ) -> Result<(), StoreError> {
        let contact_key = lead.contact.key();
        let contact_pk = keys::contact_pk(tenant, &contact_key);
        let put = |item: Item| {
            build(Put::builder().table_name(&self.table).set_item(Some(item)).build())
                .map(|p| TransactWriteItem::builder().put(p).build())
        };
        let mut request = self.client.transact_write_items().transact_items(put(lead_item)?);
        for identity in identities {
            let index_pk = identity.index_pk(tenant);
            let entry = IdentityItem {
                exp_pk: expiry.bucket(&format!("{index_pk}#{contact_key}")),
                exp_sk: expiry.start,
                pk: index_pk,
                sk: contact_key.clone(),
                kind: identity.kind.as_str().to_owned(),
                expires_at: expiry.ttl,
            };
            let pointer = IdentityItem {
                exp_pk: expiry.bucket(&format!("{contact_pk}#{}", identity.ref_sk())),
                exp_sk: expiry.start,
                pk: contact_pk.clone(),
                sk: identity.ref_sk(),
                kind: identity.kind.as_str().to_owned(),
                expires_at: expiry.ttl,
            };
            request = request.transact_items(put(to_item(&entry)?)?).transact_items(put(to_item(&pointer)?)?);
        }
        request.send().await.map_err(|e| StoreError::aws("TransactWriteItems lead", e))?;
        Ok(())
    }

    /// Every item of the contact's partition, parsed (one paged, consistent Query).
    pub async fn records_of(&self, tenant: &TenantId, contact: &ContactId) -> Result<ContactRecords, StoreError> {
        let pk = keys::contact_pk(tenant, &contact.key());
        let items = query_partition(&self.client, &self.table, &pk, None, None, "Query contact partition").await?;
        let mut records = ContactRecords::default();
        for item in items {
            let sk = get_s(&item, "sk").unwrap_or_default().to_owned();
            if sk == keys::CONTACT_SK {
                records.contact = Some(contact_of(&item)?);
            } else if sk.starts_with(keys::CONVERSATION_SK_PREFIX) {
                records.conversations.push(conversation_of(&item)?);
            } else if sk.starts_with(keys::CONSENT_SK_PREFIX) {
                let c: ConsentItem = from_item("consent", item)?;
                records.consent.push(ConsentChange { consent: c.consent, at_ms: c.at_ms, source: c.source });
            } else if sk.starts_with(keys::LEAD_SK_PREFIX) {
                records.leads.push(from_item::<LeadItem>("lead", item)?.into());
            } else if sk.starts_with(keys::APPOINTMENT_SK_PREFIX) {
                records.appointments.push(from_item::<AppointmentItem>("appointment", item)?.into());
            } else if sk.starts_with(keys::EXPORT_SK_PREFIX) {
                records.exports.push(from_item::<ExportItem>("export", item)?.record);
            } else if let Some(identity) = IdentityRef::parse_ref_sk(&sk) {
                records.identities.push(identity);
            }
            records.sort_keys.push(sk);
        }
        Ok(records)
    }

    /// Records an export in the contact's partition (an erasure deletes its objects).
    pub async fn record_export(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
        record: &ExportRecord,
        expiry: &Expiry,
    ) -> Result<(), StoreError> {
        let pk = keys::contact_pk(tenant, &contact.key());
        let sk = keys::export_sk(&record.request);
        let item = ExportItem {
            exp_pk: expiry.bucket(&format!("{pk}#{sk}")),
            exp_sk: expiry.start,
            pk,
            sk,
            record: record.clone(),
            expires_at: expiry.ttl,
        };
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&item)?))
            .send()
            .await
            .map_err(|e| StoreError::aws("PutItem export", e))?;
        Ok(())
    }

    /// What stays of an erased contact's consent history: the keyed hash of the contact, when,
    /// and whether they had opted out. Written once: a retried erasure (which may find the
    /// history already gone) keeps what the first attempt recorded.
    pub async fn record_erasure(
        &self,
        tenant: &TenantId,
        contact_hash: &str,
        erased_at_ms: i64,
        opted_out: bool,
        expiry: &Expiry,
    ) -> Result<(), StoreError> {
        let pk = keys::erased_pk(tenant, contact_hash);
        let item = TombstoneItem {
            exp_pk: expiry.bucket(&pk),
            exp_sk: expiry.start,
            pk,
            sk: keys::ERASED_SK.to_owned(),
            erased_at_ms,
            opted_out,
            expires_at: expiry.ttl,
        };
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&item)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Ok(()),
            Err(e) => Err(StoreError::aws("PutItem erasure tombstone", e)),
        }
    }

    /// The tombstone of an erased contact: `(erased_at_ms, opted_out)`.
    pub async fn erasure_of(&self, tenant: &TenantId, contact_hash: &str) -> Result<Option<(i64, bool)>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", crate::store::s(keys::erased_pk(tenant, contact_hash)))
            .key("sk", crate::store::s(keys::ERASED_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::aws("GetItem erasure tombstone", e))?;
        out.item.map(|i| from_item::<TombstoneItem>("tombstone", i).map(|t| (t.erased_at_ms, t.opted_out))).transpose()
    }

    pub fn client(&self) -> &aws_sdk_dynamodb::Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}
