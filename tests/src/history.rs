//! Long conversation histories written straight through the message log adapter (the ingest
//! path's own write), for tests and benchmarks that need thousands of messages quickly.

use concierge::domain::{ContactId, TenantId};

use crate::{TENANT_A, TestStack, message_key, pseudonyms};

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Stores `n` inbound texts of `bytes` each from `contact` to acme-dental through the message
/// log adapter, 16 at a time, sent over the last day.
pub async fn store_history(t: &TestStack, contact: &str, n: usize, bytes: usize) {
    use concierge::domain::{Channel, Content, InboundMessage, ProviderMessageId};
    use concierge::store::messages::{DynamoMessageLog, InboundLog};
    use futures::StreamExt;

    let tenant = concierge::tenants::Tenant::new(TenantId::parse(TENANT_A).unwrap());
    let log = DynamoMessageLog::new(t.dynamodb.clone(), t.table("MessagesTable"), pseudonyms());
    let contact = ContactId::parse_key(contact).unwrap();
    let text = "x".repeat(bytes);
    futures::stream::iter(0..n)
        .for_each_concurrent(16, |i| {
            let (tenant, log, contact, text) = (&tenant, &log, &contact, &text);
            async move {
                let id = format!("wamid.hist{}-{i}", contact.key().trim_start_matches('+'));
                let message = InboundMessage {
                    channel: Channel::Meta,
                    id: ProviderMessageId::parse(&id).unwrap(),
                    contact: contact.clone(),
                    profile_name: None,
                    sent_at: now() - 86_400 + i as i64,
                    reply_to: None,
                    content: Content::Text { body: format!("{i} {text}") },
                };
                let attempt = concierge::ingest::Attempt::new(tenant, &concierge::clock::ManualClock::at(now() * 1000));
                let key = message_key(TENANT_A, "meta", &id);
                let contact_key = contact.key();
                let prepared = concierge::ingest::prepare(tenant, &message, &key, &contact_key, "h", &attempt);
                log.record_inbound(&prepared.new).await.unwrap();
            }
        })
        .await;
}
