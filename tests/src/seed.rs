//! Seeding data of a chosen age straight into the stack's tables and bucket, in the layout the
//! production adapters write (`inbound_item`, the contact store): the purge, export and erasure
//! tests need data whose retention clock started on days other than today, and many of it.

use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use concierge::domain::{
    Attachment, Channel, ContactId, Content, InboundMessage, MediaKind, ProviderMessageId, TenantId,
};
use concierge::privacy::Expiry;
use concierge::privacy::retention::{Category, RetentionDays};
use concierge::store::contacts::{ContactStore, DynamoContacts, InboundActivity};
use concierge::store::keys;
use concierge::store::messages::NewInbound;
use futures::StreamExt;

use crate::TestStack;

/// A contact of the tests: the phone number is `+49151000` followed by `n`, 5 digits.
pub fn contact(n: u32) -> ContactId {
    ContactId::from_parts(Some(&format!("49151000{n:05}")), None).expect("a valid wa_id")
}

/// `count` inbound messages from `contact` whose retention clock started at `start` (unix
/// seconds) under `retention` (the TTL stamp), each with `media` attachments (their copies put
/// into the data bucket).
/// Returns their keys.
pub async fn messages(
    t: &TestStack,
    tenant: &str,
    contact: &ContactId,
    start: i64,
    count: usize,
    media: usize,
    retention: &RetentionDays,
) -> Vec<String> {
    let tenant = TenantId::parse(tenant).expect("tenant id");
    let expiry = Expiry::new(&tenant, Category::Messages, start, retention);
    let table = t.table("MessagesTable");
    let contact_key = contact.key();
    let mut keys_written = Vec::with_capacity(count);
    let mut items = Vec::with_capacity(count);
    for i in 0..count {
        let id = format!("seed.{start}.{contact_key}.{i}");
        let content = if media == 0 {
            Content::Text { body: format!("seeded message {i}") }
        } else {
            Content::Media {
                kind: MediaKind::Image,
                caption: None,
                attachments: (0..media).map(|_| Attachment::default()).collect(),
            }
        };
        let message = InboundMessage {
            channel: Channel::Meta,
            id: ProviderMessageId::parse(&id).expect("id"),
            contact: contact.clone(),
            profile_name: None,
            sent_at: start,
            reply_to: None,
            content,
        };
        let key = keys::message_key(&tenant, Channel::Meta, &id);
        let new = NewInbound {
            tenant: &tenant,
            message: &message,
            key: &key,
            contact: &contact_key,
            received_at: start,
            expiry: &expiry,
            attempt: "seed",
            lease_until_ms: 0,
            sweep_at_ms: start * 1000,
        };
        items.push(concierge::store::messages::dynamo::inbound_item(&new).expect("item"));
        keys_written.push(key);
    }
    let batches: Vec<Vec<WriteRequest>> = items
        .into_iter()
        .map(|item| {
            WriteRequest::builder().put_request(PutRequest::builder().set_item(Some(item)).build().unwrap()).build()
        })
        .collect::<Vec<_>>()
        .chunks(25)
        .map(<[WriteRequest]>::to_vec)
        .collect();
    futures::stream::iter(batches.into_iter().map(|batch| {
        let table = table.clone();
        async move {
            let mut pending = batch;
            while !pending.is_empty() {
                let out = t.dynamodb.batch_write_item().request_items(&table, pending).send().await.expect("seed");
                pending = out.unprocessed_items.and_then(|mut m| m.remove(&table)).unwrap_or_default();
            }
        }
    }))
    .buffer_unordered(8)
    .collect::<Vec<()>>()
    .await;
    if media > 0 {
        let s3 = t.s3().await;
        let bucket = t.bucket("DataBucket");
        for key in &keys_written {
            let (_, _, message_ref) = keys::parse_message_key(key).expect("a message key");
            for n in 0..media {
                s3.put_object()
                    .bucket(&bucket)
                    .key(concierge::media::media_key(&tenant, message_ref, n))
                    .body(b"image bytes".to_vec().into())
                    .send()
                    .await
                    .expect("put media");
            }
        }
    }
    keys_written
}

/// The contact record and conversation of `contact`, last active at `at`.
pub async fn activity(t: &TestStack, tenant: &str, contact: &ContactId, at: i64) {
    let tenant = TenantId::parse(tenant).expect("tenant id");
    let store = DynamoContacts::new(t.dynamodb.clone(), t.table("ContactsTable"));
    let expiry = Expiry::new(&tenant, Category::Messages, at, &RetentionDays::default());
    let activity = InboundActivity { contact, channel: Channel::Meta, profile_name: Some("Seeded Name"), at };
    store.record_activity(&tenant, activity, &expiry).await.expect("activity");
}

/// An audit entry the tests append: a consent change numbered `n` (its subject and counts say
/// which), so a changed, missing or reordered entry is told apart.
pub fn audit_entry(at_ms: i64, n: u64) -> concierge::domain::AuditEntry {
    concierge::domain::AuditEntry {
        at_ms,
        action: concierge::domain::AuditAction::ConsentChange,
        actor: "e2e".into(),
        subject: Some(format!("hash-{n}")),
        counts: std::collections::BTreeMap::from([("n".into(), n)]),
    }
}
