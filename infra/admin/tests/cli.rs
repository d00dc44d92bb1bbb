//! The real `concierge-admin` binary against a local stack on the emulator: found with nothing
//! but `AWS_ENDPOINT_URL`, the stack's prefix and its key file, as an operator would run it.

use std::collections::HashMap;
use std::process::Stdio;

use aws_sdk_dynamodb::types::AttributeValue;
use concierge::domain::{RecordId, TenantId};
use concierge::function::schedule;
use concierge::privacy::requests::{
    Completion, DUE_AFTER_MS, PrivacyJob, PrivacyRequest, RequestKind, RequestResult, RequestSource, RequestState,
};
use concierge::privacy::retention::{DAY, RetentionDays, audit_ttl};
use concierge::store::audit::{AuditLog, DynamoAuditLog};
use concierge::store::requests::{DynamoPrivacyRequests, PrivacyRequests};
use concierge_e2e::*;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_concierge-admin");
const PHONE: &str = "+4915100000077";
const PHONE_DIGITS: &str = "4915100000077";

fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// What an operator's shell holds for the local stack, and nothing else.
fn admin(t: &TestStack) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("AWS_ENDPOINT_URL", emulator_endpoint())
        .arg("--prefix")
        .arg(t.prefix())
        .arg("--key-file")
        .arg(t.key_file())
        .stdin(Stdio::null());
    cmd
}

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

