//! Erasure of one contact: their messages either way (with the delivery records and unsent
//! answers that hang off them) and the media copied for them, their earlier exports, their
//! identity index entries, appointments and the slots those hold, leads, conversations and the
//! contact record; the consent history becomes one tombstone holding a keyed hash of the
//! contact, the erasure time and whether they had opted out.
//!
//! Requests grow with the contact's items only: one paged Query of their partition, one paged
//! Query of their conversation, batch deletes of 25, object deletes of up to 1,000, and one
//! listing per message that carried media. Whatever points at something is deleted after what
//! it points at (media before its message, export objects before the export's record, slots
//! before the appointments naming them), and the identity index entries go last, with their
//! pointers in one transaction (so a retry of a request that named the contact by email still
//! finds them): an erasure that stops anywhere and runs again finishes the job.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{Delete, TransactWriteItem};

use super::Pseudonymizer;
use super::identity::{IdentityKind, IdentityRef};
use super::retention::{Category, RetentionDays};
use crate::domain::{AppointmentStatus, Consent, ContactId, Content, TenantId};
use crate::privacy::Expiry;
use crate::store::batch::delete_keys;
use crate::store::contacts::DynamoContacts;
use crate::store::messages::{ConversationEntry, DynamoMessageLog};
use crate::store::objects::{delete_objects, delete_prefix};
use crate::store::{Item, StoreError, keys, table_key};

/// Index entries (each with its pointer) per transaction (DynamoDB takes 100 items).
const IDENTITIES_PER_TRANSACTION: usize = 50;

#[derive(Debug, Clone)]
pub struct Eraser {
    pub messages: DynamoMessageLog,
    pub contacts: DynamoContacts,
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
    pub pseudonyms: Pseudonymizer,
}

impl Eraser {
    /// Erases each of `contacts`; returns what went, per kind of item.
    pub async fn erase(
        &self,
        tenant: &TenantId,
        contacts: &[ContactId],
        now_ms: i64,
        retention: &RetentionDays,
    ) -> Result<BTreeMap<String, u64>, StoreError> {
        let mut counts = BTreeMap::new();
        for contact in contacts {
            self.erase_one(tenant, contact, now_ms, retention, &mut counts).await?;
        }
        Ok(counts)
    }

