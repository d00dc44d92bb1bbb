//! The DynamoDB adapter of `MessagesTable`. Inbound items are built by hand: they are on the
//! ingest hot path (benchmarked), and each attribute costs an allocation and a hash there, so
//! an item holds only what its keys do not already say (tenant and channel are in `pk`; the
//! contact in `gsi1pk`; the send time in `gsi1sk`). Keys name a message by the keyed hash of its
//! provider id (see `keys::message_key`); the id itself is an attribute of its item.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

use super::{
    Claim, ConversationEntry, ConversationLog, Delivery, DeliveryLog, InboundLog, InboundState, NewInbound,
    PendingInbound, PendingLog, Recorded, StatusApplied, StoredInbound,
};
use crate::domain::{
    Channel, ContactId, Content, DeliveryStatus, InboundMessage, OutboundMessage, ProviderMessageId, RecordId, Stage,
    StatusUpdate, TenantId,
};
use crate::privacy::{Expiry, Pseudonymizer};
use crate::store::{
    Item, StoreError, condition_failed, get_n, get_s, int, keys, n, s, transaction_condition_failed,
    transaction_conflicted,
};

mod subject;

pub use subject::{ConversationPage, PageCursor, SubjectMessage};

/// Index names (template.yaml).
pub const CONVERSATION_INDEX: &str = "conversation";
pub const PENDING_INDEX: &str = "pending";

#[derive(Debug, Clone)]
pub struct DynamoMessageLog {
    client: Client,
    table: String,
    /// Turns a provider's id into the ref its key holds.
    refs: Pseudonymizer,
}

impl DynamoMessageLog {
    pub fn new(client: Client, table: String, refs: Pseudonymizer) -> Self {
        Self { client, table, refs }
    }

    /// One contact's messages, both directions, on the `conversation` index.
    fn conversation_query(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .index_name(CONVERSATION_INDEX)
            .key_condition_expression("gsi1pk = :c")
            .expression_attribute_values(":c", s(keys::conversation_pk(tenant, &contact.key())))
    }

    fn delivery_key(&self, tenant: &TenantId, channel: Channel, provider_id: &ProviderMessageId) -> String {
        keys::message_key(tenant, channel, &self.refs.message_ref(channel, provider_id.as_str()))
    }
}

/// The item of a new inbound message (pure: part of the benchmarked ingest CPU path).
pub fn inbound_item(new: &NewInbound<'_>) -> Result<Item, StoreError> {
    let m = new.message;
    let shard = keys::shard_of(new.key);
    let mut item = Item::with_capacity(16);
    item.insert("pk".into(), s(new.key));
    item.insert("gsi1pk".into(), s(keys::conversation_pk(new.tenant, new.contact)));
    let message_ref = keys::parse_message_key(new.key).map_or("", |(_, _, r)| r);
    item.insert("gsi1sk".into(), s(keys::conversation_sk(m.sent_at, true, message_ref)));
    let mut bucket = String::with_capacity(new.expiry.bucket_prefix.len() + 1);
    bucket.push_str(&new.expiry.bucket_prefix);
    bucket.push(char::from(b'0' + shard));
    item.insert("exp_pk".into(), s(bucket));
    item.insert("exp_sk".into(), int(new.expiry.start));
    item.insert("pend_pk".into(), s(keys::pending_pk(new.tenant, shard)));
    item.insert("pend_sk".into(), s(keys::pending_sk(new.sweep_at_ms)));
    item.insert("content".into(), content_value(&m.content)?);
    // How many media copies the message may get (`<tenant>/media/<ref>/<n>`): the purge reads
    // it from the expiry index and deletes them with the message.
    if let Content::Media { attachments, .. } = &m.content
        && !attachments.is_empty()
    {
        item.insert("media_n".into(), int(attachments.len() as i64));
    }
    item.insert("provider_id".into(), s(m.id.as_str()));
    item.insert("stage".into(), s(Stage::Received.as_str()));
    item.insert("attempt".into(), s(new.attempt));
    item.insert("lease_until".into(), int(new.lease_until_ms));
    item.insert("received_at".into(), int(new.received_at));
    item.insert("expires_at".into(), int(new.expiry.ttl));
    if let Some(name) = &m.profile_name {
        item.insert("profile_name".into(), s(name.as_str()));
    }
    if let Some(reply_to) = &m.reply_to {
        item.insert("reply_to".into(), s(reply_to.as_str()));
    }
    Ok(item)
}

