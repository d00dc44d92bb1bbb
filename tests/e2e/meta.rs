use std::collections::HashMap;

use concierge_e2e::*;
use futures::future::join_all;
use serde_json::json;

#[tokio::test]
async fn a_retry_storm_stores_and_queues_each_message_once() {
    let t = TestStack::spawn().await;
    let body = notification(&[(
        NUMBER_A,
        vec![
            text_message("4915112345678", "wamid.storm-1", 1_767_225_600, "one"),
            text_message("4915112345678", "wamid.storm-2", 1_767_225_601, "two"),
            text_message("34600111222", "wamid.storm-3", 1_767_225_602, "three"),
        ],
        vec![],
    )]);

    // GIVEN the same batch delivered five times at once (Meta retries, several apps subscribed)
    let replies = join_all((0..5).map(|_| t.post_meta(&body))).await;
    // Counted at the client: SQS's own deduplication would hide a second send from the queue.
    let mut sent = t.ingest().requests.sent_messages();
    assert_eq!(sent.len(), 3, "each message sent once, by the delivery that stored it: {sent:?}");
    sent.dedup();
    assert_eq!(sent.len(), 3);
    assert_eq!(t.aws_operation_count("DynamoDB:PutItem"), 15, "one conditional put per message and delivery");

    // THEN every delivery is acknowledged, and each message exists once, queued once
    assert!(replies.iter().all(|r| r.status == 200), "{:?}", replies.iter().map(|r| r.status).collect::<Vec<_>>());
    assert_eq!(t.messages().await.len(), 3);
    let queued = t.queued().await;
    assert_eq!(queued.len(), 3, "each message queued exactly once");
    let mut keys: Vec<String> = queued
        .iter()
        .map(|m| {
            serde_json::from_str::<serde_json::Value>(m.body().unwrap()).unwrap()["message_key"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 3);
}

#[tokio::test]
async fn three_messages_from_two_contacts_are_stored_and_grouped_per_contact() {
    let t = TestStack::spawn().await;
    let body = notification(&[(
        NUMBER_A,
        vec![
            // Out of order on purpose: a contact's messages are queued in send order.
            text_message("4915112345678", "wamid.g-2", 1_767_225_605, "second"),
            text_message("34600111222", "wamid.g-3", 1_767_225_603, "other contact"),
            text_message("4915112345678", "wamid.g-1", 1_767_225_600, "first"),
        ],
        vec![],
    )]);
    assert_eq!(t.post_meta(&body).await.status, 200);

    assert_eq!(t.messages().await.len(), 3);
    let queued = t.queued().await;
    let mut groups: HashMap<String, Vec<String>> = HashMap::new();
    for m in &queued {
        let job: serde_json::Value = serde_json::from_str(m.body().unwrap()).unwrap();
        groups.entry(group_of(m)).or_default().push(job["message_key"].as_str().unwrap().to_owned());
    }
    assert_eq!(groups.len(), 2, "one FIFO group per contact");
    let mut sizes: Vec<usize> = groups.values().map(Vec::len).collect();
    sizes.sort();
    assert_eq!(sizes, vec![1, 2]);
    let pair = groups.values().find(|g| g.len() == 2).unwrap();
    let expected = [message_key(TENANT_A, "meta", "wamid.g-1"), message_key(TENANT_A, "meta", "wamid.g-2")];
    assert_eq!(pair[..], expected[..], "send order within a group");
    for group in groups.keys() {
        assert!(group.starts_with("acme-dental#"), "{group}");
        assert!(
            !group.contains("4915112345678") && !group.contains("34600111222"),
            "no phone number in group ids: {group}"
        );
    }
}

#[tokio::test]
async fn bad_signatures_are_401_a_wrong_verify_token_403_and_nothing_is_written() {
    let t = TestStack::spawn().await;
    let body = notification(&[(NUMBER_A, vec![text_message("4915112345678", "wamid.bad", 1, "x")], vec![])]);
    let good = t.meta_signature(&body);

    let missing = t.request("POST", "/webhooks/meta", &[("content-type", "application/json")], &body).await;
    assert_eq!(missing.status, 401);
    let forged = concierge::channels::meta::signature::sign(b"not-the-app-secret", &body);
    let wrong = t
        .request(
            "POST",
            "/webhooks/meta",
            &[("content-type", "application/json"), ("x-hub-signature-256", &forged)],
            &body,
        )
        .await;
    assert_eq!(wrong.status, 401);
    let mut tampered = body.clone();
    let at = tampered.len() - 10;
    tampered[at] ^= 0x01;
    let flipped = t
        .request(
            "POST",
            "/webhooks/meta",
            &[("content-type", "application/json"), ("x-hub-signature-256", &good)],
            &tampered,
        )
        .await;
    assert_eq!(flipped.status, 401);
    assert!(!flipped.body.contains("sha256"), "no internals echoed: {}", flipped.body);

    let token = local_secret("META_VERIFY_TOKEN");
    let ok = t
        .request(
            "GET",
            &format!("/webhooks/meta?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=8675309"),
            &[],
            b"",
        )
        .await;
    assert_eq!((ok.status, ok.body.as_str()), (200, "8675309"));
    let mismatch =
        t.request("GET", "/webhooks/meta?hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1", &[], b"").await;
    assert_eq!(mismatch.status, 403);
    let no_mode = t.request("GET", &format!("/webhooks/meta?hub.verify_token={token}&hub.challenge=1"), &[], b"").await;
    assert_eq!(no_mode.status, 403);

    assert!(t.messages().await.is_empty());
    assert!(t.queued().await.is_empty());
}

#[tokio::test]
async fn a_valid_signature_over_malformed_json_is_400_and_an_oversized_body_413() {
    let t = TestStack::spawn().await;
    for malformed in [&b"{\"object\": \"whatsapp_business_account\", \"entry\": ["[..], b"[1,2,3]", b"\xff\xfe"] {
        let reply = t.post_meta(malformed).await;
        assert_eq!(reply.status, 400, "{malformed:?}");
    }
    let mut huge = notification(&[(NUMBER_A, vec![text_message("4915112345678", "wamid.big", 1, "x")], vec![])]);
    huge.resize(3 * 1024 * 1024 + 1, b' ');
    assert_eq!(t.post_meta(&huge).await.status, 413);
    assert!(t.messages().await.is_empty());
    assert!(t.queued().await.is_empty());
}

#[tokio::test]
async fn an_unknown_number_is_acknowledged_dropped_and_logged_without_personal_data() {
    let t = TestStack::spawn().await;
    let body = notification(&[(
        "999888777666555",
        vec![text_message("4915112345678", "wamid.stray", 1_767_225_600, "my private question")],
        vec![],
    )]);
    let logs = LogCapture::start();
    let reply = t.post_meta(&body).await;
    let text = logs.text();

    assert_eq!(reply.status, 200, "acknowledged, so Meta does not retry for 7 days");
    assert!(t.messages().await.is_empty());
    assert!(t.queued().await.is_empty());
    assert!(text.contains("no tenant serves this phone number id"), "{text}");
    for personal in ["4915112345678", "Customer Name", "my private question", "999888777666555"] {
        assert!(!text.contains(personal), "{personal} leaked into the logs: {text}");
    }
}

#[tokio::test]
async fn the_stored_path_logs_no_personal_data() {
    let t = TestStack::spawn().await;
    let logs = LogCapture::start();
    let body = notification(&[(
        NUMBER_A,
        vec![text_message("4915112345678", "wamid.pii", 1, "my email is jana@example.com")],
        vec![
            serde_json::json!({"id": "wamid.out", "status": "failed", "timestamp": "2", "recipient_id": "4915112345678", "errors": [{"code": 131047}]}),
        ],
    )]);
    assert_eq!(t.post_meta(&body).await.status, 200);
    let text = logs.text();
    assert!(text.contains("webhook ingested") && text.contains("\"stored\":1"), "{text}");
    for personal in ["4915112345678", "Customer Name", "jana@example.com", "my email"] {
        assert!(!text.contains(personal), "{personal} leaked into the logs: {text}");
    }
}

#[tokio::test]
async fn statuses_only_move_forward_and_failed_is_terminal() {
    let t = TestStack::spawn().await;
    let key = &message_key("acme-dental", "meta", "wamid.OUT-9");
    let status = |s: &str, ts: i64, errors: serde_json::Value| {
        notification(&[(
            NUMBER_A,
            vec![],
            vec![
                json!({"id": "wamid.OUT-9", "status": s, "timestamp": ts.to_string(), "recipient_id": "4915112345678", "errors": errors}),
            ],
        )])
    };
    assert_eq!(t.post_meta(&status("read", 20, json!([]))).await.status, 200);
    // `delivered` arrives after `read`: ignored.
    assert_eq!(t.post_meta(&status("delivered", 10, json!([]))).await.status, 200);
    let item = t.message(key).await.expect("status recorded");
    assert_eq!(s(&item, "delivery_status"), "read");
    assert!(!item.contains_key("contact"), "a status stub holds no personal data");

    assert_eq!(
        t.post_meta(&status("failed", 30, json!([{"code": 131047, "title": "Re-engagement message"}]))).await.status,
        200
    );
    assert_eq!(t.post_meta(&status("read", 40, json!([]))).await.status, 200);
    let item = t.message(key).await.unwrap();
    assert_eq!(s(&item, "delivery_status"), "failed");
    assert_eq!(s(&item, "error_code"), "131047");
}

#[tokio::test]
async fn every_message_type_is_stored_and_an_unknown_one_does_not_fail_the_batch() {
    let t = TestStack::spawn().await;
    let from = "4915112345678";
    let body = notification(&[(
        NUMBER_A,
        vec![
            text_message(from, "wamid.t-text", 1, "hi"),
            json!({"from": from, "id": "wamid.t-image", "timestamp": "2", "type": "image", "image": {"id": "MEDIA1", "mime_type": "image/jpeg", "sha256": "x"}}),
            json!({"from": from, "id": "wamid.t-location", "timestamp": "3", "type": "location", "location": {"latitude": 52.52, "longitude": 13.40}}),
            json!({"from": from, "id": "wamid.t-future", "timestamp": "4", "type": "hologram", "hologram": {"id": "?"}}),
            json!({"from": from, "id": "wamid.t-button", "timestamp": "5", "type": "button", "button": {"payload": "p", "text": "Yes"}}),
        ],
        vec![],
    )]);
    assert_eq!(t.post_meta(&body).await.status, 200);
    let mut kinds: Vec<String> = t
        .messages()
        .await
        .iter()
        .map(|i| match i.get("content") {
            Some(aws_sdk_dynamodb::types::AttributeValue::M(m)) => s(m, "type"),
            other => panic!("{other:?}"),
        })
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["button", "location", "media", "text", "unsupported"]);
    assert_eq!(t.queued().await.len(), 5);
}
