//! The privacy-jobs queue (standard SQS, `PRIVACY_QUEUE_URL`) between whoever records a privacy
//! request and the privacy worker. A job names the tenant and the request, nothing else: kind
//! and sealed subject are read from the record, so no email or phone number is ever on a queue.
//! Delivery is at least once; the worker is idempotent on the request's state.

use std::future::Future;
use std::sync::Mutex;

use super::requests::PrivacyJob;
use crate::queue::QueueError;

/// The port.
pub trait PrivacyQueue: Send + Sync {
    fn send(&self, job: &PrivacyJob) -> impl Future<Output = Result<(), QueueError>> + Send;
}

#[derive(Debug, Clone)]
pub struct SqsPrivacyQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsPrivacyQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: String) -> Self {
        Self { client, url }
    }

    /// One cheap call on the queue (opens the connection at cold start).
    pub async fn probe(&self) -> Result<(), QueueError> {
        crate::queue::probe(&self.client, &self.url).await
    }
}

impl PrivacyQueue for SqsPrivacyQueue {
    async fn send(&self, job: &PrivacyJob) -> Result<(), QueueError> {
        let body = serde_json::to_string(job).expect("ids serialise");
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| QueueError(crate::aws::describe(e)))?;
        Ok(())
    }
}

/// Jobs kept in memory (unit tests); the next sends fail while `failing` is set.
#[derive(Debug, Default)]
pub struct MemoryPrivacyQueue {
    pub sent: Mutex<Vec<PrivacyJob>>,
    pub failing: std::sync::atomic::AtomicBool,
}

impl MemoryPrivacyQueue {
    pub fn jobs(&self) -> Vec<PrivacyJob> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl PrivacyQueue for MemoryPrivacyQueue {
    async fn send(&self, job: &PrivacyJob) -> Result<(), QueueError> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(QueueError("the queue is failing (test)".into()));
        }
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).push(job.clone());
        Ok(())
    }
}
