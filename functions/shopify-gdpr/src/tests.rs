//! The handler over in-memory adapters: GIVEN a webhook, WHEN handled, THEN what is stored and
//! queued. The same paths run end to end against the emulator in tests/e2e/shopify.rs.

use std::sync::atomic::Ordering;

use concierge::clock::ManualClock;
use concierge::domain::{AuditAction, TenantId};
use concierge::privacy::queue::MemoryPrivacyQueue;
use concierge::privacy::requests::{PrivacyJob, RequestState};
use concierge::store::audit::{AuditLog, MemoryAuditLog};
use concierge::store::requests::MemoryPrivacyRequests;
use concierge::tenants::suspension::MemorySuspensions;
use lambda_http::http;

use super::*;

const SECRET: &str = "test-client-secret";
const SHOP: &str = "acme-dental.myshopify.com";
const NOW_MS: i64 = 1_767_225_600_000;
const DATA_REQUEST: &str = r#"{"shop_id":954889,"shop_domain":"acme-dental.myshopify.com","orders_requested":[299938,280263,220458],"customer":{"id":191167,"email":"john@example.com","phone":"555-625-1199"},"data_request":{"id":9999}}"#;
const REDACT: &str = r#"{"shop_id":954889,"shop_domain":"acme-dental.myshopify.com","customer":{"id":191167,"email":"john@example.com","phone":"555-625-1199"},"orders_to_redact":[299938,280263,220458]}"#;
const SHOP_REDACT: &str = r#"{"shop_id":954889,"shop_domain":"acme-dental.myshopify.com"}"#;

struct OneShop(Arc<Tenant>);

impl Shops for OneShop {
    async fn by_shop_domain(&self, domain: &str) -> Result<Option<Arc<Tenant>>, StoreError> {
        Ok((domain == SHOP).then(|| self.0.clone()))
    }
}

type TestApp = Compliance<OneShop, MemoryPrivacyRequests, MemoryPrivacyQueue, MemorySuspensions<MemoryAuditLog>>;

fn acme() -> TenantId {
    TenantId::parse("acme-dental").unwrap()
}

fn app() -> TestApp {
    app_with(|_| {})
}

/// The app of a tenant that Shopify told us was uninstalled (`shop/redact` comes 48 h later).
fn uninstalled_app() -> TestApp {
    app_with(|t| t.suspended_at = Some(NOW_MS / 1000 - 2 * 86_400))
}

fn app_with(change: impl FnOnce(&mut Tenant)) -> TestApp {
    let mut tenant = Tenant::new(acme());
    tenant.shopify_shop_domain = Some(SHOP.into());
    change(&mut tenant);
    Compliance {
        shops: OneShop(Arc::new(tenant)),
        requests: MemoryPrivacyRequests::default(),
        queue: MemoryPrivacyQueue::default(),
        suspensions: MemorySuspensions::default(),
        master_key: MasterKey::Local { key_id: "local:test".into(), key: [3u8; 32] },
        client_secret: Secret::new(SECRET),
        pseudonyms: Pseudonymizer::new(b"k"),
        clock: Arc::new(ManualClock::at(NOW_MS)),
    }
}

fn webhook(topic: &str, shop: &str, id: &str, body: &str, hmac: Option<String>) -> Request {
    let mut builder = http::Request::builder()
        .method("POST")
        .uri("/webhooks/shopify")
        // Shopify's own capitalisation: header names are case-insensitive.
        .header("X-Shopify-Topic", topic)
        .header("X-Shopify-Shop-Domain", shop)
        .header("X-Shopify-Webhook-Id", id)
        .header("Content-Type", "application/json");
    if let Some(hmac) = hmac {
        builder = builder.header("X-Shopify-Hmac-Sha256", hmac);
    }
    builder.body(Body::from(body.as_bytes().to_vec())).unwrap()
}

fn signed(topic: &str, id: &str, body: &str) -> Request {
    webhook(topic, SHOP, id, body, Some(signature::sign(SECRET.as_bytes(), body.as_bytes())))
}

async fn all(app: &TestApp) -> Vec<PrivacyRequest> {
    app.requests.list(&acme()).await.unwrap()
}

#[tokio::test]
async fn a_wrong_or_missing_hmac_is_401_and_nothing_is_done() {
    let app = app();
    let wrong = signature::sign(b"another-secret", REDACT.as_bytes());
    for hmac in [None, Some(wrong), Some(String::new())] {
        let response = handle(&app, webhook("customers/redact", SHOP, "w1", REDACT, hmac)).await;
        assert_eq!(response.status(), 401);
    }
    // Signed for another body.
    let other = signature::sign(SECRET.as_bytes(), SHOP_REDACT.as_bytes());
    assert_eq!(handle(&app, webhook("customers/redact", SHOP, "w1", REDACT, Some(other))).await.status(), 401);
    assert!(all(&app).await.is_empty() && app.queue.jobs().is_empty());
}

