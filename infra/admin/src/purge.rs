//! `purge --dry-run`: what the retention purge would delete at a chosen time, per tenant and
//! category, counted by the purge's own code (`Purger` with `dry_run`: the same month buckets,
//! nothing written, no cursor moved, no audit entry). Real runs are the RetentionPurgeFunction's
//! (it is audited as `retention-purge` and anchors the chain); this command never deletes.

use std::time::{Duration, Instant};

use concierge::clock::{Clock, SystemClock};
use concierge::purge::{PurgeOptions, PurgeReport, PurgeResources, Purger};
use serde::Serialize;

use crate::cli::PurgeArgs;
use crate::failure::{Failure, Verdict};
use crate::output::{self, Output};
use crate::resources::Stack;

#[derive(Debug, Serialize)]
struct Report {
    now: String,
    #[serde(flatten)]
    purge: PurgeReport,
}

fn parse_now(now: Option<&str>) -> Result<i64, Failure> {
    match now {
        None => Ok(SystemClock.now_ms()),
        Some(text) => text
            .parse::<jiff::Timestamp>()
            .map(|t| t.as_millisecond())
            .map_err(|_| Failure::Usage(format!("--now {text:?}: expected RFC 3339, e.g. 2027-01-01T03:00:00Z"))),
    }
}

pub async fn dry_run(stack: &Stack, out: Output, args: &PurgeArgs) -> Result<Verdict, Failure> {
    if !args.dry_run {
        return Err(Failure::Usage(
            "only --dry-run is supported: a real purge is the RetentionPurgeFunction's run (invoke it with a \
             scheduled event whose `time` is the run's now); it is audited and anchors the chain"
                .into(),
        ));
    }
    let now_ms = parse_now(args.now.as_deref())?;
    let only = args.tenant.as_deref().map(crate::parse_tenant).transpose()?;
    // A dry run never touches anchors, nor requests a cancelled tenant's wipe (it counts it as
    // `wipe_requested`): neither the anchor bucket nor the privacy queue is needed.
    let names = PurgeResources {
        messages_table: stack.messages_table().await?,
        contacts_table: stack.contacts_table().await?,
        tenants_table: stack.tenants_table().await?,
        audit_table: stack.audit_table().await?,
        data_bucket: stack.data_bucket().await?,
        anchor_bucket: String::new(),
        privacy_queue_url: String::new(),
    };
    let purger = Purger::new(&stack.aws, names);
    let options = PurgeOptions {
        now_ms,
        deadline: Instant::now() + Duration::from_secs(args.max_seconds),
        max_batches: None,
        dry_run: true,
    };
    let spinner = out.spinner(format!("counting what a purge at {} would delete", output::time(now_ms)));
    let mut report = purger.run(&options).await?;
    spinner.finish_and_clear();
    if let Some(only) = &only {
        // The purge goes over every tenant of the catalog; the others' figures are dropped.
        report.tenants.retain(|t| t.tenant == only.as_str());
        if report.tenants.is_empty() {
            return Err(Failure::Usage(format!("no tenant {only} in the tenant list")));
        }
    }
    let failed = report.failed();
    let report = Report { now: output::time(now_ms), purge: report };
    out.emit(|| human(&report), &report);
    if failed > 0 {
        eprintln!("concierge-admin: {failed} tenant(s) could not be counted (see their `error`)");
        return Ok(Verdict::Partial);
    }
    Ok(Verdict::Yes)
}

fn human(r: &Report) -> String {
    let mut lines = vec![format!("dry run: a purge at {} would delete (nothing was changed)", r.now)];
    for t in &r.purge.tenants {
        let mut line = format!("  {:<24} {}", t.tenant, output::counts(&t.counts));
        if let Some(error) = &t.error {
            line.push_str(&format!("  [failed: {error}]"));
        } else if !t.complete {
            line.push_str("  [incomplete: --max-seconds reached]");
        }
        lines.push(line);
    }
    if r.purge.tenants.is_empty() {
        lines.push("  (no tenants)".into());
    }
    lines.join("\n")
}
