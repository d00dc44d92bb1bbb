//! No personal data in any log line, for each function, through its success and its error paths,
//! captured as production filters logs at the most verbose level it allows (`RUST_LOG=trace`:
//! the SDK, runtime and HTTP crates stay capped at info, since their traces hold bodies).

use concierge_e2e::*;

const PHONE: &str = "4915112345678";
const TWILIO_PHONE: &str = "14155550123";
const NAME: &str = "Customer Name";
const TWILIO_NAME: &str = "Samira Quist";
const EMAIL: &str = "jana.novak@example.com";
const TEXT: &str = "my card is 4111 1111 1111 1111";
/// A Meta message id as Meta makes them: base64 over the sender's phone number.
const WAMID: &str = "wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFjNFQjBEMjc3RTY3QjVGQkYwNjFBAA==";
const PHONE_IN_BASE64: &str = "NDkxNTExMjM0NTY3OB";
const PERSONAL: [&str; 8] = [PHONE, TWILIO_PHONE, NAME, TWILIO_NAME, EMAIL, "4111 1111", "jana.novak", PHONE_IN_BASE64];

fn meta_body(id: &str) -> Vec<u8> {
    notification(&[(NUMBER_A, vec![text_message(PHONE, id, 1, &format!("{TEXT}, write to {EMAIL}"))], vec![])])
}

fn twilio_params(sid: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("MessageSid", sid),
        ("AccountSid", TWILIO_ACCOUNT_A),
        ("From", "whatsapp:+14155550123"),
        ("WaId", TWILIO_PHONE),
        ("ProfileName", TWILIO_NAME),
        ("Body", "call me, jana.novak@example.com"),
    ]
}

