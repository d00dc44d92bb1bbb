//! Deleting many items by key: `BatchWriteItem` takes at most 25 requests, and may succeed
//! while leaving some of them unprocessed (throttling, a partition busy); those are sent again
//! with jittered, growing pauses until none is left, or the attempts run out (an error: the
//! caller's retry deletes what is left, since deleting an absent key changes nothing).

use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};

use super::{Item, StoreError};

/// DynamoDB's limit per `BatchWriteItem`.
pub const BATCH: usize = 25;
/// Sends of the unprocessed rest of one batch before giving up.
pub const ATTEMPTS: u32 = 8;
const FIRST_PAUSE: Duration = Duration::from_millis(25);
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// Deletes every item of `table` named by `keys` (each the item's full primary key), 25 per
/// request, retrying unprocessed ones. Duplicate keys are sent once (DynamoDB refuses a batch
/// naming one key twice). Returns how many distinct keys were deleted (absent ones included).
pub async fn delete_keys(client: &Client, table: &str, keys: Vec<Item>) -> Result<usize, StoreError> {
    let keys = distinct(keys);
    let count = keys.len();
    for chunk in keys.chunks(BATCH) {
        let requests = chunk
            .iter()
            .map(|key| {
                let delete = DeleteRequest::builder()
                    .set_key(Some(key.clone()))
                    .build()
                    .map_err(|e| StoreError::corrupt("delete request", e))?;
                Ok(WriteRequest::builder().delete_request(delete).build())
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        write_all(requests, |batch| async move {
            let out = client
                .batch_write_item()
                .request_items(table, batch)
                .send()
                .await
                .map_err(|e| StoreError::aws("BatchWriteItem delete", e))?;
            Ok(out.unprocessed_items.and_then(|mut u| u.remove(table)).unwrap_or_default())
        })
        .await?;
    }
    Ok(count)
}

/// Sends `requests` through `send` (one batch write, answering with what it left unprocessed)
/// until nothing is left, pausing between attempts.
pub(crate) async fn write_all<F, Fut>(mut requests: Vec<WriteRequest>, send: F) -> Result<(), StoreError>
where
    F: Fn(Vec<WriteRequest>) -> Fut,
    Fut: Future<Output = Result<Vec<WriteRequest>, StoreError>>,
{
    for attempt in 0..ATTEMPTS {
        if requests.is_empty() {
            return Ok(());
        }
        if attempt > 0 {
            tokio::time::sleep(pause(attempt)).await;
        }
        requests = send(requests).await?;
    }
    if requests.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Aws {
            operation: "BatchWriteItem",
            message: format!("{} requests left unprocessed after {ATTEMPTS} attempts", requests.len()),
        })
    }
}

/// Full jitter over an exponentially growing ceiling: retries of many workers spread out
/// instead of hitting a throttled partition together.
fn pause(attempt: u32) -> Duration {
    let ceiling = FIRST_PAUSE.saturating_mul(1 << attempt.min(10)).min(MAX_PAUSE);
    ceiling.mul_f64(0.5 + fastrand::f64() / 2.0)
}

fn distinct(mut keys: Vec<Item>) -> Vec<Item> {
    let mut seen = std::collections::HashSet::with_capacity(keys.len());
    keys.retain(|key| {
        let mut parts: Vec<(&String, String)> = key.iter().map(|(k, v)| (k, format!("{v:?}"))).collect();
        parts.sort();
        seen.insert(format!("{parts:?}"))
    });
    keys
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::store::s;

    fn request(pk: &str) -> WriteRequest {
        let key: Item = [("pk".to_owned(), s(pk))].into_iter().collect();
        WriteRequest::builder().delete_request(DeleteRequest::builder().set_key(Some(key)).build().unwrap()).build()
    }

    fn pk_of(r: &WriteRequest) -> String {
        r.delete_request().unwrap().key()["pk"].as_s().unwrap().clone()
    }

    #[tokio::test(start_paused = true)]
    async fn unprocessed_requests_are_sent_again_until_none_is_left() {
        // GIVEN a table that leaves the last two requests of every send unprocessed, twice
        let sends = Mutex::new(Vec::new());
        let requests: Vec<WriteRequest> = (0..5).map(|i| request(&format!("k{i}"))).collect();
        // WHEN they are written
        let started = tokio::time::Instant::now();
        write_all(requests, |batch| {
            let mut sends = sends.lock().unwrap();
            sends.push(batch.iter().map(pk_of).collect::<Vec<_>>());
            let rest = if sends.len() <= 2 { batch[batch.len().saturating_sub(2)..].to_vec() } else { Vec::new() };
            async move { Ok(rest) }
        })
        .await
        .unwrap();
        // THEN the rest went again, after pauses, and nothing else did
        let sends = sends.into_inner().unwrap();
        assert_eq!(sends, vec![vec!["k0", "k1", "k2", "k3", "k4"], vec!["k3", "k4"], vec!["k3", "k4"]]);
        assert!(started.elapsed() >= FIRST_PAUSE, "retries wait: {:?}", started.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn requests_never_processed_are_an_error_after_the_last_attempt() {
        let sends = Mutex::new(0);
        let result = write_all(vec![request("k")], |batch| {
            *sends.lock().unwrap() += 1;
            async move { Ok(batch) }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(sends.into_inner().unwrap(), ATTEMPTS);
    }

    #[tokio::test]
    async fn an_error_ends_the_write() {
        let result =
            write_all(vec![request("k")], |_| async { Err(StoreError::Aws { operation: "x", message: "y".into() }) })
                .await;
        assert!(matches!(result, Err(StoreError::Aws { .. })));
    }

    #[test]
    fn pauses_grow_within_their_bounds() {
        for attempt in 1..20 {
            let p = pause(attempt);
            assert!(p <= MAX_PAUSE && p >= FIRST_PAUSE.mul_f64(0.5), "{attempt}: {p:?}");
        }
        assert!(pause(1) <= FIRST_PAUSE * 2);
    }

    #[test]
    fn duplicate_keys_are_sent_once() {
        let key = |pk: &str, sk: &str| -> Item { [("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))].into() };
        let keys = distinct(vec![key("a", "1"), key("a", "2"), key("a", "1"), key("b", "1")]);
        assert_eq!(keys.len(), 3);
    }
}
