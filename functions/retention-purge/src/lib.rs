//! `retention-purge`: daily (and on demand with any scheduled event), deletes every tenant's
//! data past its current retention (see `concierge::purge`). "Now" is the event's `time`, so a
//! run can be replayed for any moment; the run stops before the invocation's deadline and the
//! next one goes on where it stopped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use concierge::clock::Clock;
use concierge::function::{self, BoxFuture, Error, Event, Function, FunctionEntry, Setup};
use concierge::purge::{PurgeOptions, PurgeResources, Purger};
use lambda_runtime::Context;
use serde_json::Value;

/// What a run keeps back from its deadline to write its cursors, audit entries and anchors.
const WIND_DOWN: Duration = Duration::from_secs(20);
/// How far ahead of the clock a run's "now" may lie (EventBridge's own delivery delay is far
/// less) unless `PURGE_ALLOW_FUTURE_TIME` is `true`: an event dated years ahead would delete
/// every tenant's data that is not yet due, and move the cursors past it.
const FUTURE_TOLERANCE_MS: i64 = 3_600_000;
/// Without an invocation deadline (a direct call), a run stops after this long.
const DEFAULT_BUDGET: Duration = Duration::from_secs(600);

/// How the template names this function's binary, and its composition root.
pub const FUNCTION: FunctionEntry = FunctionEntry { binary: "retention-purge", build: |setup| Box::pin(build(setup)) };

/// The composition root: configuration and adapters (the purge needs no secrets).
pub async fn build(setup: Setup) -> Result<Arc<dyn Function>, Error> {
    let env = &setup.env;
    let names = PurgeResources {
        messages_table: env.required("MESSAGES_TABLE")?,
        contacts_table: env.required("CONTACTS_TABLE")?,
        tenants_table: env.required("TENANTS_TABLE")?,
        audit_table: env.required("AUDIT_TABLE")?,
        data_bucket: env.required("DATA_BUCKET")?,
        anchor_bucket: env.required("AUDIT_ANCHOR_BUCKET")?,
        privacy_queue_url: env.required("PRIVACY_QUEUE_URL")?,
    };
    let purger = Purger::new(&setup.aws, names);
    let allow_future = env.get("PURGE_ALLOW_FUTURE_TIME") == Some("true");
    Ok(Arc::new(Handler { purger, clock: setup.clock.clone(), allow_future }))
}

struct Handler {
    purger: Purger,
    clock: Arc<dyn Clock>,
    /// Replays at any time (local runs and tests); off in AWS.
    allow_future: bool,
}

impl Function for Handler {
    fn invoke(&self, event: Event, _context: Context) -> BoxFuture<'_, Result<Value, Error>> {
        Box::pin(async move {
            let now_ms = function::schedule::time_ms(&event)?;
            if !self.allow_future && now_ms > self.clock.now_ms() + FUTURE_TOLERANCE_MS {
                return Err(
                    "refusing a purge dated in the future (set PURGE_ALLOW_FUTURE_TIME=true to replay one)".into()
                );
            }
            let left = concierge::invocation::remaining().unwrap_or(DEFAULT_BUDGET);
            let options = PurgeOptions {
                now_ms,
                deadline: Instant::now() + left.saturating_sub(WIND_DOWN),
                max_batches: None,
                dry_run: false,
            };
            let report = self.purger.run(&options).await?;
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