/// Content as a map; text, by far the most common, without going through serde.
fn content_value(content: &Content) -> Result<AttributeValue, StoreError> {
    match content {
        Content::Text { body } => Ok(AttributeValue::M(
            [("type".to_owned(), s("text")), ("body".to_owned(), s(body.as_str()))].into_iter().collect(),
        )),
        other => serde_dynamo::to_attribute_value(other).map_err(|e| StoreError::corrupt("content", e)),
    }
}

fn content_of(item: &Item) -> Result<Content, StoreError> {
    let value = item.get("content").cloned().ok_or_else(|| StoreError::Corrupt("message without content".into()))?;
    serde_dynamo::from_attribute_value(value).map_err(|e| StoreError::corrupt("content", e))
}

fn state_of(item: &Item) -> InboundState {
    let received_at = get_n(item, "received_at").unwrap_or(0);
    InboundState {
        stage: get_s(item, "stage").and_then(Stage::parse).unwrap_or(Stage::Received),
        received_at,
        attempt: get_s(item, "attempt").map(str::to_owned),
        lease_until_ms: get_n(item, "lease_until").unwrap_or(received_at * 1000),
    }
}

/// The contact key (`ContactId::key`) in an item's conversation partition key (set aside in
/// `conv_pk` while an unsent answer is out of the conversation).
fn contact_key(item: &Item) -> Option<&str> {
    Some(get_s(item, "gsi1pk").or_else(|| get_s(item, "conv_pk"))?.split_once("#CONV#")?.1)
}

/// `(contact, sent_at)` from the conversation keys of an item.
fn conversation_keys(item: &Item) -> Option<(ContactId, i64)> {
    let sent_at = get_s(item, "gsi1sk").or_else(|| get_s(item, "conv_sk"))?.get(..11)?.parse().ok()?;
    Some((ContactId::parse_key(contact_key(item)?).ok()?, sent_at))
}

fn inbound_of(item: &Item) -> Result<(TenantId, InboundMessage), StoreError> {
    let key = get_s(item, "pk").unwrap_or_default();
    let (tenant, channel, _) =
        keys::parse_message_key(key).ok_or_else(|| StoreError::Corrupt("inbound message key".into()))?;
    let id = get_s(item, "provider_id").ok_or_else(|| StoreError::Corrupt("inbound message without its id".into()))?;
    let (contact, sent_at) =
        conversation_keys(item).ok_or_else(|| StoreError::Corrupt("inbound message without its contact".into()))?;
    let message = InboundMessage {
        channel,
        id: ProviderMessageId::parse(id).map_err(|e| StoreError::corrupt("provider id", e))?,
        contact,
        profile_name: get_s(item, "profile_name").map(str::to_owned),
        sent_at,
        reply_to: get_s(item, "reply_to").map(str::to_owned),
        content: content_of(item)?,
    };
    Ok((tenant, message))
}

fn outbound_of(item: &Item) -> Result<OutboundMessage, StoreError> {
    let key = get_s(item, "pk").unwrap_or_default();
    let id = key.split_once("#OUT#").map(|(_, id)| id).ok_or_else(|| StoreError::Corrupt("outbound key".into()))?;
    let (contact, created_at) =
        conversation_keys(item).ok_or_else(|| StoreError::Corrupt("outbound message without its contact".into()))?;
    let provider = |name| get_s(item, name).and_then(|p| ProviderMessageId::parse(p).ok());
    Ok(OutboundMessage {
        id: RecordId::parse(id).map_err(|e| StoreError::corrupt("outbound id", e))?,
        channel: get_s(item, "channel")
            .and_then(Channel::parse)
            .ok_or_else(|| StoreError::Corrupt("outbound channel".into()))?,
        contact,
        created_at,
        content: content_of(item)?,
        in_reply_to: provider("in_reply_to"),
        provider_id: provider("provider_id"),
    })
}

