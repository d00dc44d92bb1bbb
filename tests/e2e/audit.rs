//! The audit trail as stored: hash-chained in AuditTable, anchored under S3 Object Lock by the
//! purge. Tampering with the table is found at the entry tampered with, and two writers at once
//! never fork a chain.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use concierge::domain::TenantId;
use concierge::domain::audit::ChainBreak;
use concierge::function::schedule;
use concierge::privacy::retention::{DAY, audit_ttl};
use concierge::store::audit::{AnchorStore, AuditLog, DynamoAuditLog, read_chain, verify_tenant};
use concierge_e2e::*;

type Item = HashMap<String, AttributeValue>;

fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

async fn log_and_anchors(t: &TestStack) -> (DynamoAuditLog, AnchorStore) {
    (
        DynamoAuditLog::new(t.dynamodb.clone(), t.table("AuditTable")),
        AnchorStore::new(t.s3().await, t.bucket("AuditAnchorBucket")),
    )
}

async fn purge_at(t: &TestStack, at: i64) {
    let event = schedule::event("arn:aws:events:us-east-1:000000000000:rule/purge", at * 1000, "e2e");
    t.invoke("RetentionPurgeFunction", &event).await.expect("purge runs");
}

async fn entries(t: &TestStack, tenant: &str) -> Vec<Item> {
    let mut items: Vec<Item> = t
        .scan("AuditTable")
        .await
        .into_iter()
        .filter(|i| i["pk"].as_s().unwrap() == &format!("{tenant}#AUDIT"))
        .collect();
    items.sort_by_key(|i| i["seq"].as_n().unwrap().parse::<u64>().unwrap());
    items
}

async fn put(t: &TestStack, item: Item) {
    t.dynamodb.put_item().table_name(t.table("AuditTable")).set_item(Some(item)).send().await.unwrap();
}