#[tokio::test]
async fn each_documented_payload_records_its_request_with_the_subject_sealed_and_queues_a_reference() {
    let app = uninstalled_app();
    for (topic, body, kind) in [
        ("customers/data_request", DATA_REQUEST, RequestKind::Export),
        ("customers/redact", REDACT, RequestKind::Erasure),
        ("shop/redact", SHOP_REDACT, RequestKind::Wipe),
    ] {
        let response = handle(&app, signed(topic, &format!("id-{topic}"), body)).await;
        assert_eq!(response.status(), 200, "{topic}");
        let id = shopify_request_id(&format!("id-{topic}"));
        let record = app.requests.get(&acme(), &id).await.unwrap().expect("recorded");
        assert_eq!((record.kind, record.state, record.received_at_ms), (kind, RequestState::Queued, NOW_MS));
        assert_eq!(record.due_at_ms, NOW_MS + 30 * 86_400_000);
        let subject = record.open_subject(&app.master_key).await.unwrap();
        if kind == RequestKind::Wipe {
            assert_eq!(subject, None);
        } else {
            let subject = subject.expect("sealed subject");
            assert_eq!(
                (subject.phone.as_deref(), subject.email.as_deref(), subject.shopify_customer_id.as_deref()),
                (Some("555-625-1199"), Some("john@example.com"), Some("191167"))
            );
            let stored = format!("{:?}", record.subject);
            assert!(!stored.contains("john") && !stored.contains("555-625"), "sealed: {stored}");
        }
        assert_eq!(app.queue.jobs().last(), Some(&PrivacyJob { tenant: acme(), request: id }));
    }
    assert_eq!(app.queue.jobs().len(), 3);
}

#[tokio::test]
async fn the_same_webhook_id_twice_is_one_request_and_one_job() {
    let app = app();
    assert_eq!(handle(&app, signed("customers/redact", "w1", REDACT)).await.status(), 200);
    assert_eq!(handle(&app, signed("customers/redact", "w1", REDACT)).await.status(), 200);
    assert_eq!((all(&app).await.len(), app.queue.jobs().len()), (1, 1));
}

#[tokio::test]
async fn a_failed_send_is_a_500_and_the_retry_queues_it_once() {
    let app = app();
    app.queue.failing.store(true, Ordering::SeqCst);
    assert_eq!(handle(&app, signed("customers/redact", "w1", REDACT)).await.status(), 500);
    let id = shopify_request_id("w1");
    assert_eq!(app.requests.get(&acme(), &id).await.unwrap().unwrap().state, RequestState::Received);
    app.queue.failing.store(false, Ordering::SeqCst);
    assert_eq!(handle(&app, signed("customers/redact", "w1", REDACT)).await.status(), 200);
    assert_eq!(handle(&app, signed("customers/redact", "w1", REDACT)).await.status(), 200);
    assert_eq!(app.queue.jobs().len(), 1, "queued by the retry, once");
    assert_eq!(app.requests.get(&acme(), &id).await.unwrap().unwrap().state, RequestState::Queued);
}

#[tokio::test]
async fn an_unknown_shop_or_topic_is_acknowledged_and_nothing_is_stored() {
    let app = app();
    let body = REDACT.replace(SHOP, "stranger.myshopify.com");
    let hmac = signature::sign(SECRET.as_bytes(), body.as_bytes());
    let response = handle(&app, webhook("customers/redact", "stranger.myshopify.com", "w1", &body, Some(hmac))).await;
    assert_eq!(response.status(), 200);
    assert_eq!(handle(&app, signed("orders/create", "w2", SHOP_REDACT)).await.status(), 200);
    assert!(all(&app).await.is_empty() && app.queue.jobs().is_empty());
}

