//! The retention purge end to end: the function (or its core) against the emulator, on data
//! seeded with chosen ages in the production layout.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use concierge::aws::{AwsClients, RequestCounter};
use concierge::function::schedule;
use concierge::privacy::retention::{DAY, RetentionDays, TTL_GRACE_DAYS};
use concierge::purge::{PurgeOptions, PurgeReport, PurgeResources, Purger};
use concierge_e2e::*;
use serde_json::Value;

fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn retention(messages: u32) -> RetentionDays {
    RetentionDays { messages, ..RetentionDays::default() }
}

/// Changes one retention setting of a tenant's stored profile, as an operator would.
async fn set_retention(t: &TestStack, tenant: &str, category: &str, days: u32) {
    t.dynamodb
        .update_item()
        .table_name(t.table("TenantsTable"))
        .key("pk", AttributeValue::S(tenant.into()))
        .key("sk", AttributeValue::S("PROFILE".into()))
        .update_expression("SET retention.#c = :d")
        .expression_attribute_names("#c", category)
        .expression_attribute_values(":d", AttributeValue::N(days.to_string()))
        .send()
        .await
        .unwrap();
}

/// Runs the deployed function as EventBridge would, at `at` (unix seconds).
async fn purge_at(t: &TestStack, at: i64) -> Value {
    let event = schedule::event("arn:aws:events:us-east-1:000000000000:rule/purge", at * 1000, "e2e");
    let report = t.invoke("RetentionPurgeFunction", &event).await.expect("purge runs");
    assert_eq!(report["tenants"].as_array().unwrap().iter().filter(|r| r.get("error").is_some()).count(), 0);
    report
}

/// The purge core with the function's configuration, its requests counted apart.
fn purger(t: &TestStack) -> (Purger, RequestCounter) {
    let env = &t.function("RetentionPurgeFunction").env;
    let counter = RequestCounter::default();
    let aws = AwsClients::new(&t.stack.sdk, counter.clone());
    let name = |v: &str| env[v].clone();
    let purger = Purger::new(
        &aws,
        PurgeResources {
            messages_table: name("MESSAGES_TABLE"),
            contacts_table: name("CONTACTS_TABLE"),
            tenants_table: name("TENANTS_TABLE"),
            audit_table: name("AUDIT_TABLE"),
            data_bucket: name("DATA_BUCKET"),
            anchor_bucket: name("AUDIT_ANCHOR_BUCKET"),
            privacy_queue_url: name("PRIVACY_QUEUE_URL"),
        },
    );
    (purger, counter)
}

async fn run(purger: &Purger, at: i64, max_batches: Option<u64>) -> PurgeReport {
    let options = PurgeOptions {
        now_ms: at * 1000,
        deadline: Instant::now() + Duration::from_secs(120),
        max_batches,
        dry_run: false,
    };
    purger.run(&options).await.expect("purge runs")
}

async fn present(t: &TestStack, keys: &[String]) -> usize {
    let mut n = 0;
    for key in keys {
        n += usize::from(t.message(key).await.is_some());
    }
    n
}