impl InboundLog for DynamoMessageLog {
    async fn record_inbound(&self, new: &NewInbound<'_>) -> Result<Recorded, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(inbound_item(new)?))
            .condition_expression("attribute_not_exists(pk)")
            // A duplicate learns what the first delivery stored in the same request.
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Recorded::New),
            Err(SdkError::ServiceError(e)) if matches!(e.err(), PutItemError::ConditionalCheckFailedException(_)) => {
                let PutItemError::ConditionalCheckFailedException(failed) = e.err() else { unreachable!() };
                Ok(Recorded::Existing(failed.item().map(state_of).unwrap_or(InboundState {
                    stage: Stage::Received,
                    received_at: new.received_at,
                    attempt: None,
                    lease_until_ms: new.lease_until_ms,
                })))
            }
            Err(e) => Err(StoreError::aws("PutItem message", e)),
        }
    }

    async fn mark_queued(&self, key: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(key))
            .update_expression("SET stage = :queued")
            .condition_expression("stage = :received")
            .expression_attribute_values(":queued", s(Stage::Queued.as_str()))
            .expression_attribute_values(":received", s(Stage::Received.as_str()))
            .send()
            .await;
        match result {
            // Already further along (a reply worker was quicker): nothing to record.
            Err(e) if condition_failed(&e) => Ok(()),
            other => other.map(|_| ()).map_err(|e| StoreError::aws("UpdateItem queued", e)),
        }
    }

    async fn inbound_state(&self, key: &str) -> Result<Option<InboundState>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(key))
            .consistent_read(true)
            .projection_expression("stage, received_at, #attempt, lease_until")
            .expression_attribute_names("#attempt", "attempt")
            .send()
            .await
            .map_err(|e| StoreError::aws("GetItem message state", e))?;
        Ok(out.item.as_ref().map(state_of))
    }

    async fn inbound(&self, key: &str) -> Result<Option<StoredInbound>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::aws("GetItem message", e))?;
        let Some(item) = out.item.filter(|i| i.contains_key("content")) else { return Ok(None) };
        let (tenant, message) = inbound_of(&item)?;
        Ok(Some(StoredInbound { tenant, message, state: state_of(&item) }))
    }

    async fn claim(&self, key: &str, now_ms: i64, lease_until_ms: i64) -> Result<Claim, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(key))
            .update_expression("SET stage = :answering, lease_until = :lease")
            .condition_expression(
                "attribute_exists(content) AND (stage IN (:received, :queued) OR (stage = :answering AND lease_until < :now))",
            )
            .expression_attribute_values(":answering", s(Stage::Answering.as_str()))
            .expression_attribute_values(":received", s(Stage::Received.as_str()))
            .expression_attribute_values(":queued", s(Stage::Queued.as_str()))
            .expression_attribute_values(":lease", n(lease_until_ms))
            .expression_attribute_values(":now", n(now_ms))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => {
                let item = out.attributes.unwrap_or_default();
                let (tenant, message) = inbound_of(&item)?;
                Ok(Claim::Claimed(Box::new(StoredInbound { tenant, message, state: state_of(&item) })))
            }
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
            {
                let UpdateItemError::ConditionalCheckFailedException(failed) = e.err() else { unreachable!() };
                Ok(match failed.item().filter(|i| i.contains_key("content")).map(state_of) {
                    None => Claim::Missing,
                    Some(InboundState { stage: Stage::Answering, lease_until_ms, .. }) => {
                        Claim::Busy { until_ms: lease_until_ms }
                    }
                    Some(_) => Claim::Answered,
                })
            }
            Err(e) => Err(StoreError::aws("UpdateItem claim", e)),
        }
    }

    async fn set_content(&self, key: &str, content: &Content) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(key))
            .update_expression("SET content = :c")
            .condition_expression("attribute_exists(content)")
            .expression_attribute_values(":c", content_value(content)?)
            .send()
            .await
            .map(|_| ())
            .or_else(|e| if condition_failed(&e) { Ok(()) } else { Err(StoreError::aws("UpdateItem content", e)) })
    }

    async fn complete(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(key))
            .update_expression("SET stage = :answered REMOVE pend_pk, pend_sk")
            .condition_expression("attribute_exists(content)")
            .expression_attribute_values(":answered", s(Stage::Answered.as_str()))
            .send()
            .await
            .map(|_| ())
            .or_else(|e| if condition_failed(&e) { Ok(()) } else { Err(StoreError::aws("UpdateItem answered", e)) })
    }
}

