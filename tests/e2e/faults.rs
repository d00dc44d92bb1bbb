//! Ingest with a fault-injecting proxy between the stack and the emulator: a failing queue, a
//! slow or hung AWS, AWS-like latency on a 1,000-update notification, a refused write.

use std::time::{Duration, Instant};

use concierge_e2e::*;

const CONTACT: &str = "4915112345678";

async fn stack_behind_proxy() -> (TestStack, FaultProxy) {
    let proxy = FaultProxy::start(emulator_endpoint()).await;
    let t = TestStack::spawn_through(&proxy.endpoint).await;
    // Warm: the tenant is cached before any fault, as in a running function.
    let warm = notification(&[(NUMBER_A, vec![text_message(CONTACT, "wamid.warm", 1, "hi")], vec![])]);
    assert_eq!(t.post_meta(&warm).await.status, 200);
    (t, proxy)
}

/// Found by the fault probe: with SQS failing, a retry that came while the first delivery was
/// still trying was answered 200 for a message stored and never queued.
#[tokio::test]
async fn a_retry_while_the_queue_fails_is_not_acknowledged_before_the_message_is_queued() {
    let (t, proxy) = stack_behind_proxy().await;
    proxy.inject("SendMessageBatch", Fault::Fail);
    let body = notification(&[(NUMBER_A, vec![text_message(CONTACT, "wamid.sqs-down", 2, "hi")], vec![])]);
    let key = &message_key("acme-dental", "meta", "wamid.sqs-down");

    // The first delivery stores the message and keeps trying to queue it …
    let (first, retry) = futures::join!(t.post_meta(&body), async {
        while t.message(key).await.is_none() {
            tokio::task::yield_now().await;
        }
        // … while the provider gives up on it and delivers again.
        t.post_meta(&body).await
    });
    assert_eq!((first.status, retry.status), (500, 500), "neither may say OK while the message is not queued");
    assert!(!retry.body.contains("Exception") && !retry.body.contains("queue"), "no internals: {}", retry.body);
    assert_eq!(s(&t.message(key).await.unwrap(), "stage"), "received");
    let sends = proxy.forwarded().iter().filter(|op| *op == "SendMessageBatch").count();
    assert_eq!(sends, 1, "only the warm-up message reached the queue");

    // The queue is back; the provider retries once more.
    proxy.clear();
    assert_eq!(t.post_meta(&body).await.status, 200);
    let queued = t.queued_keys().await;
    assert_eq!(queued.iter().filter(|k| *k == key).count(), 1, "queued exactly once: {queued:?}");
    assert_eq!(s(&t.message(key).await.unwrap(), "stage"), "queued");
}

#[tokio::test]
async fn slow_aws_makes_ingest_slower_not_failing() {
    let (t, proxy) = stack_behind_proxy().await;
    // Every AWS call takes 1.5 s: longer than any fixed per-attempt timeout a 10 s function
    // could afford three retries of.
    proxy.inject("", Fault::Delay(Duration::from_millis(1500)));
    let before = t.aws_requests();
    let body = notification(&[(NUMBER_A, vec![text_message(CONTACT, "wamid.slow", 2, "hi")], vec![])]);
    let reply = t.post_meta(&body).await;
    assert_eq!(reply.status, 200);
    assert_eq!(t.aws_requests() - before, 3, "no retries: put, send, mark");
    assert_eq!(t.queued_keys().await.len(), 2);
}

#[tokio::test]
async fn a_hung_connection_is_abandoned_and_retried_within_the_invocation() {
    let (t, proxy) = stack_behind_proxy().await;
    proxy.inject_times("PutItem", Fault::Hang, 1);
    let body = notification(&[(NUMBER_A, vec![text_message(CONTACT, "wamid.hung", 2, "hi")], vec![])]);
    assert_eq!(t.post_meta(&body).await.status, 200);
    assert_eq!(s(&t.message(&message_key("acme-dental", "meta", "wamid.hung")).await.unwrap(), "stage"), "queued");
}

#[tokio::test]
async fn a_write_dynamodb_refuses_as_invalid_is_a_500_and_an_error_never_a_skipped_message() {
    let (t, proxy) = stack_behind_proxy().await;
    proxy.inject("PutItem", Fault::Reject);
    let body = notification(&[(NUMBER_A, vec![text_message(CONTACT, "wamid.refused", 2, "hi")], vec![])]);
    let logs = LogCapture::start();
    let started = Instant::now();
    let reply = t.post_meta(&body).await;
    assert_eq!(reply.status, 500);
    assert!(started.elapsed() < Duration::from_secs(5), "a refusal is not retried until the deadline");
    let text = logs.text();
    assert!(text.contains("\"level\":\"ERROR\"") && text.contains("refused by DynamoDB"), "{text}");
    logs.assert_free_of(&[CONTACT, "Customer Name"]);
    proxy.clear();
    assert_eq!(t.post_meta(&body).await.status, 200);
}

/// Receives and deletes what reaches the inbound queue, as the reply worker would (the
/// emulator's FIFO sends slow down as a queue grows, which SQS's do not), until `count`
/// distinct messages came; returns their keys in queue order, repeats included.
async fn drain(t: &TestStack, count: usize) -> Vec<String> {
    let mut keys = Vec::new();
    let mut distinct = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while distinct.len() < count && Instant::now() < deadline {
        let batch = t
            .sqs
            .receive_message()
            .queue_url(t.queue_url())
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        if batch.is_empty() {
            continue;
        }
        keys.extend(batch.iter().map(job_key));
        distinct.extend(batch.iter().map(job_key));
        let entries = batch.iter().enumerate().map(|(i, m)| {
            aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(m.receipt_handle().unwrap())
                .build()
                .unwrap()
        });
        t.sqs
            .delete_message_batch()
            .queue_url(t.queue_url())
            .set_entries(Some(entries.collect()))
            .send()
            .await
            .unwrap();
    }
    keys
}