#[tokio::test]
async fn what_is_past_each_tenants_retention_goes_and_younger_data_stays() {
    let t = TestStack::spawn().await;
    let t0 = now_secs();
    let (c1, c2) = (seed::contact(1), seed::contact(2));
    let a_old = seed::messages(&t, TENANT_A, &c1, t0, 5, 2, &RetentionDays::default()).await;
    let a_new = seed::messages(&t, TENANT_A, &c1, t0 + 40 * DAY, 5, 0, &RetentionDays::default()).await;
    set_retention(&t, TENANT_B, "messages", 30).await;
    let b_old = seed::messages(&t, TENANT_B, &c2, t0, 5, 0, &retention(30)).await;
    let b_new = seed::messages(&t, TENANT_B, &c2, t0 + 40 * DAY, 5, 0, &retention(30)).await;
    seed::activity(&t, TENANT_B, &c2, t0).await;
    assert_eq!(t.objects("DataBucket").await.len(), 10, "two media copies per old message of A");

    // Day 32: only B's 30-day retention has passed, for the messages of day 0 and its contact.
    let report = purge_at(&t, t0 + 32 * DAY).await;
    assert_eq!(present(&t, &b_old).await, 0);
    assert_eq!(present(&t, &b_new).await, 5);
    assert_eq!(present(&t, &a_old).await + present(&t, &a_new).await, 10, "A keeps 24 months");
    let contacts = t.scan("ContactsTable").await;
    assert!(
        !contacts.iter().any(|i| i["pk"].as_s().unwrap().starts_with(&format!("{TENANT_B}#C#"))),
        "B's contact went"
    );
    let b = report["tenants"].as_array().unwrap().iter().find(|r| r["tenant"] == TENANT_B).unwrap();
    assert_eq!(b["counts"]["messages"], 5 + 2, "5 messages, the contact and its conversation: {b}");
    assert_eq!(b["complete"], true);

    // Day 732: A's messages of day 0 are past 730 days, with their media; those of day 40 stay.
    purge_at(&t, t0 + 732 * DAY).await;
    assert_eq!(present(&t, &a_old).await, 0);
    assert_eq!(present(&t, &a_new).await, 5);
    assert!(t.objects("DataBucket").await.is_empty(), "media copies deleted with their messages");
}

#[tokio::test]
async fn a_retention_shortened_after_the_fact_applies_to_data_already_stored() {
    let t = TestStack::spawn().await;
    let t0 = now_secs();
    let old = seed::messages(&t, TENANT_A, &seed::contact(1), t0, 8, 0, &RetentionDays::default()).await;
    purge_at(&t, t0 + 100 * DAY).await;
    assert_eq!(present(&t, &old).await, 8, "100 days old, 730 kept");
    set_retention(&t, TENANT_A, "messages", 60).await;
    purge_at(&t, t0 + 100 * DAY).await;
    assert_eq!(present(&t, &old).await, 0, "the new setting reaches them at the next run");
}

#[tokio::test]
async fn a_lengthened_retention_keeps_the_data_and_moves_the_ttl_backstop_past_it() {
    let t = TestStack::spawn().await;
    let t0 = now_secs();
    set_retention(&t, TENANT_B, "messages", 30).await;
    let kept = seed::messages(&t, TENANT_B, &seed::contact(2), t0, 6, 0, &retention(30)).await;
    let ttl = |item: &std::collections::HashMap<String, AttributeValue>| -> i64 {
        item["expires_at"].as_n().unwrap().parse().unwrap()
    };
    let first = t.message(&kept[0]).await.unwrap();
    assert!(ttl(&first) < t0 + 40 * DAY, "stamped for 30 days");

    // The daily run has seen the 30-day setting (its cursor remembers what the stamps assume).
    purge_at(&t, t0 + DAY).await;
    set_retention(&t, TENANT_B, "messages", 400).await;
    purge_at(&t, t0 + 10 * DAY).await;
    for key in &kept {
        let item = t.message(key).await.expect("kept");
        assert!(ttl(&item) >= t0 + (400 + 1) * DAY, "the backstop never fires before 400 days");
    }
    // Past the old retention and the old backstop: still there.
    purge_at(&t, t0 + (31 + TTL_GRACE_DAYS) * DAY).await;
    assert_eq!(present(&t, &kept).await, 6);
    purge_at(&t, t0 + 402 * DAY).await;
    assert_eq!(present(&t, &kept).await, 0, "and they go at the new retention");
}