#[tokio::test]
async fn webhook_ingest_logs_no_personal_data_when_it_succeeds_or_fails() {
    let proxy = FaultProxy::start(emulator_endpoint()).await;
    let t = TestStack::spawn_through(&proxy.endpoint).await;
    let logs = LogCapture::start();

    // Success: new, duplicate, statuses, Twilio.
    assert_eq!(t.post_meta(&meta_body(WAMID)).await.status, 200);
    assert_eq!(t.post_meta(&meta_body(WAMID)).await.status, 200);
    let failed = serde_json::json!({"id": "wamid.o", "status": "failed", "timestamp": "2", "recipient_id": PHONE, "errors": [{"code": 131047}]});
    assert_eq!(t.post_meta(&notification(&[(NUMBER_A, vec![], vec![failed])])).await.status, 200);
    assert_eq!(t.post_twilio(TENANT_A, false, &twilio_params("SMl1"), TWILIO_TOKEN_A).await.status, 200);
    // Refused: bad signatures, an unknown number, an unknown tenant, a malformed body.
    let unsigned = [("content-type", "application/json")];
    assert_eq!(t.request("POST", "/webhooks/meta", &unsigned, &meta_body("wamid.l2")).await.status, 401);
    assert_eq!(t.post_twilio(TENANT_A, false, &twilio_params("SMl2"), "wrong-token").await.status, 401);
    assert_eq!(t.post_twilio("no-such-tenant", false, &twilio_params("SMl3"), TWILIO_TOKEN_A).await.status, 401);
    let stray = notification(&[("999000999000", vec![text_message(PHONE, "wamid.l3", 1, TEXT)], vec![])]);
    assert_eq!(t.post_meta(&stray).await.status, 200);
    let broken = format!(r#"{{"object":"whatsapp_business_account","entry":[{{"x":"{TEXT} {EMAIL}"#);
    assert_eq!(t.post_meta(broken.as_bytes()).await.status, 400);
    // Failing: AWS refusing a write, the queue failing.
    proxy.inject("PutItem", Fault::Reject);
    assert_eq!(t.post_meta(&meta_body("wamid.l4")).await.status, 500);
    proxy.clear();
    proxy.inject("SendMessageBatch", Fault::Fail);
    assert_eq!(t.post_twilio(TENANT_A, false, &twilio_params("SMl4"), TWILIO_TOKEN_A).await.status, 500);
    proxy.clear();

    let text = logs.text();
    for expected in [
        "webhook ingested",
        "signature missing or invalid",
        "no tenant serves",
        "refused by DynamoDB",
        "enqueue failed",
    ] {
        assert!(text.contains(expected), "the paths above log {expected:?}:\n{text}");
    }
    logs.assert_free_of(&PERSONAL);
}

#[tokio::test]
async fn the_inbound_sweeper_logs_no_personal_data_when_it_succeeds_or_fails() {
    let proxy = FaultProxy::start(emulator_endpoint()).await;
    let t = TestStack::spawn_through(&proxy.endpoint).await;
    proxy.inject("SendMessageBatch", Fault::Fail);
    assert_eq!(t.post_meta(&meta_body("wamid.s1")).await.status, 500);
    let logs = LogCapture::start();
    let later = concierge::clock::Clock::now_ms(&concierge::clock::SystemClock) + 3_600_000;
    let event = concierge::function::schedule::event("arn:aws:events:us-east-1:000000000000:rule/x", later, "1");
    assert!(t.invoke("InboundSweeperFunction", &event).await.is_err(), "the queue still fails");
    proxy.clear();
    assert_eq!(t.invoke("InboundSweeperFunction", &event).await.unwrap()["requeued"], 1);
    let text = logs.text();
    assert!(text.contains("re-queueing pending messages failed") && text.contains("sweep finished"), "{text}");
    logs.assert_free_of(&PERSONAL);
}

/// Meta's ids carry the sender's number: keys, index keys and queue jobs hold a keyed hash of the
/// id instead, so the queue (and its dead-letter queue, which erasure cannot reach) holds none.
#[tokio::test]
async fn the_queue_carries_no_phone_number_not_even_inside_a_meta_message_id() {
    let t = TestStack::spawn().await;
    assert_eq!(t.post_meta(&meta_body(WAMID)).await.status, 200);
    let queued = t.queued().await;
    assert_eq!(queued.len(), 1);
    let job = queued[0].body().unwrap();
    for personal in [WAMID, PHONE_IN_BASE64, PHONE] {
        assert!(!job.contains(personal), "{personal} on the queue: {job}");
    }
    let item = t.message(&message_key(TENANT_A, "meta", WAMID)).await.expect("stored under the hashed id");
    assert_eq!(s(&item, "provider_id"), WAMID, "the id itself stays inside its item (replies thread on it)");
    for key in ["pk", "gsi1sk", "pend_pk", "exp_pk"] {
        assert!(!s(&item, key).contains(PHONE_IN_BASE64), "{key}");
    }
}

#[tokio::test]
async fn the_reply_worker_logs_no_personal_data_when_it_answers_or_fails() {
    let proxy = FaultProxy::start(emulator_endpoint()).await;
    let t = TestStack::spawn_through(&proxy.endpoint).await;
    let now = concierge::clock::Clock::now(&concierge::clock::SystemClock);
    let say = |id: &str, body: &str| notification(&[(NUMBER_A, vec![text_message(PHONE, id, now, body)], vec![])]);
    let logs = LogCapture::start();
    // Answers: a question carrying personal data, opt-out and back in, a handoff.
    assert_eq!(
        t.post_meta(&say("wamid.r1", &format!("{TEXT}, write to {EMAIL}, when are you open?"))).await.status,
        200
    );
    t.deliver().await;
    for (id, body) in [("wamid.r2", "STOP"), ("wamid.r3", "START"), ("wamid.r4", "human")] {
        assert_eq!(t.post_meta(&say(id, body)).await.status, 200);
        t.deliver().await;
    }
    assert_eq!(t.sent_texts().len(), 4);
    // Fails: the answer cannot be recorded, so it is not sent and the job is retried.
    let other =
        |id: &str, body: &str| notification(&[(NUMBER_A, vec![text_message(TWILIO_PHONE, id, now, body)], vec![])]);
    assert_eq!(
        t.post_meta(&other("wamid.r5", &format!("{NAME} here, {EMAIL}, what does a cleaning cost?"))).await.status,
        200
    );
    let key = message_key(TENANT_A, "meta", "wamid.r5");
    let job = serde_json::json!({"tenant_id": TENANT_A, "channel": "meta", "message_key": key, "received_at": now});
    let event = serde_json::json!({"Records": [{"messageId": "m1", "body": job.to_string(), "attributes": {"MessageGroupId": "g"}}]});
    proxy.inject("PutItem", Fault::Reject);
    assert!(t.invoke("ReplyWorkerFunction", &event).await.is_err(), "the only record failed");
    proxy.clear();
    assert_eq!(t.sent_texts().len(), 4, "nothing is sent that could not be recorded first");

    let text = logs.text();
    for expected in ["inbound handled", "prompt assembled", "model answered", "record failed"] {
        assert!(text.contains(expected), "the paths above log {expected:?}:\n{text}");
    }
    logs.assert_free_of(&PERSONAL);
}

#[tokio::test]
async fn shopify_gdpr_logs_no_personal_data_when_it_succeeds_or_fails() {
    const SHOPIFY_EMAIL: &str = "john.subject@example.com";
    const SHOPIFY_PHONE: &str = "555-625-1199";
    const CUSTOMER_ID: &str = "191167";
    const STRANGER: &str = "stranger-shop.myshopify.com";
    let proxy = FaultProxy::start(emulator_endpoint()).await;
    let t = TestStack::spawn_through(&proxy.endpoint).await;
    let body = format!(
        r#"{{"shop_id":954889,"shop_domain":"{SHOP_A}","customer":{{"id":{CUSTOMER_ID},"email":"{SHOPIFY_EMAIL}","phone":"{SHOPIFY_PHONE}"}},"orders_to_redact":[299938]}}"#
    );
    let logs = LogCapture::start();
    // Success: a request, its redelivery, an uninstall, an unknown topic.
    assert_eq!(t.post_shopify("customers/redact", SHOP_A, "l1", body.as_bytes()).await.status, 200);
    assert_eq!(t.post_shopify("customers/redact", SHOP_A, "l1", body.as_bytes()).await.status, 200);
    assert_eq!(
        t.post_shopify(
            "app/uninstalled",
            SHOP_A,
            "l2",
            format!(r#"{{"id":954889,"myshopify_domain":"{SHOP_A}"}}"#).as_bytes()
        )
        .await
        .status,
        200
    );
    assert_eq!(t.post_shopify("orders/create", SHOP_A, "l3", body.as_bytes()).await.status, 200);
    // Refused or ignored: a bad HMAC, an unknown shop, a malformed body.
    let reply = t.post_shopify_signed("customers/redact", SHOP_A, "l4", body.as_bytes(), Some("AAAA")).await;
    assert_eq!(reply.status, 401);
    let stranger = body.replace(SHOP_A, STRANGER);
    assert_eq!(t.post_shopify("customers/redact", STRANGER, "l5", stranger.as_bytes()).await.status, 200);
    let broken = format!(r#"{{"customer":"{SHOPIFY_EMAIL} {SHOPIFY_PHONE}""#);
    assert_eq!(t.post_shopify("customers/redact", SHOP_A, "l6", broken.as_bytes()).await.status, 400);
    // Signed, but another topic's body (a data request replayed as a redact).
    let replayed = body.replace(r#""orders_to_redact":[299938]"#, r#""data_request":{"id":9999}"#);
    assert_eq!(t.post_shopify("customers/redact", SHOP_A, "l6b", replayed.as_bytes()).await.status, 400);
    // Failing: the queue, then the table.
    let data_request = body.replace(r#""orders_to_redact":[299938]"#, r#""data_request":{"id":9999}"#);
    let body = data_request;
    proxy.inject("SendMessage", Fault::Fail);
    assert_eq!(t.post_shopify("customers/data_request", SHOP_A, "l7", body.as_bytes()).await.status, 500);
    proxy.clear();
    proxy.inject("PutItem", Fault::Reject);
    assert_eq!(t.post_shopify("customers/data_request", SHOP_A, "l8", body.as_bytes()).await.status, 500);
    proxy.clear();

    let text = logs.text();
    for expected in [
        "privacy request recorded and queued",
        "app uninstalled",
        "does not handle",
        "hmac missing or invalid",
        "no tenant has",
        "malformed shopify webhook",
        "not its topic's body",
        "taking in the privacy request failed",
        "queueing the job",
        "recording the request",
    ] {
        assert!(text.contains(expected), "the paths above log {expected:?}:\n{text}");
    }
    logs.assert_free_of(&[SHOPIFY_EMAIL, "john.subject", SHOPIFY_PHONE, "6251199", CUSTOMER_ID, STRANGER]);
}
