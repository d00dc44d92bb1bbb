//! `inbound-sweeper`: on a schedule, queues again the inbound messages still waiting for an
//! answer some minutes after they arrived (the backstop of ingestion; see `concierge::sweeper`).
//! "Now" is the scheduled event's `time`, so a run can be replayed for any moment.

use std::sync::Arc;

use concierge::config::{CONTACT_HASH_KEY, PlatformSecrets};
use concierge::function::{self, BoxFuture, Error, Event, Function, FunctionEntry, Setup};
use concierge::privacy::Pseudonymizer;
use concierge::queue::SqsInboundQueue;
use concierge::store::messages::DynamoMessageLog;
use concierge::sweeper::{self, Sweeper};
use concierge::tenants::DynamoTenantCatalog;
use lambda_runtime::Context;
use serde_json::Value;

pub type App = Sweeper<DynamoTenantCatalog, DynamoMessageLog, SqsInboundQueue>;

/// How the template names this function's binary, and its composition root.
pub const FUNCTION: FunctionEntry = FunctionEntry { binary: "inbound-sweeper", build: |setup| Box::pin(build(setup)) };

/// The composition root: configuration, secrets, adapters.
pub async fn build(setup: Setup) -> Result<Arc<dyn Function>, Error> {
    let env = &setup.env;
    let secrets = PlatformSecrets::load(env, &setup.aws.secrets, &[CONTACT_HASH_KEY]).await?;
    let dynamodb = setup.aws.dynamodb.clone();
    let pseudonyms = Pseudonymizer::new(secrets.get(CONTACT_HASH_KEY).expose().as_bytes());
    let app: App = Sweeper {
        catalog: DynamoTenantCatalog::new(dynamodb.clone(), env.required("TENANTS_TABLE")?),
        log: DynamoMessageLog::new(dynamodb, env.required("MESSAGES_TABLE")?, pseudonyms.clone()),
        queue: SqsInboundQueue::new(setup.aws.sqs.clone(), env.required("INBOUND_QUEUE_URL")?),
        pseudonyms,
    };
    Ok(Arc::new(Handler(app)))
}

struct Handler(App);

impl Function for Handler {
    fn invoke(&self, event: Event, _context: Context) -> BoxFuture<'_, Result<Value, Error>> {
        Box::pin(async move {
            let now_ms = function::schedule::time_ms(&event)?;
            let report = self.0.sweep(now_ms, sweeper::give_up_at()).await?;
            tracing::info!(
                tenants = report.tenants,
                requeued = report.requeued,
                abandoned = report.abandoned,
                failed = report.failed,
                incomplete = report.incomplete,
                "sweep finished"
            );
            if report.failed > 0 {
                // Reported as a failed invocation, so it shows in metrics and alarms.
                return Err(format!("sweep incomplete: {} steps failed", report.failed).into());
            }
            Ok(serde_json::to_value(report)?)
        })
    }
}