/// E expired items among N live ones: the requests follow E, the tenants and the months, never
/// N. Half the live items share the expired ones' month bucket (an hour younger than the
/// cutoff): the bucket's sort key keeps them out of the purge's reads too.
#[tokio::test]
async fn the_cost_follows_what_expired_not_what_is_stored() {
    const EXPIRED: usize = 500;
    const LIVE: usize = 20_000;
    let t = TestStack::spawn().await;
    let t0 = now_secs();
    let default = RetentionDays::default();
    let expired = seed::messages(&t, TENANT_A, &seed::contact(1), t0, EXPIRED, 0, &default).await;
    let same_month = seed::messages(&t, TENANT_A, &seed::contact(2), t0 + 7_200, LIVE / 2, 0, &default).await;
    seed::messages(&t, TENANT_A, &seed::contact(3), t0 + 200 * DAY, LIVE / 2, 0, &default).await;

    let requests = &t.function("RetentionPurgeFunction").requests;
    let at = t0 + 730 * DAY + 3_600;
    purge_at(&t, at).await;
    assert_eq!(present(&t, &expired[..50]).await, 0);
    assert_eq!(present(&t, &same_month[..50]).await, 50, "an hour younger than the cutoff: kept");
    let ops = requests.by_operation();
    assert_eq!(ops.get("DynamoDB:Scan"), None, "{ops:?}");
    assert_eq!(ops.get("DynamoDB:BatchWriteItem").copied().unwrap_or(0), expected_batches(&expired), "{ops:?}");

    // The bound: per tenant a constant (profile, cursors, audit, anchor); per tenant, category
    // table and month since the tenant's first one, one Query per shard; per 25 expired items
    // one batch (plus one partial batch per shard). N appears nowhere.
    let first = concierge::clock::utc_month(t0);
    let mut queries = 0;
    for tenant in [TENANT_A, TENANT_B] {
        let id = concierge::domain::TenantId::parse(tenant).unwrap();
        let profile = concierge::tenants::records::read_profile(&t.dynamodb, &t.table("TenantsTable"), &id).await;
        let retention = profile.unwrap().unwrap().retention;
        for c in concierge::privacy::retention::Category::ALL {
            let cutoff = concierge::purge::plan::cutoff(at, retention.days(c));
            let months = (concierge::clock::utc_month(cutoff) - first + 1).max(0) as u64;
            queries += concierge::purge::tables(c).len() as u64 * u64::from(concierge::store::keys::SHARDS) * months;
        }
    }
    let tenants = 2;
    let bound = 1 + tenants * 16 + queries + (EXPIRED as u64 / 25 + 8);
    let total = requests.get();
    assert!(total <= bound, "{total} requests for {EXPIRED} expired among {LIVE} live > {bound}: {ops:?}");
    eprintln!("purge of {EXPIRED} expired among {LIVE} live items: {total} requests (bound {bound}) {ops:?}");
}

/// One `BatchWriteItem` per 25 expired items of each shard's bucket.
fn expected_batches(keys: &[String]) -> u64 {
    let mut per_shard = [0u64; concierge::store::keys::SHARDS as usize];
    for key in keys {
        per_shard[concierge::store::keys::shard_of(key) as usize] += 1;
    }
    per_shard.iter().map(|n| n.div_ceil(25)).sum()
}

/// What a purge leaves: every key of the data tables and every object.
async fn end_state(t: &TestStack) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for table in ["MessagesTable", "ContactsTable"] {
        for item in t.scan(table).await {
            let sk = item.get("sk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            out.insert(format!("{table} {} {sk}", item["pk"].as_s().unwrap()));
        }
    }
    out.extend(t.objects("DataBucket").await.into_iter().map(|k| format!("object {k}")));
    out
}

async fn seeded(t0: i64) -> TestStack {
    let t = TestStack::spawn().await;
    seed_into(&t, t0).await;
    t
}

/// Two tenants, three ages (two past 730 days at the runs' time), media, contacts.
async fn seed_into(t: &TestStack, t0: i64) {
    let default = RetentionDays::default();
    seed::messages(t, TENANT_A, &seed::contact(1), t0, 120, 1, &default).await;
    seed::messages(t, TENANT_A, &seed::contact(2), t0 + DAY, 60, 0, &default).await;
    seed::messages(t, TENANT_A, &seed::contact(3), t0 + 300 * DAY, 30, 0, &default).await;
    seed::messages(t, TENANT_B, &seed::contact(4), t0, 90, 0, &default).await;
    seed::activity(t, TENANT_A, &seed::contact(1), t0).await;
    seed::activity(t, TENANT_B, &seed::contact(4), t0 + DAY).await;
}