#[tokio::test]
async fn signed_but_malformed_is_400_oversized_is_413() {
    let app = app();
    for (topic, body) in [
        ("customers/redact", "{not json"),
        ("customers/redact", r#"{"customer":{}}"#),
        ("customers/data_request", r#"{"shop_id":1}"#),
        ("shop/redact", "[]"),
    ] {
        assert_eq!(handle(&app, signed(topic, "w1", body)).await.status(), 400, "{topic} {body}");
    }
    let hmac = Some(signature::sign(SECRET.as_bytes(), SHOP_REDACT.as_bytes()));
    assert_eq!(handle(&app, webhook("shop/redact", "", "w1", SHOP_REDACT, hmac.clone())).await.status(), 400);
    assert_eq!(handle(&app, webhook("shop/redact", SHOP, "", SHOP_REDACT, hmac)).await.status(), 400);
    let huge = format!(r#"{{"pad":"{}"}}"#, "x".repeat(shopify::MAX_BODY_BYTES));
    assert_eq!(handle(&app, signed("shop/redact", "w1", &huge)).await.status(), 413);
    assert!(all(&app).await.is_empty() && app.queue.jobs().is_empty());
}

#[tokio::test]
async fn app_uninstalled_suspends_once_with_one_audit_entry() {
    let app = app();
    let body = r#"{"id":954889,"domain":"acme.example","myshopify_domain":"acme-dental.myshopify.com"}"#;
    assert_eq!(handle(&app, signed("app/uninstalled", "u1", body)).await.status(), 200);
    assert_eq!(handle(&app, signed("app/uninstalled", "u2", body)).await.status(), 200);
    let suspended = app.suspensions.suspended.lock().unwrap().get(&acme()).copied();
    assert_eq!(suspended, Some(NOW_MS / 1000));
    let trail = app.suspensions.audit.read(&acme(), 0, 10).await.unwrap();
    assert_eq!(trail.len(), 1);
    assert_eq!((trail[0].entry.action, trail[0].entry.actor.as_str()), (AuditAction::Suspension, "shopify-gdpr"));
    assert!(all(&app).await.is_empty() && app.queue.jobs().is_empty(), "no privacy request for an uninstall");
}

#[tokio::test]
async fn the_hmac_covers_the_bytes_shopify_sent_when_api_gateway_base64_encoded_them() {
    use concierge::shopify::signature::sign;
    let app = app();
    let hmac = sign(SECRET.as_bytes(), SHOP_REDACT.as_bytes());
    let encoded = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(SHOP_REDACT)
    };
    let event = serde_json::json!({
        "version": "2.0", "routeKey": "POST /webhooks/shopify", "rawPath": "/webhooks/shopify", "rawQueryString": "",
        "headers": {"x-shopify-topic": "shop/redact", "x-shopify-shop-domain": SHOP, "x-shopify-webhook-id": "b1",
                    "x-shopify-hmac-sha256": hmac, "content-type": "application/octet-stream"},
        "requestContext": {"http": {"method": "POST", "path": "/webhooks/shopify", "protocol": "HTTP/1.1",
                                    "sourceIp": "127.0.0.1", "userAgent": "Shopify"},
                           "requestId": "r1", "routeKey": "POST /webhooks/shopify", "stage": "$default",
                           "accountId": "1", "apiId": "a", "domainName": "h", "domainPrefix": "h",
                           "time": "01/Jan/2026:00:00:00 +0000", "timeEpoch": 0},
        "body": encoded, "isBase64Encoded": true
    });
    let raw = serde_json::value::RawValue::from_string(event.to_string()).unwrap();
    let request = function::http::request(&raw, Context::default()).unwrap();
    assert_eq!(handle(&app, request).await.status(), 200);
    assert_eq!(all(&app).await[0].kind, RequestKind::Wipe);
}

#[tokio::test]
async fn a_shop_redact_for_a_shop_still_installed_is_held_for_an_operator_not_queued() {
    // A captured shop/redact replayed under a fresh webhook id, or one whose uninstall we
    // never heard of: recorded, answered 200, but nothing is wiped until an operator confirms.
    let app = app();
    for delivery in 0..2 {
        assert_eq!(handle(&app, signed("shop/redact", "replayed", SHOP_REDACT)).await.status(), 200, "{delivery}");
    }
    let stored = all(&app).await;
    assert_eq!(stored.len(), 1);
    assert_eq!((stored[0].kind, stored[0].state), (RequestKind::Wipe, RequestState::Failed));
    assert_eq!(stored[0].failure.as_deref(), Some(WIPE_UNCONFIRMED));
    assert!(app.queue.jobs().is_empty(), "no wipe job");

    // Uninstalled since (the cached tenant still says installed): the next one is a wipe.
    let uninstall = r#"{"id":954889,"myshopify_domain":"acme-dental.myshopify.com"}"#;
    assert_eq!(handle(&app, signed("app/uninstalled", "u1", uninstall)).await.status(), 200);
    assert_eq!(handle(&app, signed("shop/redact", "after-uninstall", SHOP_REDACT)).await.status(), 200);
    let wipe = app.requests.get(&acme(), &shopify_request_id("after-uninstall")).await.unwrap().unwrap();
    assert_eq!((wipe.state, wipe.failure), (RequestState::Queued, None));
    assert_eq!(app.queue.jobs().len(), 1);
}
