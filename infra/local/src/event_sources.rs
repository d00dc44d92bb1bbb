//! SQS event source mappings, as Lambda runs them: receive up to the batch size, invoke the
//! function with an `SqsEvent`, delete what succeeded. With `ReportBatchItemFailures` only the
//! reported items stay (they reappear after the visibility timeout and, past `maxReceiveCount`,
//! go to the dead-letter queue); without it, or when the function errors, the whole batch stays.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};

use crate::functions::LocalFunction;

pub struct SqsMapping {
    pub function: Arc<LocalFunction>,
    pub queue_url: String,
    pub queue_arn: String,
    pub batch_size: u32,
    pub report_batch_item_failures: bool,
}

/// What one poll did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PollOutcome {
    pub received: usize,
    pub deleted: usize,
}

impl SqsMapping {
    /// One receive-invoke-delete round. `wait` is the long-poll time.
    pub async fn poll_once(&self, sqs: &aws_sdk_sqs::Client, wait: Duration) -> Result<PollOutcome> {
        let messages = sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(self.batch_size.clamp(1, 10) as i32)
            .wait_time_seconds(wait.as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(|e| anyhow!(concierge::aws::describe(e)))?
            .messages
            .unwrap_or_default();
        if messages.is_empty() {
            return Ok(PollOutcome::default());
        }
        let records: Vec<SqsMessage> = messages
            .iter()
            .map(|m| {
                let mut record = SqsMessage::default();
                record.message_id = m.message_id.clone();
                record.receipt_handle = m.receipt_handle.clone();
                record.body = m.body.clone();
                record.md5_of_body = m.md5_of_body.clone();
                record.attributes =
                    m.attributes.iter().flatten().map(|(k, v)| (k.as_str().to_owned(), v.clone())).collect();
                record.event_source = Some("aws:sqs".into());
                record.event_source_arn = Some(self.queue_arn.clone());
                record.aws_region = Some("us-east-1".into());
                record
            })
            .collect();
        let ids: HashSet<String> = records.iter().filter_map(|r| r.message_id.clone()).collect();
        let mut event = SqsEvent::default();
        event.records = records;

        let name = &self.function.def.logical_id;
        let result = match serde_json::to_value(&event) {
            Ok(event) => self.function.invoke_json(&event).await,
            Err(e) => Err(e.to_string()),
        };
        let response = result.and_then(|v| {
            if v.is_null() {
                Ok(SqsBatchResponse::default())
            } else {
                serde_json::from_value::<SqsBatchResponse>(v).map_err(|e| e.to_string())
            }
        });
        let keep: HashSet<String> = match response {
            Ok(response) if self.report_batch_item_failures => {
                let failed: HashSet<String> =
                    response.batch_item_failures.into_iter().map(|f| f.item_identifier).collect();
                // Lambda treats an identifier it did not send as a failure of the whole batch.
                if failed.iter().any(|id| !ids.contains(id)) { ids.clone() } else { failed }
            }
            Ok(_) => HashSet::new(),
            Err(e) => {
                tracing::error!(function = %name, error = %e, "function failed; the batch stays on the queue");
                ids.clone()
            }
        };
        let entries: Vec<DeleteMessageBatchRequestEntry> = messages
            .iter()
            .filter(|m| m.message_id.as_ref().is_some_and(|id| !keep.contains(id)))
            .enumerate()
            .map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle.clone().unwrap_or_default())
                    .build()
            })
            .collect::<Result<_, _>>()?;
        let deleted = entries.len();
        if deleted > 0 {
            sqs.delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| anyhow!(concierge::aws::describe(e)))
                .context("deleting processed messages")?;
        }
        Ok(PollOutcome { received: messages.len(), deleted })
    }

    /// Polls until the process ends.
    pub async fn run(self, sqs: aws_sdk_sqs::Client) {
        loop {
            if let Err(e) = self.poll_once(&sqs, Duration::from_secs(5)).await {
                tracing::warn!(function = %self.function.def.logical_id, error = %e, "SQS poll failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
