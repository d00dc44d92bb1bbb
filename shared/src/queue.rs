//! The inbound FIFO queue between ingestion and the reply worker. A job is a pointer to the
//! stored message (no personal data on the queue); the group is the tenant and a keyed hash of
//! the contact, so one contact's messages are answered in order and contacts never block each
//! other (the queue runs in high-throughput mode, which scales with the number of groups).

use std::future::Future;
use std::sync::Mutex;

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
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
    let mut group = String::with_capacity(tenant.as_str().len() + 1 + contact_hash.len());
    group.push_str(tenant.as_str());
    group.push('#');
    group.push_str(contact_hash);
    group
}

/// One job with its FIFO group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub job: InboundJob,
    pub group: String,
}

/// SQS's limit on entries per batch.
pub const MAX_BATCH: usize = 10;

#[derive(Debug, thiserror::Error)]
#[error("enqueue failed: {0}")]
pub struct QueueError(pub String);

/// The port.
pub trait InboundQueue: Send + Sync {
    /// Sends up to `MAX_BATCH` jobs in their order (which FIFO keeps within a group). Returns the
    /// positions of the jobs that were not accepted (to send again); an error means none was.
    fn send_batch(&self, jobs: &[Queued]) -> impl Future<Output = Result<Vec<usize>, QueueError>> + Send;
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
        probe(&self.client, &self.url).await
    }
}

/// One cheap call on a queue: opens the connection at cold start, and proves the queue exists.
pub async fn probe(client: &aws_sdk_sqs::Client, url: &str) -> Result<(), QueueError> {
    client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| QueueError(crate::aws::describe(e)))?;
    Ok(())
}

impl InboundQueue for SqsInboundQueue {
    async fn send_batch(&self, jobs: &[Queued]) -> Result<Vec<usize>, QueueError> {
        let entries = jobs
            .iter()
            .take(MAX_BATCH)
            .enumerate()
            .map(|(i, q)| {
                let body = serde_json::to_string(&q.job).map_err(|e| QueueError(e.to_string()))?;
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .message_group_id(&q.group)
                    .message_deduplication_id(q.job.deduplication_id())
                    .build()
                    .map_err(|e| QueueError(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| QueueError(crate::aws::describe(e)))?;
        let mut failed: Vec<usize> = out.failed().iter().filter_map(|f| f.id().parse().ok()).collect();
        failed.sort_unstable();
        Ok(failed)
    }
}

/// An in-memory queue with FIFO deduplication, and failures on demand, for unit tests.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    state: Mutex<MemoryQueueState>,
}

#[derive(Debug, Default)]
struct MemoryQueueState {
    sent: Vec<Queued>,
    seen: std::collections::HashSet<String>,
    calls: usize,
    fail_calls: usize,
}

impl MemoryQueue {
    /// The next `n` calls fail entirely.
    pub fn fail_next(&self, n: usize) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).fail_calls = n;
    }

    /// What was accepted, deduplicated as SQS would.
    pub fn sent(&self) -> Vec<Queued> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).sent.clone()
    }

    /// Calls made, failed ones included.
    pub fn calls(&self) -> usize {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).calls
    }
}

impl InboundQueue for MemoryQueue {
    async fn send_batch(&self, jobs: &[Queued]) -> Result<Vec<usize>, QueueError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.calls += 1;
        if state.fail_calls > 0 {
            state.fail_calls -= 1;
            return Err(QueueError("injected failure".into()));
        }
        for q in jobs.iter().take(MAX_BATCH) {
            if state.seen.insert(q.job.deduplication_id()) {
                state.sent.push(q.clone());
            }
        }
        Ok(Vec::new())
    }
}