impl DeliveryLog for DynamoMessageLog {
    async fn apply_status(
        &self,
        tenant: &TenantId,
        status: &StatusUpdate,
        stub_expiry: &Expiry,
    ) -> Result<StatusApplied, StoreError> {
        let key = self.delivery_key(tenant, status.channel, &status.id);
        // Upsert: the status may overtake the reply worker's own record of the send; a stub made
        // this way carries only delivery facts and a short retention.
        let mut update = String::from(
            "SET delivery_status = :s, status_rank = :r, status_at = :at, \
             expires_at = if_not_exists(expires_at, :exp), exp_pk = if_not_exists(exp_pk, :bucket), \
             exp_sk = if_not_exists(exp_sk, :start)",
        );
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(key.as_str()))
            .condition_expression("attribute_not_exists(status_rank) OR status_rank < :r")
            .expression_attribute_values(":s", s(status.status.as_str()))
            .expression_attribute_values(":r", n(status.status.rank()))
            .expression_attribute_values(":at", n(status.at))
            .expression_attribute_values(":exp", n(stub_expiry.ttl))
            .expression_attribute_values(":bucket", s(stub_expiry.bucket(&key)))
            .expression_attribute_values(":start", n(stub_expiry.start));
        if let Some(code) = status.error_code {
            update.push_str(", error_code = :e");
            request = request.expression_attribute_values(":e", n(code));
        }
        match request.update_expression(update).send().await {
            Ok(_) => Ok(StatusApplied::Applied),
            Err(e) if condition_failed(&e) => Ok(StatusApplied::Stale),
            Err(e) => Err(StoreError::aws("UpdateItem status", e)),
        }
    }

    async fn record_outbound(
        &self,
        tenant: &TenantId,
        m: &OutboundMessage,
        expiry: &Expiry,
    ) -> Result<Option<OutboundMessage>, StoreError> {
        let key = keys::outbound_key(tenant, m.id.as_str());
        let mut item = Item::with_capacity(12);
        item.insert("gsi1pk".into(), s(keys::conversation_pk(tenant, &m.contact.key())));
        item.insert("gsi1sk".into(), s(keys::conversation_sk(m.created_at, false, m.id.as_str())));
        item.insert("exp_pk".into(), s(expiry.bucket(&key)));
        item.insert("exp_sk".into(), n(expiry.start));
        item.insert("pk".into(), s(key));
        item.insert("channel".into(), s(m.channel.as_str()));
        item.insert("content".into(), content_value(&m.content)?);
        item.insert("expires_at".into(), n(expiry.ttl));
        if let Some(reply_to) = &m.in_reply_to {
            item.insert("in_reply_to".into(), s(reply_to.as_str()));
        }
        if let Some(provider_id) = &m.provider_id {
            item.insert("provider_id".into(), s(provider_id.as_str()));
        }
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            // New, or replacing an attempt the provider refused.
            .condition_expression("attribute_not_exists(pk) OR unsent = :t")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(None),
            Err(SdkError::ServiceError(e)) if matches!(e.err(), PutItemError::ConditionalCheckFailedException(_)) => {
                let PutItemError::ConditionalCheckFailedException(failed) = e.err() else { unreachable!() };
                let earlier = failed.item().ok_or_else(|| StoreError::Corrupt("outbound without its item".into()))?;
                outbound_of(earlier).map(Some)
            }
            Err(e) => Err(StoreError::aws("PutItem outbound", e)),
        }
    }

    async fn discard_outbound(&self, tenant: &TenantId, id: &RecordId) -> Result<(), StoreError> {
        // Kept as a mark that this answer was attempted (and out of the conversation, which
        // never saw it); the next `record_outbound` of the same id replaces it.
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::outbound_key(tenant, id.as_str())))
            // The conversation keys move aside: out of the index, still readable here.
            .update_expression("SET unsent = :t, conv_pk = gsi1pk, conv_sk = gsi1sk REMOVE gsi1pk, gsi1sk")
            // Never a message the provider accepted.
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(provider_id)")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .send()
            .await
            .map(|_| ())
            .or_else(|e| if condition_failed(&e) { Ok(()) } else { Err(StoreError::aws("UpdateItem unsent", e)) })
    }

    async fn attach_provider_id(
        &self,
        tenant: &TenantId,
        id: &RecordId,
        channel: Channel,
        provider_id: &ProviderMessageId,
        expiry: &Expiry,
        answered: &[&str],
    ) -> Result<(), StoreError> {
        let outbound = Update::builder()
            .table_name(&self.table)
            .key("pk", s(keys::outbound_key(tenant, id.as_str())))
            .update_expression("SET provider_id = :p")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":p", s(provider_id.as_str()))
            .build()
            .map_err(|e| StoreError::corrupt("update", e))?;
        let delivery_key = self.delivery_key(tenant, channel, provider_id);
        // The delivery record now belongs to a message: it is kept as long as the message.
        let delivery = Update::builder()
            .table_name(&self.table)
            .key("pk", s(delivery_key.as_str()))
            .update_expression("SET out_id = :id, expires_at = :exp, exp_pk = :bucket, exp_sk = :start")
            .expression_attribute_values(":id", s(id.as_str()))
            .expression_attribute_values(":exp", n(expiry.ttl))
            .expression_attribute_values(":bucket", s(expiry.bucket(&delivery_key)))
            .expression_attribute_values(":start", n(expiry.start))
            .build()
            .map_err(|e| StoreError::corrupt("update", e))?;
        let mut request = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(outbound).build())
            .transact_items(TransactWriteItem::builder().update(delivery).build());
        for key in answered {
            let complete = Update::builder()
                .table_name(&self.table)
                .key("pk", s(*key))
                .update_expression("SET stage = :answered REMOVE pend_pk, pend_sk")
                .condition_expression("attribute_exists(content)")
                .expression_attribute_values(":answered", s(Stage::Answered.as_str()))
                .build()
                .map_err(|e| StoreError::corrupt("update", e))?;
            request = request.transact_items(TransactWriteItem::builder().update(complete).build());
        }
        // A status webhook may write the delivery record at the same moment: DynamoDB cancels
        // the transaction as a conflict (the SDK does not retry those), and a retry resolves it.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match request.clone().send().await {
                Ok(_) => return Ok(()),
                Err(e) if transaction_condition_failed(&e) => {
                    return Err(StoreError::Conflict(
                        "no such outbound message, or an answered message is gone".into(),
                    ));
                }
                Err(e) if attempt < 4 && transaction_conflicted(&e) => {
                    tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
                }
                Err(e) => return Err(StoreError::aws("TransactWriteItems provider id", e)),
            }
        }
    }

    async fn outbound(&self, tenant: &TenantId, id: &RecordId) -> Result<Option<OutboundMessage>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(keys::outbound_key(tenant, id.as_str())))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::aws("GetItem outbound", e))?;
        out.item.as_ref().map(outbound_of).transpose()
    }

    async fn delivery(
        &self,
        tenant: &TenantId,
        channel: Channel,
        provider_id: &ProviderMessageId,
    ) -> Result<Option<Delivery>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(self.delivery_key(tenant, channel, provider_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::aws("GetItem delivery", e))?;
        Ok(out.item.map(|item| Delivery {
            status: get_s(&item, "delivery_status").and_then(DeliveryStatus::parse),
            error_code: get_n(&item, "error_code"),
            outbound: get_s(&item, "out_id").and_then(|id| RecordId::parse(id).ok()),
        }))
    }
}

