//! `privacy-worker`: consumes the privacy-jobs queue (standard SQS) and runs each request's
//! export, erasure or tenant wipe (see `concierge::privacy::jobs`). Records are handled one
//! after the other (an export holds a part per file in memory; two at once would double it),
//! each failure reported alone, so SQS retries only that job and dead-letters it after 5.

use std::future::Future;
use std::sync::Arc;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use concierge::config::{CONTACT_HASH_KEY, MasterKeySource, PlatformSecrets};
use concierge::crypto::MasterKey;
use concierge::function::{BoxFuture, Error, Event, Function, FunctionEntry, Setup};
use concierge::privacy::Pseudonymizer;
use concierge::privacy::erasure::Eraser;
use concierge::privacy::export::Exporter;
use concierge::privacy::identity::IdentityLookup;
use concierge::privacy::jobs::{JobError, JobOutcome, PrivacyWorker};
use concierge::privacy::wipe::Wiper;
use concierge::store::audit::DynamoAuditLog;
use concierge::store::contacts::DynamoContacts;
use concierge::store::messages::DynamoMessageLog;
use concierge::store::requests::DynamoPrivacyRequests;
use lambda_runtime::Context;
use serde_json::Value;
use tracing::Instrument;

/// How the template names this function's binary, and its composition root.
pub const FUNCTION: FunctionEntry = FunctionEntry { binary: "privacy-worker", build: |setup| Box::pin(build(setup)) };

/// The composition root: configuration, secrets, adapters.
pub async fn build(setup: Setup) -> Result<Arc<dyn Function>, Error> {
    let env = &setup.env;
    let secrets = PlatformSecrets::load(env, &setup.aws.secrets, &[CONTACT_HASH_KEY]).await?;
    let pseudonyms = Pseudonymizer::new(secrets.get(CONTACT_HASH_KEY).expose().as_bytes());
    let master_key = match env.master_key()? {
        MasterKeySource::File(path) => MasterKey::from_key_file(&path)?,
        MasterKeySource::Kms(key_id) => MasterKey::kms(setup.aws.kms.clone(), key_id),
    };
    let dynamodb = setup.aws.dynamodb.clone();
    let s3 = setup.aws.s3();
    let (messages_table, contacts_table) = (env.required("MESSAGES_TABLE")?, env.required("CONTACTS_TABLE")?);
    let (tenants_table, bucket) = (env.required("TENANTS_TABLE")?, env.required("DATA_BUCKET")?);
    let messages = DynamoMessageLog::new(dynamodb.clone(), messages_table.clone(), pseudonyms.clone());
    let contacts = DynamoContacts::new(dynamodb.clone(), contacts_table.clone());
    let worker = PrivacyWorker {
        requests: DynamoPrivacyRequests::new(dynamodb.clone(), tenants_table.clone()),
        audit: DynamoAuditLog::new(dynamodb.clone(), env.required("AUDIT_TABLE")?),
        master_key,
        lookup: IdentityLookup::new(dynamodb.clone(), contacts_table.clone(), pseudonyms.clone()),
        exporter: Exporter::new(messages.clone(), contacts.clone(), s3.clone(), bucket.clone()),
        eraser: Eraser { messages, contacts, s3: s3.clone(), bucket: bucket.clone(), pseudonyms },
        wiper: Wiper {
            dynamodb: dynamodb.clone(),
            messages_table,
            contacts_table,
            tenants_table: tenants_table.clone(),
            routes_table: env.required("ROUTES_TABLE")?,
            s3,
            bucket,
        },
        dynamodb,
        tenants_table,
        clock: setup.clock,
    };
    Ok(Arc::new(Handler(Arc::new(worker))))
}

struct Handler(Arc<PrivacyWorker>);

impl Function for Handler {
    fn invoke(&self, event: Event, _context: Context) -> BoxFuture<'_, Result<Value, Error>> {
        Box::pin(async move {
            let event: SqsEvent = serde_json::from_str(event.get()).map_err(|_| "expected an SQS event")?;
            let response = handle(&event, |body| {
                let worker = self.0.clone();
                async move { worker.handle(&body).await }
            })
            .await?;
            Ok(serde_json::to_value(response)?)
        })
    }
}

/// Runs each record's job in turn, reporting the failed ones; a batch where every record failed
/// is an error (so it shows in the function's error metrics).
pub async fn handle<F, Fut>(event: &SqsEvent, job: F) -> Result<SqsBatchResponse, Error>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<JobOutcome, JobError>>,
{
    let mut failures = Vec::new();
    for record in &event.records {
        let id = record.message_id.as_deref().unwrap_or_default();
        let body = record.body.clone().unwrap_or_default();
        let span = tracing::info_span!("record", message_id = id);
        if let Err(e) = job(body).instrument(span).await {
            tracing::warn!(message_id = id, error = %e, "privacy job failed; it will be retried");
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id.to_owned();
            failures.push(failure);
        }
    }
    if !event.records.is_empty() && failures.len() == event.records.len() {
        return Err(format!("all {} records failed", failures.len()).into());
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::sqs::SqsMessage;
    use concierge::store::StoreError;

    fn event(ids: &[&str]) -> SqsEvent {
        let mut event = SqsEvent::default();
        event.records = ids
            .iter()
            .map(|id| {
                let mut r = SqsMessage::default();
                r.message_id = Some((*id).into());
                r.body = Some((*id).into());
                r
            })
            .collect();
        event
    }

    async fn run(ids: &[&str], failing: &[&str]) -> Result<Vec<String>, String> {
        handle(&event(ids), |body| {
            let fail = failing.contains(&body.as_str());
            async move {
                if fail {
                    Err(JobError::Store(StoreError::Aws { operation: "x", message: "y".into() }))
                } else {
                    Ok(JobOutcome::Gone)
                }
            }
        })
        .await
        .map(|r| r.batch_item_failures.into_iter().map(|f| f.item_identifier).collect())
        .map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn only_the_failed_records_are_reported_and_a_wholly_failed_batch_is_an_error() {
        assert_eq!(run(&["a", "b", "c"], &["b"]).await.unwrap(), ["b"]);
        assert_eq!(run(&["a", "b"], &[]).await.unwrap(), Vec::<String>::new());
        assert!(run(&["a", "b"], &["a", "b"]).await.is_err());
    }
}