async fn run(mut cmd: Command, args: &[&str]) -> Ran {
    let out = cmd.args(args).output().await.expect("the binary runs");
    Ran {
        code: out.status.code().expect("exited"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

#[tokio::test]
async fn usage_and_configuration_exit_2_and_an_unreachable_aws_exits_3() {
    // Against AWS, a name the command needs and was not given.
    let mut bare = Command::new(BIN);
    bare.env_clear();
    let ran = run(bare, &["audit", "verify", "--tenant", "acme-dental"]).await;
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(ran.stderr.contains("AUDIT_TABLE"), "{}", ran.stderr);

    // Nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut dead = Command::new(BIN);
    dead.env_clear().env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"));
    let ran = run(dead, &["--json", "audit", "verify", "--tenant", "acme-dental"]).await;
    assert_eq!(ran.code, 3, "{}", ran.stderr);
    assert_eq!(ran.json()["error"], "aws");

    let mut cmd = Command::new(BIN);
    cmd.env_clear();
    assert_eq!(run(cmd, &["purge", "--now", "2027-01-01T00:00:00Z"]).await.code, 2, "no real purge from here");
}

#[tokio::test]
async fn a_wrong_prefix_is_a_configuration_error() {
    // The emulator answers; no stack has this prefix.
    let mut cmd = Command::new(BIN);
    cmd.env_clear().env("AWS_ENDPOINT_URL", emulator_endpoint()).args(["--prefix", "nobody"]);
    let ran = run(cmd, &["audit", "verify", "--tenant", TENANT_A]).await;
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(ran.stderr.contains("nobody-AuditTable does not exist"), "{}", ran.stderr);
}

/// Five entries in `tenant`'s trail.
/// After the loader's entry for the tenant's creation, 4 entries: 5 in all.
async fn trail(t: &TestStack, tenant: &str) {
    let log = DynamoAuditLog::new(t.dynamodb.clone(), t.table("AuditTable"));
    let tenant = TenantId::parse(tenant).unwrap();
    let now = now_secs();
    for n in 0..4 {
        log.append(&tenant, seed::audit_entry(now * 1000, n), audit_ttl(now)).await.unwrap();
    }
}

fn audit_key(tenant: &str, seq: u64) -> [(String, AttributeValue); 2] {
    [("pk".into(), AttributeValue::S(format!("{tenant}#AUDIT"))), ("seq".into(), AttributeValue::N(seq.to_string()))]
}

#[tokio::test]
async fn audit_verify_passes_an_intact_chain_and_names_a_changed_or_deleted_entry() {
    let t = TestStack::spawn().await;
    trail(&t, TENANT_A).await;
    trail(&t, TENANT_B).await;
    let event = schedule::event("arn:aws:events:us-east-1:000000000000:rule/purge", now_secs() * 1000, "e2e");
    t.invoke("RetentionPurgeFunction", &event).await.expect("a purge run anchors each head");

    for tenant in [TENANT_A, TENANT_B] {
        let ran = run(admin(&t), &["audit", "verify", "--tenant", tenant]).await;
        assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
        assert!(ran.stdout.contains("intact") && ran.stdout.contains("last anchored: entry 6"), "{}", ran.stdout);
    }
    let intact = run(admin(&t), &["--json", "audit", "verify", "--tenant", TENANT_A]).await.json();
    assert_eq!((intact["intact"].as_bool(), intact["entries"].as_u64()), (Some(true), Some(6)), "{intact}");
    assert_eq!(intact["last_anchored_seq"], 6);

    // One stored entry of A changed in place.
    t.dynamodb
        .update_item()
        .table_name(t.table("AuditTable"))
        .set_key(Some(audit_key(TENANT_A, 3).into_iter().collect()))
        .update_expression("SET actor = :a")
        .expression_attribute_values(":a", AttributeValue::S("someone else".into()))
        .send()
        .await
        .unwrap();
    let ran = run(admin(&t), &["audit", "verify", "--tenant", TENANT_A]).await;
    assert_eq!(ran.code, 1, "{}", ran.stdout);
    assert!(
        ran.stdout.contains("BROKEN at entry 3") && ran.stdout.contains("does not match its hash"),
        "{}",
        ran.stdout
    );
    let broken = run(admin(&t), &["--json", "audit", "verify", "--tenant", TENANT_A]).await;
    assert_eq!(broken.code, 1);
    let broken = broken.json();
    assert_eq!((broken["intact"].as_bool(), broken["first_bad_entry"].as_u64()), (Some(false), Some(3)), "{broken}");

    // One stored entry of B deleted: the entry after the gap is the first that does not fit.
    t.dynamodb
        .delete_item()
        .table_name(t.table("AuditTable"))
        .set_key(Some(audit_key(TENANT_B, 2).into_iter().collect()))
        .send()
        .await
        .unwrap();
    let ran = run(admin(&t), &["--json", "audit", "verify", "--tenant", TENANT_B]).await;
    assert_eq!(ran.code, 1, "{}", ran.stdout);
    let broken = ran.json();
    assert_eq!(broken["first_bad_entry"], 3, "{broken}");
    assert!(broken["reason"].as_str().unwrap().contains("an entry is missing"), "{broken}");
}

/// Every item of the stack's tables and every object key.
struct Snapshot {
    items: Vec<(&'static str, HashMap<String, AttributeValue>)>,
    objects: Vec<String>,
}

async fn snapshot(t: &TestStack) -> Snapshot {
    let mut items = Vec::new();
    for table in ["MessagesTable", "ContactsTable", "TenantsTable", "AuditTable"] {
        items.extend(t.scan(table).await.into_iter().map(|item| (table, item)));
    }
    let mut objects = Vec::new();
    for bucket in ["DataBucket", "AuditAnchorBucket"] {
        objects.extend(t.objects(bucket).await.into_iter().map(|key| format!("{bucket}/{key}")));
    }
    objects.sort();
    Snapshot { items, objects }
}

/// The same items (compared as values, whatever their order) and the same objects.
fn unchanged(before: &Snapshot, after: &Snapshot) -> bool {
    before.objects == after.objects
        && before.items.len() == after.items.len()
        && after.items.iter().all(|i| before.items.contains(i))
}

fn rfc3339(secs: i64) -> String {
    jiff::Timestamp::from_second(secs).unwrap().to_string()
}

#[tokio::test]
async fn purge_dry_run_reports_what_would_go_per_tenant_and_category_and_changes_nothing() {
    let t = TestStack::spawn().await;
    let t0 = now_secs();
    seed::messages(&t, TENANT_A, &seed::contact(1), t0, 5, 2, &RetentionDays::default()).await;
    // B keeps messages 365 days (the example tenants).
    let b_retention = RetentionDays { messages: 365, ..RetentionDays::default() };
    seed::messages(&t, TENANT_B, &seed::contact(2), t0 + 400 * DAY, 3, 0, &b_retention).await;
    let before = snapshot(&t).await;

    // Day 732: A's messages of day 0 are past 730 days (with their media); B's of day 400 are
    // 332 days old.
    let ran = run(admin(&t), &["--json", "purge", "--dry-run", "--now", &rfc3339(t0 + 732 * DAY)]).await;
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    let report = ran.json();
    assert_eq!(report["dry_run"], true);
    let tenant = |id: &str| report["tenants"].as_array().unwrap().iter().find(|r| r["tenant"] == id).cloned().unwrap();
    assert_eq!(tenant(TENANT_A)["counts"]["messages"], 5, "{report}");
    assert_eq!(tenant(TENANT_A)["counts"]["objects"], 10, "{report}");
    assert!(tenant(TENANT_B)["counts"].get("messages").is_none(), "{report}");
    assert!(unchanged(&before, &snapshot(&t).await), "a dry run writes nothing: no delete, no cursor, no audit entry");

    // Today nothing is due; one tenant asked, one tenant answered.
    let ran = run(admin(&t), &["--json", "purge", "--dry-run", "--tenant", TENANT_A]).await;
    let report = ran.json();
    assert_eq!(report["tenants"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(report["tenants"][0]["counts"], serde_json::json!({}), "{report}");
    let ran = run(admin(&t), &["purge", "--dry-run", "--tenant", TENANT_B]).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(ran.stdout.contains("bella-salon") && ran.stdout.contains("nothing"), "{}", ran.stdout);
    assert!(!ran.stdout.contains("acme-dental"), "{}", ran.stdout);
    assert!(unchanged(&before, &snapshot(&t).await));
}

fn request(tenant: &str, id: &str, received_at_ms: i64) -> PrivacyRequest {
    let mut r = PrivacyRequest::received(
        TenantId::parse(tenant).unwrap(),
        RecordId::parse(id).unwrap(),
        RequestKind::Wipe,
        RequestSource::Operator { actor: "e2e".into() },
        received_at_ms,
        None,
    );
    r.state = RequestState::Queued;
    r
}

#[tokio::test]
async fn privacy_requests_overdue_lists_an_overdue_request_and_not_a_fresh_one() {
    let t = TestStack::spawn().await;
    let store = DynamoPrivacyRequests::new(t.dynamodb.clone(), t.table("TenantsTable"));
    let now_ms = now_secs() * 1000;
    store.create(&request(TENANT_A, "old-one", now_ms - DUE_AFTER_MS - DAY * 1000)).await.unwrap();
    store.create(&request(TENANT_B, "fresh-one", now_ms)).await.unwrap();

    // Every tenant, through the tenant list.
    let all = run(admin(&t), &["--json", "privacy", "requests"]).await.json();
    let ids: Vec<(&str, bool)> =
        all.as_array().unwrap().iter().map(|r| (r["id"].as_str().unwrap(), r["overdue"].as_bool().unwrap())).collect();
    assert_eq!(ids, [("old-one", true), ("fresh-one", false)], "{all}");
    assert_eq!(all[0]["tenant"], TENANT_A);
    assert_eq!(all[0]["state"], "queued");
    assert_eq!(all[0]["source"], "operator:e2e");

    let overdue = run(admin(&t), &["--json", "privacy", "requests", "--overdue"]).await.json();
    let ids: Vec<&str> = overdue.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["old-one"], "{overdue}");
    let overdue_b = run(admin(&t), &["--json", "privacy", "requests", "--overdue", "--tenant", TENANT_B]).await.json();
    assert_eq!(overdue_b, serde_json::json!([]));

    let table = run(admin(&t), &["privacy", "requests", "--overdue"]).await;
    assert!(table.stdout.contains("old-one") && table.stdout.contains("OVERDUE"), "{}", table.stdout);
    assert!(!table.stdout.contains("fresh-one"), "{}", table.stdout);
}

#[tokio::test]
async fn privacy_export_and_erase_record_a_sealed_request_and_queue_only_a_reference() {
    let t = TestStack::spawn().await;
    let ran = run(admin(&t), &["--json", "privacy", "export", "--tenant", TENANT_A, "--contact", PHONE]).await;
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    assert!(!ran.stdout.contains(PHONE_DIGITS), "JSON output holds ids and counts only: {}", ran.stdout);
    let printed = ran.json();
    assert_eq!((printed["kind"].as_str(), printed["state"].as_str()), (Some("export"), Some("queued")), "{printed}");
    let erase = run(admin(&t), &["--json", "privacy", "erase", "--tenant", TENANT_A, "--contact", PHONE]).await.json();
    assert_eq!(erase["kind"], "erasure");

    let stored = t.privacy_requests(TENANT_A).await;
    assert_eq!(stored.len(), 2);
    let export = stored.iter().find(|r| r.id.as_str() == printed["id"].as_str().unwrap()).expect("the printed id");
    assert_eq!(export.kind, RequestKind::Export);
    assert_eq!(export.source, RequestSource::Operator { actor: "concierge-admin".into() });
    assert_eq!(export.state, RequestState::Queued);
    assert_eq!(export.due_at_ms, export.received_at_ms + DUE_AFTER_MS);
    let subject = export.open_subject(&t.stack.master_key).await.unwrap().expect("a sealed subject");
    assert_eq!(subject.phone.as_deref(), Some(PHONE), "opens with the stack's key, for this request only");
    let raw = t.scan("TenantsTable").await;
    assert!(!format!("{raw:?}").contains(PHONE_DIGITS), "the number is stored sealed only");

    let jobs = t.privacy_jobs().await;
    assert_eq!(jobs.len(), 2);
    for body in &jobs {
        assert!(!body.contains(PHONE_DIGITS), "{body}");
        let job: PrivacyJob = serde_json::from_str(body).expect("tenant and request, nothing else");
        assert!(stored.iter().any(|r| r.id == job.request && r.tenant == job.tenant), "{body}");
    }

    let bad = run(admin(&t), &["privacy", "erase", "--tenant", TENANT_A, "--contact", "not-a-number"]).await;
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    let unknown = run(admin(&t), &["privacy", "erase", "--tenant", "nobody", "--contact", PHONE]).await;
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert_eq!(t.privacy_requests(TENANT_A).await.len(), 2, "nothing filed for bad input");
}

/// Does the request's work: the privacy worker, through its queue mapping.
async fn work_on(t: &TestStack) {
    let outcome = t.mapping("PrivacyWorkerFunction").poll_once(&t.sqs, std::time::Duration::ZERO).await.expect("poll");
    assert!(outcome.received > 0, "the job was on the queue");
}

#[tokio::test]
async fn privacy_requeue_sends_a_failed_or_stuck_request_again_and_leaves_a_done_one() {
    let t = TestStack::spawn().await;
    let store = DynamoPrivacyRequests::new(t.dynamodb.clone(), t.table("TenantsTable"));
    let tenant = TenantId::parse(TENANT_A).unwrap();
    let failed = request(TENANT_A, "failed-one", now_secs() * 1000);
    store.create(&failed).await.unwrap();
    store.fail(&tenant, &failed.id, "the request has no subject to act on").await.unwrap();
    let listed = run(admin(&t), &["--json", "privacy", "requests", "--tenant", TENANT_A]).await.json();
    assert_eq!(
        (listed[0]["state"].as_str(), listed[0]["failure"].as_str()),
        (Some("failed"), Some("the request has no subject to act on")),
        "{listed}"
    );

    let table = run(admin(&t), &["privacy", "requests", "--tenant", TENANT_A]).await;
    assert!(table.stdout.contains("failed") && table.stdout.contains("no subject to act on"), "{}", table.stdout);
    // A wipe: refused without the operator's explicit confirmation, and nothing sent.
    let unconfirmed = run(admin(&t), &["privacy", "requeue", "--tenant", TENANT_A, "--request", "failed-one"]).await;
    assert_eq!(unconfirmed.code, 2, "{}", unconfirmed.stderr);
    assert!(unconfirmed.stderr.contains("--confirm-wipe"), "{}", unconfirmed.stderr);
    assert!(t.privacy_jobs().await.is_empty(), "no job without the confirmation");
    let args = ["--json", "privacy", "requeue", "--tenant", TENANT_A, "--request", "failed-one", "--confirm-wipe"];
    let ran = run(admin(&t), &args).await;
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    let printed = ran.json();
    assert_eq!(printed["state"], "queued", "{printed}");
    assert!(printed.get("failure").is_none(), "{printed}");
    let jobs = t.privacy_jobs().await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let job: PrivacyJob = serde_json::from_str(&jobs[0]).expect("tenant and request");
    assert_eq!((job.tenant.as_str(), job.request.as_str()), (TENANT_A, "failed-one"));

    // Done: nothing sent. Unknown: a usage error.
    let completion =
        Completion { completed_at_ms: now_secs() * 1000, result: RequestResult::default(), subject_hash: None };
    store.complete(&tenant, &failed.id, &completion).await.unwrap();
    let again =
        run(admin(&t), &["privacy", "requeue", "--tenant", TENANT_A, "--request", "failed-one", "--confirm-wipe"])
            .await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stdout.contains("nothing sent"), "{}", again.stdout);
    assert!(t.privacy_jobs().await.is_empty(), "no job for a done request");
    let unknown = run(admin(&t), &["privacy", "requeue", "--tenant", TENANT_A, "--request", "never-was"]).await;
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
}

#[tokio::test]
async fn export_wait_ends_when_the_request_is_done_and_gives_up_at_its_timeout() {
    let t = TestStack::spawn().await;
    // Not done in time: exit 1, still queued.
    let ran = run(
        admin(&t),
        &["--json", "privacy", "export", "--tenant", TENANT_A, "--contact", PHONE, "--wait", "--timeout", "0"],
    )
    .await;
    assert_eq!(ran.code, 1, "{}{}", ran.stdout, ran.stderr);
    assert_eq!(ran.json()["state"], "queued");
    t.privacy_jobs().await; // that job stays in flight, out of the next one's way

    let mut child = admin(&t)
        .args(["privacy", "export", "--tenant", TENANT_A, "--contact", PHONE, "--wait", "--poll-interval", "0.05"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    // The confirmation comes once the request is recorded and queued.
    let mut first = String::new();
    stdout.read_line(&mut first).await.unwrap();
    let id = first.split_whitespace().nth(2).expect("`export request <id> …`").to_owned();
    assert!(first.contains("queued"), "{first}");
    work_on(&t).await;

    let status = child.wait().await.unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).await.unwrap();
    assert_eq!(status.code(), Some(0), "{rest}");
    assert!(rest.contains(&format!("request {id}: done")), "{rest}");
    assert!(rest.contains("counts:") && rest.contains(&format!("{TENANT_A}/exports/{id}/")), "{rest}");
}