impl ConversationLog for DynamoMessageLog {
    async fn recent(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
        limit: usize,
    ) -> Result<Vec<ConversationEntry>, StoreError> {
        // The latest first, page after page (a page stops at 1 MB), until `limit` are read.
        let mut pages = self
            .conversation_query(tenant, contact)
            .scan_index_forward(false)
            .limit(limit.clamp(1, 1000) as i32)
            .into_paginator()
            .items()
            .send();
        let mut entries = Vec::new();
        while entries.len() < limit {
            let Some(item) = pages.next().await else { break };
            let item = item.map_err(|e| StoreError::aws("Query conversation", e))?;
            entries.push(if get_s(&item, "pk").is_some_and(|pk| pk.contains("#OUT#")) {
                ConversationEntry::Outbound(outbound_of(&item)?)
            } else {
                ConversationEntry::Inbound(inbound_of(&item)?.1)
            });
        }
        entries.reverse();
        Ok(entries)
    }
}

impl PendingLog for DynamoMessageLog {
    async fn due(
        &self,
        tenant: &TenantId,
        shard: u8,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<PendingInbound>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(PENDING_INDEX)
            .key_condition_expression("pend_pk = :p AND pend_sk <= :now")
            .expression_attribute_values(":p", s(keys::pending_pk(tenant, shard)))
            .expression_attribute_values(":now", s(keys::pending_sk(now_ms)))
            .limit(limit.clamp(1, 1000) as i32)
            .send()
            .await
            .map_err(|e| StoreError::aws("Query pending", e))?;
        out.items
            .unwrap_or_default()
            .iter()
            .map(|item| {
                let key = get_s(item, "pk").unwrap_or_default();
                let (_, channel, _) =
                    keys::parse_message_key(key).ok_or_else(|| StoreError::Corrupt("pending message key".into()))?;
                let contact = contact_key(item)
                    .map(str::to_owned)
                    .ok_or_else(|| StoreError::Corrupt("pending message without its contact".into()))?;
                Ok(PendingInbound {
                    key: key.to_owned(),
                    channel,
                    contact,
                    received_at: get_n(item, "received_at").unwrap_or(0),
                    requeues: get_n(item, "requeues").unwrap_or(0),
                })
            })
            .collect()
    }

    async fn reschedule(&self, key: &str, next_due_ms: i64, requeues: u32) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(key))
            .update_expression("SET pend_sk = :due, requeues = :n")
            .condition_expression("attribute_exists(pend_pk)")
            .expression_attribute_values(":due", s(keys::pending_sk(next_due_ms)))
            .expression_attribute_values(":n", n(requeues))
            .return_values(ReturnValue::None)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(StoreError::aws("UpdateItem pending", e)),
        }
    }

    async fn abandon(&self, key: &str, at_ms: i64) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(key))
            .update_expression("SET abandoned_at = :at REMOVE pend_pk, pend_sk")
            .condition_expression("attribute_exists(pend_pk)")
            .expression_attribute_values(":at", n(at_ms))
            .send()
            .await
            .map(|_| ())
            .or_else(|e| if condition_failed(&e) { Ok(()) } else { Err(StoreError::aws("UpdateItem abandon", e)) })
    }
}
