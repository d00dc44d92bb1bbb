//! `privacy export|erase|requests|requeue`: operator privacy requests, filed the way the Shopify
//! compliance webhook files them (the subject sealed for the request with the master key, then
//! `privacy::intake::submit`: the record created, a job naming only tenant and request queued,
//! the record marked queued), the list of requests with their deadlines, and a stuck or failed
//! request's job sent again.

use std::time::{Duration, Instant};

use concierge::clock::{Clock, SystemClock};
use concierge::domain::{E164, RecordId, TenantId};
use concierge::privacy::intake::{self, SubmitError, Submitted};
use concierge::privacy::queue::SqsPrivacyQueue;
use concierge::privacy::requests::{PrivacyRequest, RequestKind, RequestResult, RequestSource, RequestState, Subject};
use concierge::store::requests::{DynamoPrivacyRequests, PrivacyRequests};
use concierge::tenants::{DynamoTenantCatalog, TenantCatalog};
use serde::Serialize;

use crate::cli::SubjectArgs;
use crate::failure::{Failure, Verdict};
use crate::output::{self, Output};
use crate::resources::Stack;

/// The actor operator requests name (and the audit entries of their completion).
pub const ACTOR: &str = "concierge-admin";

/// A request as the CLI shows it: ids, kinds, times and counts, never the subject.
#[derive(Debug, Serialize)]
struct RequestView {
    tenant: String,
    id: String,
    kind: &'static str,
    /// `operator:<actor>` or `shopify:<topic>`.
    source: String,
    state: &'static str,
    received_at: String,
    due_at: String,
    completed_at: Option<String>,
    overdue: bool,
    /// Why it failed (`state = failed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<RequestResult>,
}

fn view(r: &PrivacyRequest, now_ms: i64) -> RequestView {
    RequestView {
        tenant: r.tenant.to_string(),
        id: r.id.to_string(),
        kind: r.kind.as_str(),
        source: match &r.source {
            RequestSource::Operator { actor } => format!("operator:{actor}"),
            RequestSource::Shopify { topic, .. } => format!("shopify:{topic}"),
        },
        state: RequestState::as_str(r.state),
        received_at: output::time(r.received_at_ms),
        due_at: output::time(r.due_at_ms),
        completed_at: r.completed_at_ms.map(output::time),
        overdue: r.is_overdue(now_ms),
        failure: r.failure.clone(),
        result: r.result.clone(),
    }
}

pub async fn file(stack: &Stack, out: Output, kind: RequestKind, args: &SubjectArgs) -> Result<Verdict, Failure> {
    let tenant = crate::parse_tenant(&args.tenant)?;
    let phone = E164::parse(&args.contact)
        .map_err(|_| Failure::Usage("--contact must be a phone number in E.164 (+ and 8 to 15 digits)".into()))?;
    let poll = Duration::try_from_secs_f64(args.poll_interval)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| Failure::Usage("--poll-interval must be a positive number of seconds".into()))?;
    let tenants_table = stack.tenants_table().await?;
    let queue = SqsPrivacyQueue::new(stack.aws.sqs.clone(), stack.privacy_queue_url().await?);
    let key = stack.master_key()?;
    if concierge::tenants::records::read_profile(&stack.aws.dynamodb, &tenants_table, &tenant).await?.is_none() {
        return Err(Failure::Usage(format!("no tenant {tenant} in {tenants_table}")));
    }
    let requests = DynamoPrivacyRequests::new(stack.aws.dynamodb.clone(), tenants_table);

    let id = RecordId::generate();
    let subject = Subject { phone: Some(phone.as_str().to_owned()), ..Subject::default() };
    let sealed =
        subject.seal(&key, &tenant, &id).await.map_err(|e| Failure::Usage(format!("sealing the subject: {e}")))?;
    let source = RequestSource::Operator { actor: ACTOR.into() };
    let record = PrivacyRequest::received(tenant.clone(), id.clone(), kind, source, SystemClock.now_ms(), Some(sealed));
    match intake::submit(&requests, &queue, &record).await {
        Ok(Submitted { duplicate: false, .. }) => {}
        Ok(Submitted { duplicate: true, .. }) => {
            return Err(Failure::Aws(format!("request id {id} was taken; run the command again")));
        }
        Err(SubmitError::Record(e) | SubmitError::Mark(e)) => return Err(e.into()),
        Err(SubmitError::Queue(e)) => {
            return Err(Failure::Aws(format!(
                "request {id} recorded but not queued ({e}); it shows as `received` in `privacy requests`"
            )));
        }
    }
    if !out.json {
        // The number is the operator's own input: echoed here, kept out of the JSON output.
        println!(
            "{} request {id} for {} at {tenant}: queued (due {})",
            kind.as_str(),
            phone.as_str(),
            output::time(record.due_at_ms)
        );
    }
    if !args.wait {
        let stored = requests.get(&tenant, &id).await?.unwrap_or(record);
        if out.json {
            out.emit(String::new, &view(&stored, SystemClock.now_ms()));
        }
        return Ok(Verdict::Yes);
    }
    wait(&requests, out, &tenant, &id, Duration::from_secs(args.timeout), poll).await
}

