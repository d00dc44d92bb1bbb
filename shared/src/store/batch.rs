//! Deleting many items at once: `BatchWriteItem` takes at most 25 requests and may hand back
//! `UnprocessedItems` (throttling, a hot partition) that must be sent again after a backoff, or
//! they are silently not deleted. Deleting an item that is already gone succeeds, so a batch
//! that is retried after a crash does no harm.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};

use super::{Item, StoreError};

/// DynamoDB's limit per `BatchWriteItem`.
pub const BATCH: usize = 25;
/// Rounds of resending unprocessed items before the call fails (the caller's next run retries).
const ROUNDS: u32 = 8;
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Deletes the items with these primary keys from `table`, 25 per request, resending what comes
/// back unprocessed with jittered exponential backoff. Returns how many keys it was given.
pub async fn delete_keys(client: &Client, table: &str, keys: Vec<Item>) -> Result<usize, StoreError> {
    let total = keys.len();
    let mut keys = keys.into_iter().peekable();
    while keys.peek().is_some() {
        let chunk: Vec<WriteRequest> = keys
            .by_ref()
            .take(BATCH)
            .map(|key| {
                let delete = DeleteRequest::builder().set_key(Some(key)).build().expect("key is set");
                WriteRequest::builder().delete_request(delete).build()
            })
            .collect();
        write_all(client, table, chunk).await?;
    }
    Ok(total)
}

/// Sends one batch, then its unprocessed remainder until nothing is left.
async fn write_all(client: &Client, table: &str, mut requests: Vec<WriteRequest>) -> Result<(), StoreError> {
    let mut backoff = FIRST_BACKOFF;
    for round in 0..ROUNDS {
        let out = client
            .batch_write_item()
            .request_items(table, std::mem::take(&mut requests))
            .send()
            .await
            .map_err(|e| StoreError::aws("BatchWriteItem", e))?;
        requests = unprocessed(out.unprocessed_items, table);
        if requests.is_empty() {
            return Ok(());
        }
        if round + 1 < ROUNDS {
            // Full jitter: concurrent writers that were throttled together do not retry together.
            tokio::time::sleep(backoff.mul_f64(fastrand::f64())).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
    Err(StoreError::Aws {
        operation: "BatchWriteItem",
        message: format!("{} deletes still unprocessed after {ROUNDS} rounds", requests.len()),
    })
}

fn unprocessed(items: Option<HashMap<String, Vec<WriteRequest>>>, table: &str) -> Vec<WriteRequest> {
    items.and_then(|mut m| m.remove(table)).unwrap_or_default()
}