/// 1,000 updates from one contact, every AWS call 10 ms slower. At AWS's parallelism this fits
/// the function's 10 s easily (see the unit test in shared/src/ingest.rs); the emulator handles
/// one request at a time, so here a delivery may run out of time, and the provider's retry then
/// carries on from where it stopped. Either way each message is queued exactly once, in send
/// order, and a redelivery of a queued notification costs one request per message.
#[tokio::test]
async fn a_thousand_updates_from_one_contact_are_queued_once_each_in_order_and_redelivered_for_one_request_each() {
    let (t, proxy) = stack_behind_proxy().await;
    assert_eq!(drain(&t, 1).await.len(), 1, "the warm-up message");
    proxy.inject("", Fault::Delay(Duration::from_millis(10)));
    let messages: Vec<_> =
        (0..1000).map(|i| text_message(CONTACT, &format!("wamid.k{i:04}"), 1_767_225_600 + i, "update")).collect();
    let body = notification(&[(NUMBER_A, messages, vec![])]);

    let (deliveries, drained) = futures::join!(
        async {
            let mut times = Vec::new();
            for _ in 0..8 {
                let started = Instant::now();
                let status = t.post_meta(&body).await.status;
                times.push((status, started.elapsed()));
                if status == 200 {
                    break;
                }
            }
            times
        },
        drain(&t, 1000)
    );
    assert_eq!(deliveries.last().unwrap().0, 200, "{deliveries:?}");
    let mut seen = std::collections::HashSet::new();
    let first_seen: Vec<&String> = drained.iter().filter(|k| seen.insert(*k)).collect();
    let expected: Vec<String> =
        (0..1000).map(|i| message_key("acme-dental", "meta", &format!("wamid.k{i:04}"))).collect();
    assert!(first_seen.iter().copied().eq(expected.iter()), "every message queued, in send order");
    // A delivery cut short can leave its last two batches sent but not marked; the next one sends them
    // again, which SQS drops (it deduplicates for 5 minutes; the emulator only while a message
    // is on the queue) and the reply worker's stage check absorbs. Nothing else is repeated.
    let repeats = drained.len() - first_seen.len();
    assert!(repeats <= 20 * (deliveries.len() - 1), "{repeats} repeats over {} deliveries", deliveries.len());

    let before = t.ingest().requests.by_operation();
    let started = Instant::now();
    assert_eq!(t.post_meta(&body).await.status, 200);
    let again = started.elapsed();
    let after = t.ingest().requests.by_operation();
    assert_eq!(after["DynamoDB:PutItem"] - before["DynamoDB:PutItem"], 1000);
    assert_eq!(after.values().sum::<u64>() - before.values().sum::<u64>(), 1000, "one request per message: {after:?}");
    eprintln!(
        "1,000 updates at +10 ms per call against the emulator: deliveries {deliveries:?}, late redelivery {again:?}"
    );
}

#[tokio::test]
async fn a_text_the_strict_parser_refuses_is_stored_as_well_as_it_can_be_read() {
    let t = TestStack::spawn().await;
    let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"100000000000001"},"contacts":[{"profile":{"name":"Jana"},"wa_id":"4915112345678"}],"messages":[{"from":"4915112345678","id":"wamid.surrogate","timestamp":"1767225600","type":"text","text":{"body":"caf\ud800e"}}]}}]}]}"#;
    assert_eq!(t.post_meta(body).await.status, 200);
    let item = t.message(&message_key("acme-dental", "meta", "wamid.surrogate")).await.expect("stored, not dropped");
    let content = item["content"].as_m().unwrap();
    assert_eq!(s(content, "body"), "caf\u{FFFD}e");
    assert_eq!(t.queued_keys().await, [message_key("acme-dental", "meta", "wamid.surrogate")]);
}

#[tokio::test]
async fn a_tenant_lookup_that_fails_is_a_500_and_an_error_in_the_logs() {
    let proxy = FaultProxy::start(emulator_endpoint()).await;
    let t = TestStack::spawn_through(&proxy.endpoint).await;
    // The route lookup is refused (what DynamoDB says to a misconfigured table, say).
    proxy.inject("GetItem", Fault::Reject);
    let logs = LogCapture::start();
    let body = notification(&[(NUMBER_A, vec![text_message(CONTACT, "wamid.lookup", 2, "hi")], vec![])]);
    assert_eq!(t.post_meta(&body).await.status, 500);
    let text = logs.text();
    assert!(text.contains("\"level\":\"ERROR\"") && text.contains("tenant lookup failed"), "{text}");
    logs.assert_free_of(&[CONTACT, NUMBER_A]);
    proxy.clear();
    assert_eq!(t.post_meta(&body).await.status, 200);
}

/// Twilio does not retry a 500 by default: a tenant lookup that fails for a while is retried
/// within the invocation (past the SDK's own three attempts), and the message is kept.
#[tokio::test]
async fn a_twilio_message_survives_a_tenant_lookup_failing_for_a_while() {
    let proxy = FaultProxy::start(emulator_endpoint()).await;
    let t = TestStack::spawn_through(&proxy.endpoint).await;
    proxy.inject_times("GetItem", Fault::Fail, 4);
    let params =
        [("MessageSid", "SMlookup"), ("AccountSid", TWILIO_ACCOUNT_A), ("From", "+14155550123"), ("Body", "x")];
    assert_eq!(t.post_twilio(TENANT_A, false, &params, TWILIO_TOKEN_A).await.status, 200);
    assert!(t.message(&message_key(TENANT_A, "twilio", "SMlookup")).await.is_some());
}
