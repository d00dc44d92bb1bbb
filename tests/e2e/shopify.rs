//! Shopify's compliance webhooks end to end: through the local API Gateway into `shopify-gdpr`,
//! request records in the emulator's `TenantsTable`, jobs on the privacy queue, the suspension
//! seen by the reply worker.

use concierge::privacy::requests::{RequestKind, RequestState, shopify_request_id};
use concierge_e2e::*;
use serde_json::{Value, json};

const EMAIL: &str = "john@example.com";
const PHONE: &str = "555-625-1199";
const CUSTOMER_ID: &str = "191167";

fn data_request() -> String {
    format!(
        r#"{{"shop_id":954889,"shop_domain":"{SHOP_A}","orders_requested":[299938,280263,220458],"customer":{{"id":191167,"email":"{EMAIL}","phone":"{PHONE}"}},"data_request":{{"id":9999}}}}"#
    )
}

fn customers_redact() -> String {
    format!(
        r#"{{"shop_id":954889,"shop_domain":"{SHOP_A}","customer":{{"id":191167,"email":"{EMAIL}","phone":"{PHONE}"}},"orders_to_redact":[299938,280263,220458]}}"#
    )
}

fn shop_redact() -> String {
    format!(r#"{{"shop_id":954889,"shop_domain":"{SHOP_A}"}}"#)
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Nothing of the subject anywhere in a table or on the queue.
async fn assert_no_identifiers(t: &TestStack) {
    for item in t.scan("TenantsTable").await {
        let text = format!("{item:?}");
        for value in [EMAIL, PHONE, "john"] {
            assert!(!text.contains(value), "{value} stored in clear: {text}");
        }
    }
    for job in t.privacy_jobs().await {
        for value in [EMAIL, PHONE, CUSTOMER_ID, "john"] {
            assert!(!job.contains(value), "{value} on the queue: {job}");
        }
    }
}

#[tokio::test]
async fn a_wrong_or_missing_hmac_is_401_with_nothing_stored_or_queued() {
    let t = TestStack::spawn().await;
    let warm_up = t.shopify().requests.get();
    let body = customers_redact();
    let wrong = concierge::shopify::signature::sign(b"not-the-secret", body.as_bytes());
    let reply = t.post_shopify_signed("customers/redact", SHOP_A, "w-bad", body.as_bytes(), Some(&wrong)).await;
    assert_eq!((reply.status, reply.body.as_str()), (401, r#"{"error":"invalid signature"}"#));
    let reply = t.post_shopify_signed("customers/redact", SHOP_A, "w-bad", body.as_bytes(), None).await;
    assert_eq!(reply.status, 401);
    // Signed over other bytes than those sent.
    let other = concierge::shopify::signature::sign(shopify_secret().as_bytes(), shop_redact().as_bytes());
    let reply = t.post_shopify_signed("customers/redact", SHOP_A, "w-bad", body.as_bytes(), Some(&other)).await;
    assert_eq!(reply.status, 401);
    assert!(t.privacy_requests(TENANT_A).await.is_empty());
    assert!(t.privacy_jobs().await.is_empty());
    assert_eq!(t.shopify().requests.get(), warm_up, "not a single AWS request: nothing done");
}

#[tokio::test]
async fn the_same_webhook_id_twice_is_one_request_and_one_job() {
    let t = TestStack::spawn().await;
    let body = customers_redact();
    for _ in 0..2 {
        assert_eq!(t.post_shopify("customers/redact", SHOP_A, "w-dup", body.as_bytes()).await.status, 200);
    }
    assert_eq!(t.privacy_requests(TENANT_A).await.len(), 1);
    assert_eq!(t.privacy_jobs().await.len(), 1);
}

#[tokio::test]
async fn the_documented_payloads_become_their_requests_with_the_subject_sealed() {
    let t = TestStack::spawn().await;
    // shop/redact follows the shop's uninstall (48 hours later, at Shopify).
    let uninstall = format!(r#"{{"id":954889,"myshopify_domain":"{SHOP_A}"}}"#);
    assert_eq!(t.post_shopify("app/uninstalled", SHOP_A, "w-uninstall", uninstall.as_bytes()).await.status, 200);
    let cases = [
        ("customers/data_request", data_request(), RequestKind::Export),
        ("customers/redact", customers_redact(), RequestKind::Erasure),
        ("shop/redact", shop_redact(), RequestKind::Wipe),
    ];
    for (topic, body, _) in &cases {
        let reply = t.post_shopify(topic, SHOP_A, &format!("w-{topic}"), body.as_bytes()).await;
        assert_eq!(reply.status, 200, "{topic}: {}", reply.body);
    }
    let mut jobs: Vec<Value> = t.privacy_jobs().await.iter().map(|j| serde_json::from_str(j).unwrap()).collect();
    assert_eq!(jobs.len(), 3);
    for (topic, _, kind) in &cases {
        let id = shopify_request_id(&format!("w-{topic}"));
        let record = t
            .privacy_requests(TENANT_A)
            .await
            .into_iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("{topic}: no request"));
        assert_eq!((record.kind, record.state), (*kind, RequestState::Queued), "{topic}");
        assert_eq!(record.due_at_ms - record.received_at_ms, 30 * 86_400_000);
        let subject = record.open_subject(&t.stack.master_key).await.unwrap();
        match kind {
            RequestKind::Wipe => assert!(subject.is_none()),
            _ => {
                let s = subject.expect("the subject, sealed");
                assert_eq!(
                    (s.phone.as_deref(), s.email.as_deref(), s.shopify_customer_id.as_deref()),
                    (Some(PHONE), Some(EMAIL), Some(CUSTOMER_ID)),
                    "{topic}"
                );
            }
        }
        // The job is the reference, nothing more.
        let job = json!({"tenant": TENANT_A, "request": id.as_str()});
        let at = jobs.iter().position(|j| *j == job).unwrap_or_else(|| panic!("{topic}: no job {job} in {jobs:?}"));
        jobs.remove(at);
    }
    assert_no_identifiers(&t).await;
}

#[tokio::test]
async fn app_uninstalled_suspends_the_tenant_and_the_assistant_stays_silent_for_it() {
    let t = TestStack::spawn().await;
    let body = format!(r#"{{"id":954889,"name":"Acme Dental","domain":"acme.example","myshopify_domain":"{SHOP_A}"}}"#);
    assert_eq!(t.post_shopify("app/uninstalled", SHOP_A, "w-uninstall", body.as_bytes()).await.status, 200);
    assert_eq!(t.post_shopify("app/uninstalled", SHOP_A, "w-uninstall-2", body.as_bytes()).await.status, 200);

    let profile = t
        .scan("TenantsTable")
        .await
        .into_iter()
        .find(|i| s(i, "pk") == TENANT_A && s(i, "sk") == "PROFILE")
        .expect("profile");
    let suspended_at: i64 = s(&profile, "suspended_at").parse().unwrap();
    assert!((now() - suspended_at).abs() < 60, "suspended now: {suspended_at}");
    let audit: Vec<_> = t
        .scan("AuditTable")
        .await
        .into_iter()
        .filter(|i| s(i, "pk") == format!("{TENANT_A}#AUDIT") && s(i, "action") != "tenant_config_change")
        .collect();
    assert_eq!(audit.len(), 1, "one entry for one suspension: {audit:?}");
    assert_eq!((s(&audit[0], "action").as_str(), s(&audit[0], "actor").as_str()), ("suspension", "shopify-gdpr"));
    // Reloading the tenants file keeps the suspension.
    t.stack.load_tenants(&concierge_local::repo_root().join("infra/local/tenants.example.json")).await.unwrap();
    let reloaded = t.scan("TenantsTable").await.into_iter().find(|i| s(i, "pk") == TENANT_A && s(i, "sk") == "PROFILE");
    assert_eq!(s(&reloaded.unwrap(), "suspended_at"), suspended_at.to_string());

    // Both tenants' customers ask; only the tenant still installed answers.
    let ask = |number, id| {
        notification(&[(
            number,
            vec![text_message("4915112345678", id, now(), "What are your opening hours?")],
            vec![],
        )])
    };
    assert_eq!(t.post_meta(&ask(NUMBER_A, "wamid.suspended")).await.status, 200);
    assert_eq!(t.post_meta(&ask(NUMBER_B, "wamid.installed")).await.status, 200);
    assert_eq!(t.deliver().await, 2);
    let sent = t.outbox();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["phone_number_id"], NUMBER_B);
    // Acknowledged: kept, and not brought back by the queue or the sweeper.
    let message = t.message(&message_key(TENANT_A, "meta", "wamid.suspended")).await.expect("kept");
    assert_eq!(s(&message, "stage"), "answered");
    assert!(t.privacy_requests(TENANT_A).await.is_empty() && t.privacy_jobs().await.is_empty());
}

#[tokio::test]
async fn an_unknown_shop_is_acknowledged_and_nothing_is_stored() {
    let t = TestStack::spawn().await;
    let before = t.scan("TenantsTable").await.len();
    let audited = t.scan("AuditTable").await.len();
    let body = customers_redact().replace(SHOP_A, "stranger.myshopify.com");
    let reply = t.post_shopify("customers/redact", "stranger.myshopify.com", "w-stranger", body.as_bytes()).await;
    assert_eq!(reply.status, 200);
    assert_eq!(t.scan("TenantsTable").await.len(), before);
    assert!(t.privacy_jobs().await.is_empty());
    assert_eq!(t.scan("AuditTable").await.len(), audited, "nothing audited either");
}

#[tokio::test]
async fn a_failed_queue_send_is_a_500_and_the_retry_queues_exactly_once() {
    let proxy = FaultProxy::start(emulator_endpoint()).await;
    let t = TestStack::spawn_through(&proxy.endpoint).await;
    let body = customers_redact();
    proxy.inject("SendMessage", Fault::Fail);
    let reply = t.post_shopify("customers/redact", SHOP_A, "w-retry", body.as_bytes()).await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    let stored = t.privacy_requests(TENANT_A).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].state, RequestState::Received, "recorded, not queued");
    assert!(t.privacy_jobs().await.is_empty());
    proxy.clear();
    // Shopify retries: the existing record is queued now, and a later retry finds it queued.
    assert_eq!(t.post_shopify("customers/redact", SHOP_A, "w-retry", body.as_bytes()).await.status, 200);
    assert_eq!(t.post_shopify("customers/redact", SHOP_A, "w-retry", body.as_bytes()).await.status, 200);
    assert_eq!(t.privacy_jobs().await.len(), 1);
    let stored = t.privacy_requests(TENANT_A).await;
    assert_eq!((stored.len(), stored[0].state), (1, RequestState::Queued));
}

#[tokio::test]
async fn the_privacy_queue_is_standard_with_its_dead_letter_queue() {
    let t = TestStack::spawn().await;
    let attributes = t
        .sqs
        .get_queue_attributes()
        .queue_url(t.privacy_queue_url())
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    use aws_sdk_sqs::types::QueueAttributeName as A;
    assert!(!t.privacy_queue_url().ends_with(".fifo"));
    assert_eq!(attributes.get(&A::VisibilityTimeout).map(String::as_str), Some("1800"));
    let redrive: Value = serde_json::from_str(&attributes[&A::RedrivePolicy]).unwrap();
    assert_eq!(redrive["maxReceiveCount"].to_string().trim_matches('"'), "5");
    assert!(redrive["deadLetterTargetArn"].as_str().unwrap().ends_with("-PrivacyDeadLetterQueue"));
    assert_eq!(t.shopify().env["PRIVACY_QUEUE_URL"], t.privacy_queue_url());
}

/// The HMAC covers the body only: a captured, signed data request replayed under the redact or
/// shop/redact topic, or with another shop's header, must change nothing.
#[tokio::test]
async fn a_signed_body_replayed_with_another_topic_or_shop_is_refused_with_nothing_done() {
    let t = TestStack::spawn().await;
    let uninstall = format!(r#"{{"id":954889,"name":"Acme Dental","myshopify_domain":"{SHOP_A}"}}"#);
    for (topic, shop, id, body) in [
        ("customers/redact", SHOP_A, "replay-1", data_request()),
        ("shop/redact", SHOP_A, "replay-2", data_request()),
        ("customers/data_request", "bella-salon.myshopify.com", "replay-3", data_request()),
        // The uninstall's shop object as a wipe, and compliance bodies as a suspension.
        ("shop/redact", SHOP_A, "replay-4", uninstall.clone()),
        ("app/uninstalled", SHOP_A, "replay-5", shop_redact()),
        ("app/uninstalled", SHOP_A, "replay-6", customers_redact()),
    ] {
        let reply = t.post_shopify(topic, shop, id, body.as_bytes()).await;
        assert_eq!(reply.status, 400, "{topic} {shop} {id}");
    }
    assert!(t.privacy_requests(TENANT_A).await.is_empty() && t.privacy_requests(TENANT_B).await.is_empty());
    assert!(t.privacy_jobs().await.is_empty());
    let profiles = t.scan("TenantsTable").await;
    assert!(profiles.iter().all(|i| !i.contains_key("suspended_at")), "a replayed body suspended a tenant");
}

#[tokio::test]
async fn a_shop_redact_for_a_shop_still_installed_is_held_and_wipes_nothing() {
    // A captured shop/redact replayed under a fresh webhook id: the shop is installed.
    let t = TestStack::spawn().await;
    assert_eq!(t.post_shopify("shop/redact", SHOP_A, "w-replayed", shop_redact().as_bytes()).await.status, 200);
    let stored = t.privacy_requests(TENANT_A).await;
    assert_eq!((stored.len(), stored[0].kind, stored[0].state), (1, RequestKind::Wipe, RequestState::Failed));
    assert!(stored[0].failure.as_deref().unwrap().contains("requeue"), "{:?}", stored[0].failure);
    assert!(t.privacy_jobs().await.is_empty(), "no wipe queued");
    // Even a stray job naming it (a resend racing, a forged queue message) runs nothing: only an
    // operator's requeue, which reopens it first, may.
    let job = json!({"Records": [{"messageId": "stray", "receiptHandle": "r",
        "body": json!({"tenant": TENANT_A, "request": stored[0].id.as_str()}).to_string(),
        "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
        "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:privacy", "awsRegion": "us-east-1"}]});
    let result = t.invoke("PrivacyWorkerFunction", &job).await.unwrap();
    assert_eq!(result["batchItemFailures"], json!([]), "acknowledged: {result}");
    let profile = t.scan("TenantsTable").await.into_iter().any(|i| s(&i, "pk") == TENANT_A && s(&i, "sk") == "PROFILE");
    assert!(profile, "the tenant is untouched");
    assert_eq!(t.privacy_requests(TENANT_A).await[0].state, RequestState::Failed);
}
