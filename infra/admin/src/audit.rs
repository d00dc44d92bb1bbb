//! `audit verify`: a tenant's whole stored chain recomputed and checked against its Object Lock
//! anchors (`domain::audit::verify_anchored`), naming the first bad entry.

use concierge::domain::audit::{ChainBreak, verify_anchored};
use concierge::store::audit::{AnchorStore, DynamoAuditLog, read_chain};
use serde::Serialize;

use crate::failure::{Failure, Verdict};
use crate::output::Output;
use crate::resources::Stack;

#[derive(Debug, Serialize)]
struct Report<'a> {
    tenant: &'a str,
    intact: bool,
    /// Entries stored (older ones may have left with the audit retention).
    entries: usize,
    first_seq: Option<u64>,
    head_seq: Option<u64>,
    last_anchored_seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_bad_entry: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

fn bad_entry(b: &ChainBreak) -> u64 {
    match b {
        ChainBreak::Sequence { seq, .. }
        | ChainBreak::Link { seq }
        | ChainBreak::Content { seq }
        | ChainBreak::Unanchored { seq }
        | ChainBreak::Anchor { seq }
        | ChainBreak::Truncated { seq } => *seq,
    }
}

pub async fn verify(stack: &Stack, out: Output, tenant: &str) -> Result<Verdict, Failure> {
    let tenant = crate::parse_tenant(tenant)?;
    let log = DynamoAuditLog::new(stack.aws.dynamodb.clone(), stack.audit_table().await?);
    let anchors = AnchorStore::new(stack.aws.s3(), stack.anchor_bucket().await?);
    let spinner = out.spinner(format!("reading the audit trail of {tenant}"));
    let chain = read_chain(&log, &tenant).await?;
    spinner.set_message("listing its anchors");
    let anchors = anchors.list(&tenant).await?;
    spinner.finish_and_clear();
    let outcome = verify_anchored(&chain, &anchors);
    let report = Report {
        tenant: tenant.as_str(),
        intact: outcome.is_ok(),
        entries: chain.len(),
        first_seq: chain.first().map(|r| r.seq),
        head_seq: chain.last().map(|r| r.seq),
        last_anchored_seq: anchors.last().map(|a| a.seq),
        first_bad_entry: outcome.as_ref().err().map(bad_entry),
        reason: outcome.as_ref().err().map(ToString::to_string),
    };
    out.emit(|| human(&report), &report);
    Ok(if report.intact { Verdict::Yes } else { Verdict::No })
}

fn human(r: &Report) -> String {
    let anchored = r.last_anchored_seq.map_or("none yet".to_owned(), |s| format!("entry {s}"));
    match (&r.reason, r.first_seq, r.head_seq) {
        (Some(reason), ..) => format!(
            "audit trail of {}: BROKEN at entry {}\n  {reason}\n  {} entries stored; last anchored: {anchored}",
            r.tenant,
            r.first_bad_entry.unwrap_or_default(),
            r.entries
        ),
        (None, Some(first), Some(head)) => format!(
            "audit trail of {}: intact\n  {} entries (sequence {first} to {head}); last anchored: {anchored}",
            r.tenant, r.entries
        ),
        (None, ..) => format!("audit trail of {}: intact (no entries yet)", r.tenant),
    }
}