/// Reads the request (consistently) until it is done or the time is up.
async fn wait(
    requests: &DynamoPrivacyRequests,
    out: Output,
    tenant: &TenantId,
    id: &RecordId,
    timeout: Duration,
    poll: Duration,
) -> Result<Verdict, Failure> {
    let spinner = out.spinner(format!("waiting for request {id}"));
    let until = Instant::now() + timeout;
    loop {
        let request =
            requests.get(tenant, id).await?.ok_or_else(|| Failure::Aws(format!("request {id} disappeared")))?;
        spinner.set_message(format!("request {id}: {}", RequestState::as_str(request.state)));
        let done = request.state == RequestState::Done;
        let failed = request.state == RequestState::Failed;
        if done || failed || Instant::now() >= until {
            spinner.finish_and_clear();
            let v = view(&request, SystemClock.now_ms());
            out.emit(
                || {
                    if done {
                        done_text(&v)
                    } else if failed {
                        format!("request {id}: failed: {}", v.failure.as_deref().unwrap_or("?"))
                    } else {
                        format!("request {id}: still {} after {}s", v.state, timeout.as_secs())
                    }
                },
                &v,
            );
            return Ok(if done { Verdict::Yes } else { Verdict::No });
        }
        tokio::time::sleep(poll.min(until.saturating_duration_since(Instant::now()))).await;
    }
}

fn done_text(v: &RequestView) -> String {
    let mut text = format!("request {}: done at {}", v.id, v.completed_at.as_deref().unwrap_or("?"));
    if let Some(result) = &v.result {
        text.push_str(&format!("\n  counts: {}", output::counts(&result.counts)));
        if result.unmatched {
            text.push_str("\n  unmatched: the identifiers matched no contact");
        }
        for (i, object) in result.objects.iter().enumerate() {
            text.push_str(&format!("\n  {object}"));
            if let Some(link) = result.links.get(i) {
                text.push_str(&format!("\n    {link}"));
            }
        }
    }
    text
}

pub async fn list(stack: &Stack, out: Output, tenant: Option<&str>, overdue_only: bool) -> Result<Verdict, Failure> {
    let tenant = tenant.map(crate::parse_tenant).transpose()?;
    let table = stack.tenants_table().await?;
    let tenants = match tenant {
        Some(t) => vec![t],
        None => DynamoTenantCatalog::new(stack.aws.dynamodb.clone(), table.clone()).tenant_ids().await?,
    };
    let store = DynamoPrivacyRequests::new(stack.aws.dynamodb.clone(), table);
    let now = SystemClock.now_ms();
    let spinner = out.spinner("reading requests");
    let mut views = Vec::new();
    for t in &tenants {
        spinner.set_message(format!("reading the requests of {t}"));
        let found = if overdue_only { store.overdue(t, now).await? } else { store.list(t).await? };
        views.extend(found.iter().map(|r| view(r, now)));
    }
    spinner.finish_and_clear();
    out.emit(|| table_text(&views), &views);
    Ok(Verdict::Yes)
}

pub async fn requeue(
    stack: &Stack,
    out: Output,
    tenant: &str,
    request: &str,
    confirm_wipe: bool,
) -> Result<Verdict, Failure> {
    let tenant = crate::parse_tenant(tenant)?;
    let id =
        RecordId::parse(request).map_err(|_| Failure::Usage(format!("--request {request:?} is not a request id")))?;
    let requests = DynamoPrivacyRequests::new(stack.aws.dynamodb.clone(), stack.tenants_table().await?);
    let stored = requests
        .get(&tenant, &id)
        .await?
        .ok_or_else(|| Failure::Usage(format!("no request {id} of tenant {tenant}")))?;
    if stored.kind == RequestKind::Wipe && stored.state != RequestState::Done && !confirm_wipe {
        return Err(Failure::Usage(format!(
            "request {id} wipes all of {tenant}'s data: check it (a held shop/redact may be a replay), then pass --confirm-wipe"
        )));
    }
    let queue = SqsPrivacyQueue::new(stack.aws.sqs.clone(), stack.privacy_queue_url().await?);
    let sent = match intake::resend(&requests, &queue, &stored, SystemClock.now_ms()).await {
        Ok(sent) => sent,
        Err(SubmitError::Record(e) | SubmitError::Mark(e)) => return Err(e.into()),
        Err(SubmitError::Queue(e)) => return Err(Failure::Aws(format!("request {id} not queued: {e}"))),
    };
    let now = requests.get(&tenant, &id).await?.unwrap_or(stored);
    let v = view(&now, SystemClock.now_ms());
    out.emit(
        || match sent {
            true => format!("request {id}: queued again"),
            false => format!("request {id}: {} already; nothing sent", v.state),
        },
        &v,
    );
    Ok(Verdict::Yes)
}

/// Why a request needs a look: its failure, or a result that matched nobody.
fn note(v: &RequestView) -> &str {
    match (&v.failure, &v.result) {
        (Some(failure), _) => failure,
        (None, Some(result)) if result.unmatched => "unmatched: the identifiers found no contact",
        _ => "",
    }
}

fn table_text(views: &[RequestView]) -> String {
    if views.is_empty() {
        return "no requests".into();
    }
    let mut lines = vec![format!(
        "{:<20} {:<40} {:<8} {:<28} {:<8} {:<20} {:<20} {:<20} {:<8} {}",
        "TENANT", "ID", "KIND", "SOURCE", "STATE", "RECEIVED", "DUE", "COMPLETED", "OVERDUE", "NOTE"
    )];
    for v in views {
        lines.push(format!(
            "{:<20} {:<40} {:<8} {:<28} {:<8} {:<20} {:<20} {:<20} {:<8} {}",
            v.tenant,
            v.id,
            v.kind,
            v.source,
            v.state,
            v.received_at,
            v.due_at,
            v.completed_at.as_deref().unwrap_or("-"),
            if v.overdue { "OVERDUE" } else { "-" },
            note(v)
        ));
    }
    lines.join("\n")
}
