//! `MessagesTable`: one item per provider message, keyed `<tenant>#MSG#<channel>#<provider id>`
//! so that a provider's retry finds the item its first delivery wrote, and a status finds the
//! message it names. GSIs: `conversation` (`<tenant>#CONV#<contact>`, time order) and the sparse
//! `expiry` bucket (`<tenant>#EXP#<day>`) the purge job reads.

use std::collections::HashMap;
use std::future::Future;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use super::{StoreError, n, s};
use crate::domain::{Channel, InboundMessage, ProviderMessageId, StatusUpdate, TenantId};
use crate::privacy::Expiry;

/// The lifecycle of an inbound message; the reply worker moves it on from `received`.
pub const STAGE_RECEIVED: &str = "received";

pub fn message_key(tenant: &TenantId, channel: Channel, id: &ProviderMessageId) -> String {
    concat(&[tenant.as_str(), "#MSG#", channel.as_str(), "#", id.as_str()])
}

/// What the conditional write found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// First time we see this message: it is stored now.
    New,
    /// Stored before; `stage`, `received_at` and `attempt` are what the first delivery wrote.
    Duplicate { stage: Option<String>, received_at: Option<i64>, attempt: Option<String> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusApplied {
    Applied,
    /// An equal or later status was already recorded (statuses arrive out of order).
    Stale,
}

/// The port: the log of messages per tenant.
pub trait MessageLog: Send + Sync {
    fn record_inbound(
        &self,
        item: HashMap<String, AttributeValue>,
    ) -> impl Future<Output = Result<Recorded, StoreError>> + Send;
    fn apply_status(
        &self,
        tenant: &TenantId,
        status: &StatusUpdate,
        stub_expiry: &Expiry,
    ) -> impl Future<Output = Result<StatusApplied, StoreError>> + Send;
}

/// Builds the item for an inbound message (pure: benchmarked as part of the ingest CPU path).
/// It holds only what cannot be derived from its key: tenant, channel and provider id are in
/// `pk`, and every attribute costs an allocation and a hash on the hot path.
pub fn inbound_item(
    tenant: &TenantId,
    message: &InboundMessage,
    key: &str,
    contact: &str,
    received_at: i64,
    expiry: &Expiry,
    attempt: &str,
) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let content =
        serde_dynamo::to_attribute_value(&message.content).map_err(|e| StoreError::Corrupt(format!("content: {e}")))?;
    let mut item = HashMap::with_capacity(14);
    item.insert("pk".into(), s(key));
    item.insert("gsi1pk".into(), s(concat(&[tenant.as_str(), "#CONV#", contact])));
    item.insert("gsi1sk".into(), s(format!("{:011}#{}", message.sent_at, message.id.as_str())));
    item.insert("exp_pk".into(), s(expiry.bucket.as_str()));
    item.insert("direction".into(), s("in"));
    item.insert("contact".into(), s(contact));
    if let Some(name) = &message.profile_name {
        item.insert("profile_name".into(), s(name.as_str()));
    }
    if let Some(reply_to) = &message.reply_to {
        item.insert("reply_to".into(), s(reply_to.as_str()));
    }
    item.insert("sent_at".into(), n(message.sent_at));
    item.insert("received_at".into(), n(received_at));
    item.insert("content".into(), content);
    item.insert("stage".into(), s(STAGE_RECEIVED));
    // Which attempt wrote it: an SDK retry of our own committed put must not look like a duplicate.
    item.insert("attempt".into(), s(attempt));
    item.insert("expires_at".into(), n(expiry.at));
    Ok(item)
}

/// Joins key parts with one allocation of the exact size.
pub fn concat(parts: &[&str]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    parts.iter().for_each(|p| out.push_str(p));
    out
}

#[derive(Debug, Clone)]
pub struct DynamoMessageLog {
    client: Client,
    table: String,
}

impl DynamoMessageLog {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }
}

impl MessageLog for DynamoMessageLog {
    async fn record_inbound(&self, item: HashMap<String, AttributeValue>) -> Result<Recorded, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            // A duplicate learns what the first delivery stored in the same request.
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Recorded::New),
            Err(SdkError::ServiceError(e)) => match e.err() {
                PutItemError::ConditionalCheckFailedException(failed) => {
                    let old = failed.item();
                    let text = |name: &str| old.and_then(|i| i.get(name)?.as_s().ok().cloned());
                    Ok(Recorded::Duplicate {
                        stage: text("stage"),
                        received_at: old.and_then(|i| i.get("received_at")?.as_n().ok()?.parse().ok()),
                        attempt: text("attempt"),
                    })
                }
                // An item DynamoDB refuses (e.g. over 400 KB) is refused on every retry too.
                other if other.code() == Some("ValidationException") => {
                    Err(StoreError::Rejected("message item refused by DynamoDB"))
                }
                _ => Err(StoreError::aws("PutItem message", SdkError::ServiceError(e))),
            },
            Err(e) => Err(StoreError::aws("PutItem message", e)),
        }
    }

    async fn apply_status(
        &self,
        tenant: &TenantId,
        status: &StatusUpdate,
        stub_expiry: &Expiry,
    ) -> Result<StatusApplied, StoreError> {
        let key = message_key(tenant, status.channel, &status.id);
        // Upsert: the status may overtake the reply worker's own write of the outbound message;
        // a stub made this way carries only delivery facts and a short expiry.
        let mut update = String::from(
            "SET delivery_status = :s, status_rank = :r, status_at = :at, \
             direction = if_not_exists(direction, :out), expires_at = if_not_exists(expires_at, :exp), \
             exp_pk = if_not_exists(exp_pk, :bucket)",
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
            .expression_attribute_values(":out", s("out"))
            .expression_attribute_values(":exp", n(stub_expiry.at))
            .expression_attribute_values(":bucket", s(stub_expiry.bucket.as_str()));
        if let Some(code) = status.error_code {
            update.push_str(", error_code = :e");
            request = request.expression_attribute_values(":e", n(code));
        }
        match request.update_expression(update).send().await {
            Ok(_) => Ok(StatusApplied::Applied),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
            {
                Ok(StatusApplied::Stale)
            }
            Err(e) => Err(StoreError::aws("UpdateItem status", e)),
        }
    }
}
