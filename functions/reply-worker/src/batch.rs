//! An SQS FIFO batch with partial failures: message groups run concurrently, each in order;
//! a group stops at its first failure and reports that record and every later one of the group
//! as failed (so SQS redelivers them in order). A batch where every record failed is an error,
//! so it shows in the function's error metrics.

use std::collections::BTreeMap;
use std::future::Future;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use concierge::function::Error;
use concierge::reply::{Outcome, ReplyError};
use tracing::Instrument;

pub async fn handle<F, Fut>(event: &SqsEvent, job: F) -> Result<SqsBatchResponse, Error>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<Outcome, ReplyError>>,
{
    // Groups in order of first appearance; records within a group in delivery order.
    let mut groups: BTreeMap<&str, Vec<(usize, &str, &str)>> = BTreeMap::new();
    for (position, record) in event.records.iter().enumerate() {
        let group = record.attributes.get("MessageGroupId").map_or("", String::as_str);
        let id = record.message_id.as_deref().unwrap_or_default();
        let body = record.body.as_deref().unwrap_or_default();
        groups.entry(group).or_default().push((position, id, body));
    }
    let runs = groups.into_values().map(|records| {
        let job = &job;
        async move {
            let mut failed = Vec::new();
            for (position, id, body) in records {
                if !failed.is_empty() {
                    failed.push((position, id));
                    continue;
                }
                let span = tracing::info_span!("record", message_id = id);
                if let Err(e) = job(body.to_owned()).instrument(span).await {
                    tracing::warn!(message_id = id, error = %e, "record failed; it and the rest of its group retry");
                    failed.push((position, id));
                }
            }
            failed
        }
    });
    let mut failed: Vec<(usize, &str)> = futures::future::join_all(runs).await.into_iter().flatten().collect();
    if !event.records.is_empty() && failed.len() == event.records.len() {
        return Err(format!("all {} records failed", failed.len()).into());
    }
    failed.sort_unstable();
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failed
        .into_iter()
        .map(|(_, id)| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id.to_owned();
            failure
        })
        .collect();
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::sqs::SqsMessage;

    fn event(records: &[(&str, &str)]) -> SqsEvent {
        let mut event = SqsEvent::default();
        event.records = records
            .iter()
            .map(|(id, group)| {
                let mut r = SqsMessage::default();
                r.message_id = Some((*id).into());
                r.body = Some((*id).into());
                r.attributes.insert("MessageGroupId".into(), (*group).into());
                r
            })
            .collect();
        event
    }

    async fn run(records: &[(&str, &str)], failing: &[&str]) -> (Result<Vec<String>, String>, Vec<String>) {
        let seen = std::sync::Mutex::new(Vec::new());
        let result = handle(&event(records), |body| {
            let fail = failing.contains(&body.as_str());
            seen.lock().unwrap().push(body);
            async move { if fail { Err(ReplyError::Busy) } else { Ok(Outcome::Answered) } }
        })
        .await
        .map(|r| r.batch_item_failures.into_iter().map(|f| f.item_identifier).collect())
        .map_err(|e| e.to_string());
        (result, seen.into_inner().unwrap())
    }

    #[tokio::test]
    async fn a_failure_fails_the_rest_of_its_group_and_only_its_group() {
        let records = [("a1", "A"), ("b1", "B"), ("a2", "A"), ("a3", "A"), ("b2", "B")];
        let (failed, seen) = run(&records, &["a2"]).await;
        assert_eq!(failed.unwrap(), ["a2", "a3"]);
        assert!(!seen.contains(&"a3".to_owned()), "a later record of a failed group is not attempted");
        assert!(seen.contains(&"b2".to_owned()), "other groups go on");
    }

    #[tokio::test]
    async fn a_batch_where_everything_failed_is_an_error() {
        let (failed, _) = run(&[("a1", "A"), ("b1", "B")], &["a1", "b1"]).await;
        assert!(failed.is_err());
        let (failed, _) = run(&[("a1", "A"), ("b1", "B")], &[]).await;
        assert_eq!(failed.unwrap(), Vec::<String>::new());
    }
}
