//! The inbound FIFO queue between ingestion and the reply worker. A job is a pointer to the
//! stored message (no personal data on the queue); the group is the tenant and a keyed hash of
//! the contact, so one contact's messages are answered in order and contacts never block each other.

use std::future::Future;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::{Channel, TenantId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundJob {
    pub tenant_id: TenantId,
    pub channel: Channel,
    /// `pk` of the message in `MessagesTable`.
    pub message_key: String,
    pub received_at: i64,
}

impl InboundJob {
    /// FIFO deduplication id: stable per message, within SQS's 128-character limit.
    pub fn deduplication_id(&self) -> String {
        hex::encode(Sha256::digest(self.message_key.as_bytes()))
    }
}

pub fn message_group(tenant: &TenantId, contact_hash: &str) -> String {
    format!("{tenant}#{contact_hash}")
}

#[derive(Debug, thiserror::Error)]
#[error("enqueue failed: {0}")]
pub struct QueueError(pub String);

/// The port.
pub trait InboundQueue: Send + Sync {
    fn enqueue(&self, job: &InboundJob, group: &str) -> impl Future<Output = Result<(), QueueError>> + Send;
}

#[derive(Debug, Clone)]
pub struct SqsInboundQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsInboundQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: String) -> Self {
        Self { client, url }
    }

    /// One cheap call on the queue (used to open the connection at cold start).
    pub async fn probe(&self) -> Result<(), QueueError> {
        self.client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| QueueError(crate::aws::describe(e)))?;
        Ok(())
    }
}

impl InboundQueue for SqsInboundQueue {
    async fn enqueue(&self, job: &InboundJob, group: &str) -> Result<(), QueueError> {
        let body = serde_json::to_string(job).map_err(|e| QueueError(e.to_string()))?;
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .message_group_id(group)
            .message_deduplication_id(job.deduplication_id())
            .send()
            .await
            .map_err(|e| QueueError(crate::aws::describe(e)))?;
        Ok(())
    }
}
