//! The inbound sweeper, invoked with scheduled events as EventBridge (and the runner) sends them.

use concierge::clock::{Clock, SystemClock};
use concierge::ingest::SWEEP_AFTER_MS;
use concierge_e2e::*;
use serde_json::json;

fn scheduled_at(time_ms: i64) -> serde_json::Value {
    concierge::function::schedule::event("arn:aws:events:us-east-1:000000000000:rule/test", time_ms, "test")
}

#[tokio::test]
async fn a_message_stored_while_the_queue_was_down_is_queued_by_the_next_sweep_after_the_delay() {
    let proxy = FaultProxy::start(emulator_endpoint()).await;
    let t = TestStack::spawn_through(&proxy.endpoint).await;
    // GIVEN a message stored while the queue refused everything (the provider got a 500 and
    // gave up, as Twilio does by default)
    proxy.inject("SendMessageBatch", Fault::Fail);
    let body = notification(&[(NUMBER_A, vec![text_message("4915112345678", "wamid.swept", 1, "hi")], vec![])]);
    assert_eq!(t.post_meta(&body).await.status, 500);
    proxy.clear();
    let key = &message_key("acme-dental", "meta", "wamid.swept");
    let received_ms = s(&t.message(key).await.unwrap(), "received_at").parse::<i64>().unwrap() * 1000;

    // WHEN the sweeper runs before the delay, nothing happens; after it, the message is queued
    let early = t.invoke("InboundSweeperFunction", &scheduled_at(received_ms + SWEEP_AFTER_MS - 1000)).await.unwrap();
    assert_eq!(early["requeued"], 0);
    assert!(t.queued_keys().await.is_empty());
    let report = t.invoke("InboundSweeperFunction", &scheduled_at(received_ms + SWEEP_AFTER_MS)).await.unwrap();
    assert_eq!((report["tenants"].as_u64(), report["requeued"].as_u64()), (Some(2), Some(1)), "{report}");
    assert_eq!(t.queued_keys().await, std::slice::from_ref(key));

    // THEN the next run leaves it alone until it is due again, and no run ever scans a table
    let again = t.invoke("InboundSweeperFunction", &scheduled_at(received_ms + SWEEP_AFTER_MS + 60_000)).await.unwrap();
    assert_eq!(again["requeued"], 0);
    let operations = t.function("InboundSweeperFunction").requests.by_operation();
    assert!(!operations.contains_key("DynamoDB:Scan"), "{operations:?}");
    assert!(operations["DynamoDB:Query"] >= 2 * (1 + 8), "tenant list and every shard of both tenants: {operations:?}");
}

#[tokio::test]
async fn the_sweeper_answers_a_scheduled_event_through_the_invoke_api_and_refuses_anything_else() {
    let t = TestStack::spawn().await;
    let now = SystemClock.now_ms();
    let report = t.invoke("InboundSweeperFunction", &scheduled_at(now)).await.unwrap();
    assert_eq!((report["tenants"].as_u64(), report["failed"].as_u64()), (Some(2), Some(0)));
    let error = t.invoke("InboundSweeperFunction", &json!({"hello": "world"})).await.unwrap_err();
    assert!(error.contains("EventBridge"), "{error}");
    let error = t.invoke("InboundSweeperFunction", &json!({"time": "yesterday"})).await.unwrap_err();
    assert!(error.contains("RFC 3339"), "{error}");
}

#[tokio::test]
async fn a_sweep_that_cannot_queue_fails_the_invocation_so_it_shows_and_leaves_the_message_due() {
    let proxy = FaultProxy::start(emulator_endpoint()).await;
    let t = TestStack::spawn_through(&proxy.endpoint).await;
    proxy.inject("SendMessageBatch", Fault::Fail);
    let body = notification(&[(NUMBER_A, vec![text_message("4915112345678", "wamid.stuck", 1, "hi")], vec![])]);
    assert_eq!(t.post_meta(&body).await.status, 500);
    let key = &message_key("acme-dental", "meta", "wamid.stuck");
    let due = s(&t.message(key).await.unwrap(), "pend_sk");
    let later = SystemClock.now_ms() + SWEEP_AFTER_MS + 60_000;
    let logs = LogCapture::start();
    let error = t.invoke("InboundSweeperFunction", &scheduled_at(later)).await.unwrap_err();
    assert!(error.contains("sweep incomplete"), "{error}");
    assert_eq!(s(&t.message(key).await.unwrap(), "pend_sk"), due, "still due for the next run");
    logs.assert_free_of(&["4915112345678", "Customer Name"]);
    proxy.clear();
    assert_eq!(t.invoke("InboundSweeperFunction", &scheduled_at(later)).await.unwrap()["requeued"], 1);
}
