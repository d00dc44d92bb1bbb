//! Privacy requests through the local stack (the privacy worker's real handler against moto):
//! export of one contact with 1,000 and with 10,000 messages — time, and the process's peak
//! RSS during the export (reset before it through `/proc/self/clear_refs`), which must not
//! grow with the history — then the erasure of each, with its AWS requests per item.
//! A measuring binary rather than a criterion loop: each run consumes its fixture.

use std::collections::BTreeMap;
use std::time::Instant;

use concierge::domain::{RecordId, TenantId};
use concierge::privacy::requests::{PrivacyRequest, RequestKind, RequestSource, Subject};
use concierge::store::requests::{DynamoPrivacyRequests, PrivacyRequests};
use concierge_e2e::*;
use serde_json::json;

/// Bytes of text per message (a chatty customer's message is a few hundred characters).
const MESSAGE_BYTES: usize = 500;

/// Peak resident set size of this process since the last reset, in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn current_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Makes the peak start again from the current RSS (Linux: writing 5 to clear_refs).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

async fn run(t: &TestStack, kind: RequestKind, contact: &str) -> (std::time::Duration, BTreeMap<String, u64>) {
    let tenant = TenantId::parse(TENANT_A).unwrap();
    let id = RecordId::generate();
    let subject = Subject { contact: Some(contact.into()), ..Subject::default() };
    let sealed = subject.seal(&t.stack.master_key, &tenant, &id).await.unwrap();
    let source = RequestSource::Operator { actor: "bench".into() };
    let store = DynamoPrivacyRequests::new(t.dynamodb.clone(), t.table("TenantsTable"));
    store.create(&PrivacyRequest::received(tenant, id.clone(), kind, source, 1, Some(sealed))).await.unwrap();
    let event = json!({"Records": [{"messageId": "m", "receiptHandle": "r", "attributes": {},
        "messageAttributes": {}, "eventSource": "aws:sqs", "awsRegion": "us-east-1",
        "body": json!({"tenant": TENANT_A, "request": id.as_str()}).to_string()}]});
    let worker = t.function("PrivacyWorkerFunction");
    let before = worker.requests.by_operation();
    let started = Instant::now();
    let result = t.invoke("PrivacyWorkerFunction", &event).await.unwrap();
    let took = started.elapsed();
    assert_eq!(result["batchItemFailures"], json!([]), "{result}");
    let mut made = worker.requests.by_operation();
    for (op, n) in before {
        *made.get_mut(&op).unwrap() -= n;
    }
    made.retain(|_, n| *n > 0);
    (took, made)
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let t = TestStack::spawn().await;
        println!("privacy requests through the local stack, {MESSAGE_BYTES}-byte messages");
        // `PRIVACY_BENCH_MESSAGES=1000,10000,20000` to choose the histories.
        let sizes = std::env::var("PRIVACY_BENCH_MESSAGES").unwrap_or_else(|_| "1000,10000".into());
        for n in sizes.split(',').filter_map(|n| n.trim().parse::<usize>().ok()) {
            let contact = &format!("+491700{n:07}");
            history::store_history(&t, contact, n, MESSAGE_BYTES).await;
            let resident = current_rss_kib();
            reset_peak();
            let (took, made) = run(&t, RequestKind::Export, contact).await;
            let peak = peak_rss_kib();
            let requests: u64 = made.values().sum();
            println!(
                "export of {n:>6} messages: {:>7.2} s, peak RSS {:>6} KiB ({:+} KiB over the {} KiB before), \
                 {requests} AWS requests {made:?}",
                took.as_secs_f64(),
                peak,
                peak as i64 - resident as i64,
                resident,
            );
            let (took, made) = run(&t, RequestKind::Erasure, contact).await;
            let requests: u64 = made.values().sum();
            // Items: each message, and the answer key deleted with it.
            println!(
                "erasure of {n:>6} messages: {:>7.2} s, {requests} AWS requests = {:.3} per message {made:?}",
                took.as_secs_f64(),
                requests as f64 / n as f64,
            );
        }
    });
}