#[tokio::test]
async fn a_run_stopped_after_k_batches_then_run_again_ends_like_an_uninterrupted_one() {
    let t0 = now_secs();
    let at = t0 + 733 * DAY;
    let whole = seeded(t0).await;
    let report = run(&purger(&whole).0, at, None).await;
    assert!(report.complete());
    let expected = end_state(&whole).await;
    assert!(expected.iter().any(|k| k.contains(&seed::contact(3).key())), "young data stays");
    assert!(!expected.iter().any(|k| k.starts_with("object")), "media went");

    for k in [1, 4, 11] {
        let t = seeded(t0).await;
        let before = end_state(&t).await;
        let (purger, _) = purger(&t);
        let stopped = run(&purger, at, Some(k)).await;
        assert!(!stopped.complete(), "k = {k}: stopped early");
        let midway = end_state(&t).await;
        assert!(midway.len() < before.len() && midway != expected, "k = {k}: stopped part way");
        assert!(run(&purger, at, None).await.complete());
        assert_eq!(end_state(&t).await, expected, "k = {k}");
    }
}

#[tokio::test]
async fn a_run_that_crashes_part_way_then_runs_again_ends_like_an_uninterrupted_one() {
    let t0 = now_secs();
    let at = t0 + 733 * DAY;
    let whole = seeded(t0).await;
    run(&purger(&whole).0, at, None).await;
    let expected = end_state(&whole).await;

    let proxy = FaultProxy::start(emulator_endpoint()).await;
    let t = TestStack::spawn_through(&proxy.endpoint).await;
    seed_into(&t, t0).await;
    // Every batch deleting messages of contact 2 fails: A's run dies part way.
    proxy.inject_where("BatchWriteItem", &seed::contact(2).key(), Fault::Fail);
    let (purger, _) = purger(&t);
    let crashed = purger.run(&options(at)).await.unwrap();
    assert_eq!(crashed.failed(), 1, "A's run failed");
    proxy.clear();
    assert!(run(&purger, at, None).await.complete());
    assert_eq!(end_state(&t).await, expected);
}

fn options(at: i64) -> PurgeOptions {
    PurgeOptions {
        now_ms: at * 1000,
        deadline: Instant::now() + Duration::from_secs(120),
        max_batches: None,
        dry_run: false,
    }
}

#[tokio::test]
async fn a_dry_run_counts_what_would_go_and_changes_nothing() {
    let t0 = now_secs();
    let t = seeded(t0).await;
    let before = end_state(&t).await;
    let (purger, counter) = purger(&t);
    let options = PurgeOptions { dry_run: true, ..options(t0 + 733 * DAY) };
    let report = purger.run(&options).await.unwrap();
    let a = report.tenants.iter().find(|r| r.tenant == TENANT_A).unwrap();
    assert_eq!(a.counts.get("messages"), Some(&(120 + 60 + 2)), "{a:?}");
    assert_eq!(a.counts.get("objects"), Some(&120));
    assert_eq!(end_state(&t).await, before);
    let writes = ["BatchWriteItem", "DeleteItem", "PutItem", "UpdateItem", "DeleteObjects", "PutObject"];
    let ops = counter.by_operation();
    assert!(ops.keys().all(|op| !writes.iter().any(|w| op.ends_with(&format!(":{w}")))), "{ops:?}");
}

#[tokio::test]
async fn a_tenant_cancelled_30_days_ago_gets_its_wipe_requested_once() {
    let t = TestStack::spawn().await;
    let t0 = now_secs();
    t.dynamodb
        .update_item()
        .table_name(t.table("TenantsTable"))
        .key("pk", AttributeValue::S(TENANT_A.into()))
        .key("sk", AttributeValue::S("PROFILE".into()))
        .update_expression("SET suspended_at = :at")
        .expression_attribute_values(":at", AttributeValue::N(t0.to_string()))
        .send()
        .await
        .unwrap();
    purge_at(&t, t0 + 29 * DAY).await;
    assert!(t.privacy_requests(TENANT_A).await.is_empty(), "the data is kept for 30 days");

    purge_at(&t, t0 + 31 * DAY).await;
    // A second run within the hours its job may still be in flight.
    purge_at(&t, t0 + 31 * DAY + 3_600).await;
    let requests = t.privacy_requests(TENANT_A).await;
    assert_eq!(requests.len(), 1, "one wipe per cancellation");
    assert_eq!(requests[0].kind, concierge::privacy::requests::RequestKind::Wipe);
    assert_eq!(requests[0].state, concierge::privacy::requests::RequestState::Queued);
    let jobs = t.privacy_jobs().await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert!(jobs[0].contains(TENANT_A) && jobs[0].contains(requests[0].id.as_str()));
    assert!(t.privacy_requests(TENANT_B).await.is_empty(), "B is not cancelled");
}