    async fn erase_one(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
        now_ms: i64,
        retention: &RetentionDays,
        counts: &mut BTreeMap<String, u64>,
    ) -> Result<(), StoreError> {
        let mut add = |what: &str, n: usize| *counts.entry(what.to_owned()).or_default() += n as u64;
        let records = self.contacts.records_of(tenant, contact).await?;

        // The tombstone first, whenever there is anything of the contact: a retry may find the
        // history already gone, keeps this one, and knows from it that the contact existed.
        let first_page = self.messages.conversation_page(tenant, contact, None).await?;
        if !records.sort_keys.is_empty() || !first_page.messages.is_empty() {
            let opted_out = records.consent.last().map(|c| c.consent).or(records.contact.as_ref().map(|c| c.consent))
                == Some(Consent::OptedOut);
            let expiry = Expiry::new(tenant, Category::Audit, now_ms / 1000, retention);
            let hash = self.pseudonyms.contact(tenant, contact);
            self.contacts.record_erasure(tenant, &hash, now_ms, opted_out, &expiry).await?;
        }

        // Messages, page by page: their media, then the items.
        let mut messages = 0;
        let mut next_page = Some(first_page);
        while let Some(page) = next_page.take() {
            let mut doomed: Vec<Item> = Vec::with_capacity(page.messages.len() * 2);
            for m in &page.messages {
                if let Some(ConversationEntry::Inbound(inbound)) = &m.entry
                    && let Content::Media { attachments, .. } = &inbound.content
                {
                    // Everything copied for the message, referenced or not (a copy may have
                    // been stored by an attempt that died before recording it).
                    let message_ref = keys::parse_message_key(&m.key).map_or("", |(_, _, r)| r);
                    if !message_ref.is_empty() {
                        let prefix = keys::media_prefix(tenant, message_ref);
                        add("media_objects", delete_prefix(&self.s3, &self.bucket, &prefix).await?);
                    }
                    let stored: Vec<String> = attachments.iter().filter_map(|a| a.stored.clone()).collect();
                    delete_objects(&self.s3, &self.bucket, stored).await?;
                }
                if !m.key.contains("#OUT#") {
                    // The answer to it, under the id every attempt gives it: an answer the
                    // provider refused left the conversation index but still holds its text.
                    let answer = crate::reply::answer_id(&m.key);
                    doomed.push(table_key(keys::outbound_key(tenant, answer.as_str()), None));
                }
                if let Some(delivery) = &m.delivery_key {
                    doomed.push(table_key(delivery.as_str(), None));
                }
                doomed.push(table_key(m.key.as_str(), None));
            }
            add("messages", page.messages.len());
            messages += page.messages.len();
            delete_keys(self.messages.client(), self.messages.table(), doomed).await?;
            if let Some(cursor) = page.next {
                next_page = Some(self.messages.conversation_page(tenant, contact, Some(cursor)).await?);
            }
        }

        // Earlier exports: every object under each export's prefix.
        for export in &records.exports {
            let mut n = delete_objects(&self.s3, &self.bucket, export.objects.clone()).await?;
            n = n.max(delete_prefix(&self.s3, &self.bucket, &keys::export_prefix(tenant, &export.request)).await?);
            add("export_objects", n);
        }

        // Slots held by her booked appointments, before the appointments that name them.
        let contact_key = contact.key();
        let slots: Vec<Item> = records
            .appointments
            .iter()
            .filter(|a| a.status == AppointmentStatus::Booked)
            .flat_map(|a| a.slots.iter().map(|slot| table_key(keys::slot_pk(tenant, &slot.date), Some(&slot.time))))
            .collect();
        add("slots", slots.len());
        delete_keys(self.contacts.client(), self.contacts.table(), slots).await?;

        // The partition, but for the pointers to her identity index entries: while those
        // entries exist, a retry of a request that named her by email still finds her.
        let pk = keys::contact_pk(tenant, &contact_key);
        let partition: Vec<Item> = records
            .sort_keys
            .iter()
            .filter(|sk| !sk.starts_with(keys::IDENTITY_SK_PREFIX))
            .map(|sk| table_key(pk.as_str(), Some(sk)))
            .collect();
        add("leads", records.leads.len());
        add("appointments", records.appointments.len());
        add("consent_changes", records.consent.len());
        add("contact_items", partition.len());
        delete_keys(self.contacts.client(), self.contacts.table(), partition).await?;

        // Last, the index entries and their pointers together, all or nothing.
        let mut identities: Vec<IdentityRef> = records.identities.clone();
        for lead in &records.leads {
            let email = lead.email.as_deref();
            identities.extend(email.and_then(|e| IdentityRef::of(&self.pseudonyms, tenant, IdentityKind::Email, e)));
            let phone = lead.phone.as_deref().filter(|p| *p != contact_key);
            identities.extend(phone.and_then(|p| IdentityRef::of(&self.pseudonyms, tenant, IdentityKind::Phone, p)));
        }
        identities.sort();
        identities.dedup();
        add("identities", identities.len());
        for chunk in identities.chunks(IDENTITIES_PER_TRANSACTION) {
            let keys: Vec<Item> = chunk
                .iter()
                .flat_map(|i| {
                    [table_key(i.index_pk(tenant), Some(&contact_key)), table_key(pk.as_str(), Some(&i.ref_sk()))]
                })
                .collect();
            self.delete_together(keys).await?;
        }

        // Whether the contact was anyone to us: held something, or was erased before (its
        // tombstone: by an earlier attempt at this request, or an earlier request).
        let held = !records.sort_keys.is_empty()
            || messages > 0
            || self.contacts.erasure_of(tenant, &self.pseudonyms.contact(tenant, contact)).await?.is_some();
        add("contacts", usize::from(held));
        Ok(())
    }

    /// Deletes `keys` of `ContactsTable` in one transaction.
    async fn delete_together(&self, keys: Vec<Item>) -> Result<(), StoreError> {
        let mut request = self.contacts.client().transact_write_items();
        for key in keys {
            let delete = Delete::builder()
                .table_name(self.contacts.table())
                .set_key(Some(key))
                .build()
                .map_err(|e| StoreError::corrupt("delete", e))?;
            request = request.transact_items(TransactWriteItem::builder().delete(delete).build());
        }
        request.send().await.map_err(|e| StoreError::aws("TransactWriteItems identities", e))?;
        Ok(())
    }
}
