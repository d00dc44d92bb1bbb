//! `retention-purge`: daily (and on demand with any scheduled event), deletes every tenant's
//! data past its current retention (see `concierge::purge`). "Now" is the event's `time`, so a
//! run can be replayed for any moment; the run stops before the invocation's deadline and the
//! next one goes on where it stopped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use concierge::function::{self, BoxFuture, Error, Event, Function, FunctionEntry, Setup};
use concierge::purge::index::ExpiryIndex;
use concierge::purge::{PurgeOptions, Purger};
use concierge::store::audit::{AnchorStore, DynamoAuditLog};
use concierge::tenants::DynamoTenantCatalog;
use lambda_runtime::Context;
use serde_json::Value;

/// What a run keeps back from its deadline to write its cursors, audit entries and anchors.
const WIND_DOWN: Duration = Duration::from_secs(20);
/// Without an invocation deadline (a direct call), a run stops after this long.
const DEFAULT_BUDGET: Duration = Duration::from_secs(600);

/// How the template names this function's binary, and its composition root.
pub const FUNCTION: FunctionEntry = FunctionEntry { binary: "retention-purge", build: |setup| Box::pin(build(setup)) };

/// The composition root: configuration and adapters (the purge needs no secrets).
pub async fn build(setup: Setup) -> Result<Arc<dyn Function>, Error> {
    let env = &setup.env;
    let dynamodb = setup.aws.dynamodb.clone();
    let s3 = setup.aws.s3();
    let purger = Purger {
        index: ExpiryIndex {
            dynamodb: dynamodb.clone(),
            s3: s3.clone(),
            messages_table: env.required("MESSAGES_TABLE")?,
            contacts_table: env.required("CONTACTS_TABLE")?,
            bucket: env.required("DATA_BUCKET")?,
        },
        tenants_table: env.required("TENANTS_TABLE")?,
        catalog: DynamoTenantCatalog::new(dynamodb.clone(), env.required("TENANTS_TABLE")?),
        audit: DynamoAuditLog::new(dynamodb, env.required("AUDIT_TABLE")?),
        anchors: AnchorStore::new(s3, env.required("AUDIT_ANCHOR_BUCKET")?),
    };
    Ok(Arc::new(Handler(purger)))
}

struct Handler(Purger);

impl Function for Handler {
    fn invoke(&self, event: Event, _context: Context) -> BoxFuture<'_, Result<Value, Error>> {
        Box::pin(async move {
            let now_ms = function::schedule::time_ms(&event)?;
            let left = concierge::invocation::remaining().unwrap_or(DEFAULT_BUDGET);
            let options = PurgeOptions {
                now_ms,
                deadline: Instant::now() + left.saturating_sub(WIND_DOWN),
                max_batches: None,
                dry_run: false,
            };
            let report = self.0.run(&options).await?;
            tracing::info!(
                tenants = report.tenants.len(),
                complete = report.complete(),
                failed = report.failed(),
                messages = report.total("messages"),
                objects = report.total("objects"),
                "purge finished"
            );
            if report.failed() > 0 {
                // A failed invocation shows in metrics and alarms; the next run goes on.
                return Err(format!("purge failed for {} tenants", report.failed()).into());
            }
            Ok(serde_json::to_value(report)?)
        })
    }
}