#[tokio::test]
async fn a_request_whose_job_was_lost_gets_it_again_from_the_next_run() {
    use concierge::privacy::requests::{Completion, PrivacyRequest, RequestKind, RequestSource, RequestState};
    use concierge::store::requests::{DynamoPrivacyRequests, PrivacyRequests};
    let t = TestStack::spawn().await;
    let t0 = now_secs();
    let store = DynamoPrivacyRequests::new(t.dynamodb.clone(), t.table("TenantsTable"));
    let tenant = concierge::domain::TenantId::parse(TENANT_A).unwrap();
    let received = |id: &str, at: i64| {
        let source = RequestSource::Operator { actor: "e2e".into() };
        let id = concierge::domain::RecordId::parse(id).unwrap();
        PrivacyRequest::received(tenant.clone(), id, RequestKind::Wipe, source, at * 1000, None)
    };
    // Dead-lettered (queued a day ago, no job left), never sent (Shopify gave up), still within
    // its retries, done, failed.
    for (id, at) in
        [("dead", t0 - DAY), ("unsent", t0 - DAY), ("fresh", t0 - 3_600), ("done", t0 - DAY), ("failed", t0 - DAY)]
    {
        store.create(&received(id, at)).await.unwrap();
    }
    let id = |s: &str| concierge::domain::RecordId::parse(s).unwrap();
    store.mark_queued(&tenant, &id("dead"), (t0 - DAY) * 1000).await.unwrap();
    store.mark_queued(&tenant, &id("fresh"), (t0 - 3_600) * 1000).await.unwrap();
    let completion = Completion { completed_at_ms: t0 * 1000, result: Default::default(), subject_hash: None };
    store.complete(&tenant, &id("done"), &completion).await.unwrap();
    store.fail(&tenant, &id("failed"), "the request has no subject to act on").await.unwrap();

    let report = purge_at(&t, t0).await;
    let a = report["tenants"].as_array().unwrap().iter().find(|r| r["tenant"] == TENANT_A).unwrap();
    assert_eq!((&a["counts"]["requests_resent"], &a["counts"]["requests_failed"]), (&2.into(), &1.into()), "{a}");
    let mut sent: Vec<String> = t
        .privacy_jobs()
        .await
        .iter()
        .map(|body| serde_json::from_str::<Value>(body).unwrap()["request"].as_str().unwrap().to_owned())
        .collect();
    sent.sort();
    assert_eq!(sent, ["dead", "unsent"]);
    let state = |r: &str| {
        let store = store.clone();
        let (tenant, r) = (tenant.clone(), id(r));
        async move { store.get(&tenant, &r).await.unwrap().unwrap().state }
    };
    assert_eq!(state("unsent").await, RequestState::Queued);
    assert_eq!(state("failed").await, RequestState::Failed, "a failure waits for an operator");
}

#[tokio::test]
async fn a_run_dated_in_the_future_is_refused_unless_replays_are_allowed() {
    // As deployed: replays off (the local stack's env.json turns them on).
    let t = TestStack::spawn_with(|o| o.shell = shell(&[("PURGE_ALLOW_FUTURE_TIME", "false")])).await;
    let t0 = now_secs();
    let kept = seed::messages(&t, TENANT_A, &seed::contact(1), t0, 3, 0, &RetentionDays::default()).await;
    let future = schedule::event("arn:aws:events:us-east-1:000000000000:rule/purge", (t0 + 800 * DAY) * 1000, "x");
    let refused = t.invoke("RetentionPurgeFunction", &future).await.unwrap_err();
    assert!(refused.contains("future"), "{refused}");
    assert_eq!(present(&t, &kept).await, 3, "nothing deleted");
    let now = schedule::event("arn:aws:events:us-east-1:000000000000:rule/purge", t0 * 1000, "y");
    assert!(t.invoke("RetentionPurgeFunction", &now).await.is_ok(), "a run at the present time goes ahead");
}