async fn delete(t: &TestStack, item: &Item) {
    t.dynamodb
        .delete_item()
        .table_name(t.table("AuditTable"))
        .key("pk", item["pk"].clone())
        .key("seq", item["seq"].clone())
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn concurrent_appends_never_fork_the_chain() {
    let t = TestStack::spawn().await;
    let (log, _) = log_and_anchors(&t).await;
    let tenant = TenantId::parse(TENANT_A).unwrap();
    let now = now_secs();
    let appends: Vec<_> =
        (0..12).map(|n| log.append(&tenant, seed::audit_entry(now * 1000, n), audit_ttl(now))).collect();
    let records: Vec<_> = futures::future::join_all(appends).await.into_iter().map(Result::unwrap).collect();
    let mut seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
    seqs.sort();
    // After the loader's entry for the tenant's creation.
    assert_eq!(seqs, (2..=13).collect::<Vec<_>>(), "each writer got its own place");
    let chain = read_chain(&log, &tenant).await.unwrap();
    assert_eq!(concierge::domain::audit::verify(&chain, None), Ok(13));
}

/// A tenant's trail: its creation by the tenants loader, 5 entries, and a purge run (the 7th)
/// that anchors the head.
async fn anchored_trail() -> (TestStack, TenantId) {
    let t = TestStack::spawn().await;
    let (log, _) = log_and_anchors(&t).await;
    let tenant = TenantId::parse(TENANT_A).unwrap();
    let now = now_secs();
    for n in 0..5 {
        log.append(&tenant, seed::audit_entry(now * 1000, n), audit_ttl(now)).await.unwrap();
    }
    purge_at(&t, now).await;
    (t, tenant)
}

async fn verified(t: &TestStack, tenant: &TenantId) -> Result<u64, ChainBreak> {
    let (log, anchors) = log_and_anchors(t).await;
    verify_tenant(&log, &anchors, tenant).await.unwrap()
}

#[tokio::test]
async fn a_purge_run_is_audited_and_anchors_the_head() {
    let (t, tenant) = anchored_trail().await;
    let items = entries(&t, TENANT_A).await;
    assert_eq!(items.len(), 7);
    assert_eq!(items[0]["action"].as_s().unwrap(), "tenant_config_change", "the loader created the tenant");
    assert_eq!(items[6]["action"].as_s().unwrap(), "purge_run");
    assert_eq!(items[6]["actor"].as_s().unwrap(), "retention-purge");
    assert_eq!(verified(&t, &tenant).await, Ok(7));
    let (_, anchors) = log_and_anchors(&t).await;
    let anchored = anchors.list(&tenant).await.unwrap();
    assert_eq!(anchored.last().map(|a| a.seq), Some(7));
}

#[tokio::test]
async fn changing_deleting_or_reordering_a_stored_entry_fails_verification_at_that_entry() {
    // Changed.
    let (t, tenant) = anchored_trail().await;
    let mut item = entries(&t, TENANT_A).await[2].clone();
    item.insert("actor".into(), AttributeValue::S("someone else".into()));
    put(&t, item).await;
    assert_eq!(verified(&t, &tenant).await, Err(ChainBreak::Content { seq: 3 }));

    // Deleted, in the middle and at the (anchored) end.
    let (t, tenant) = anchored_trail().await;
    delete(&t, &entries(&t, TENANT_A).await[1]).await;
    assert_eq!(verified(&t, &tenant).await, Err(ChainBreak::Sequence { seq: 3, expected: 2 }));
    let (t, tenant) = anchored_trail().await;
    delete(&t, &entries(&t, TENANT_A).await[6]).await;
    assert_eq!(verified(&t, &tenant).await, Err(ChainBreak::Truncated { seq: 7 }));

    // Everything up to the anchored head deleted, a later entry kept: a head anchor does not
    // vouch for where a chain may start (only the retention trim's start anchors do).
    let (t, tenant) = anchored_trail().await;
    let (log, _) = log_and_anchors(&t).await;
    let now = now_secs();
    log.append(&tenant, seed::audit_entry(now * 1000, 99), audit_ttl(now)).await.unwrap();
    for item in &entries(&t, TENANT_A).await[..7] {
        delete(&t, item).await;
    }
    assert_eq!(verified(&t, &tenant).await, Err(ChainBreak::Unanchored { seq: 8 }));

    // Reordered: entries 2 and 3 swap places (each keeps its own hashes).
    let (t, tenant) = anchored_trail().await;
    let items = entries(&t, TENANT_A).await;
    let (mut second, mut third) = (items[1].clone(), items[2].clone());
    second.insert("seq".into(), AttributeValue::N("3".into()));
    third.insert("seq".into(), AttributeValue::N("2".into()));
    put(&t, second).await;
    put(&t, third).await;
    assert_eq!(verified(&t, &tenant).await, Err(ChainBreak::Link { seq: 2 }));
}

#[tokio::test]
async fn a_rewrite_of_the_whole_trail_disagrees_with_the_anchor() {
    let (t, tenant) = anchored_trail().await;
    let (log, _) = log_and_anchors(&t).await;
    // Rewritten from the start with every hash recomputed: the chain alone would verify.
    for item in entries(&t, TENANT_A).await {
        delete(&t, &item).await;
    }
    let now = now_secs();
    for n in 0..7 {
        log.append(&tenant, seed::audit_entry(now * 1000, n + 100), audit_ttl(now)).await.unwrap();
    }
    let chain = read_chain(&log, &tenant).await.unwrap();
    assert_eq!(concierge::domain::audit::verify(&chain, None), Ok(7));
    assert_eq!(verified(&t, &tenant).await, Err(ChainBreak::Anchor { seq: 7 }));
}

#[tokio::test]
async fn anchors_cannot_be_deleted_or_hidden() {
    let (t, tenant) = anchored_trail().await;
    let s3 = t.s3().await;
    let bucket = t.bucket("AuditAnchorBucket");
    let versions = s3.list_object_versions().bucket(&bucket).send().await.unwrap();
    let v = &versions.versions()[0];
    let deleted =
        s3.delete_object().bucket(&bucket).key(v.key().unwrap()).version_id(v.version_id().unwrap()).send().await;
    assert!(deleted.is_err(), "compliance mode refuses the delete");
    // A plain DELETE only adds a delete marker; the verifier still sees the anchor.
    s3.delete_object().bucket(&bucket).key(v.key().unwrap()).send().await.unwrap();
    let (log, anchors) = log_and_anchors(&t).await;
    assert_eq!(anchors.list(&tenant).await.unwrap().len(), 1);
    delete(&t, &entries(&t, TENANT_A).await[6]).await;
    assert_eq!(verify_tenant(&log, &anchors, &tenant).await.unwrap(), Err(ChainBreak::Truncated { seq: 7 }));
}

#[tokio::test]
async fn entries_past_the_audit_retention_are_trimmed_and_the_rest_still_verifies() {
    let t = TestStack::spawn().await;
    let (log, _) = log_and_anchors(&t).await;
    let tenant = TenantId::parse(TENANT_A).unwrap();
    let t0 = now_secs();
    for n in 0..4 {
        log.append(&tenant, seed::audit_entry(t0 * 1000, n), audit_ttl(t0)).await.unwrap();
    }
    for n in 4..6 {
        log.append(&tenant, seed::audit_entry((t0 + 200 * DAY) * 1000, n), audit_ttl(t0)).await.unwrap();
    }
    // The default audit retention is 365 days.
    purge_at(&t, t0 + 400 * DAY).await;
    let seqs: Vec<String> = entries(&t, TENANT_A).await.iter().map(|i| i["seq"].as_n().unwrap().clone()).collect();
    assert_eq!(seqs, ["6", "7", "8"], "the tenant's creation and four old entries went; the purge run's came");
    assert_eq!(verified(&t, &tenant).await, Ok(3), "an anchor vouches for where the chain now starts");
    // Without that anchor, the same cut would be refused: remove the oldest kept entry too.
    delete(&t, &entries(&t, TENANT_A).await[0]).await;
    assert_eq!(verified(&t, &tenant).await, Err(ChainBreak::Unanchored { seq: 7 }));
}

#[tokio::test]
async fn a_configuration_change_is_audited_and_an_unchanged_reload_is_not() {
    let t = TestStack::spawn().await;
    let path = concierge_local::repo_root().join("infra/local/tenants.example.json");
    let mut file = concierge::tenants::TenantsFile::load(&path).unwrap();
    t.stack.load_tenants_file(&file).await.unwrap();
    assert_eq!(entries(&t, TENANT_A).await.len(), 1, "only the creation: nothing changed");
    let a = file.tenants.iter_mut().find(|s| s.id.as_str() == TENANT_A).unwrap();
    a.retention_days.messages = 90;
    t.stack.load_tenants_file(&file).await.unwrap();
    let items = entries(&t, TENANT_A).await;
    assert_eq!(items.len(), 2);
    assert_eq!(items[1]["action"].as_s().unwrap(), "tenant_config_change");
    assert_eq!(items[1]["actor"].as_s().unwrap(), "tenants-loader");
    assert_eq!(items[1]["counts"].as_m().unwrap().keys().collect::<Vec<_>>(), ["retention"]);
    assert_eq!(entries(&t, TENANT_B).await.len(), 1, "B did not change");
}
