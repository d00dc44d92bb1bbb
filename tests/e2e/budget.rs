//! AWS requests per message, counted by the SDK interceptor: what a webhook costs once the
//! tenant is cached.

use concierge::domain::{ContactId, TenantId};
use concierge::ingest::SWEEP_AFTER_MS;
use concierge::privacy::Pseudonymizer;
use concierge::queue::message_group;
use concierge_e2e::*;

#[tokio::test]
async fn a_new_message_costs_three_requests_and_a_duplicate_or_late_redelivery_one() {
    let t = TestStack::spawn().await;
    let message = |id: &str| notification(&[(NUMBER_A, vec![text_message("4915112345678", id, 1, "hi")], vec![])]);
    // Warm: the first message also looks the tenant up.
    assert_eq!(t.post_meta(&message("wamid.warm")).await.status, 200);

    let before = t.ingest().requests.by_operation();
    assert_eq!(t.post_meta(&message("wamid.new")).await.status, 200);
    let after = t.ingest().requests.by_operation();
    let cost = |op: &str| after.get(op).copied().unwrap_or(0) - before.get(op).copied().unwrap_or(0);
    // The conditional put, the send, and the mark that it is queued.
    assert_eq!((cost("DynamoDB:PutItem"), cost("SQS:SendMessageBatch"), cost("DynamoDB:UpdateItem")), (1, 1, 1));
    assert_eq!(after.values().sum::<u64>() - before.values().sum::<u64>(), 3, "{after:?}");

    // The same message again (a retry, another subscribed app, or days later): one request.
    let before = t.aws_requests();
    assert_eq!(t.post_meta(&message("wamid.new")).await.status, 200);
    assert_eq!(t.aws_requests() - before, 1);
    assert_eq!(t.queued().await.len(), 2);
}

#[tokio::test]
async fn the_twilio_path_keeps_the_same_budget() {
    let t = TestStack::spawn().await;
    let params = |sid: &'static str| {
        vec![
            ("MessageSid", sid),
            ("AccountSid", TWILIO_ACCOUNT_A),
            ("From", "whatsapp:+14155550123"),
            ("Body", "hi"),
            ("WaId", "14155550123"),
        ]
    };
    assert_eq!(t.post_twilio(TENANT_A, false, &params("SMwarm"), TWILIO_TOKEN_A).await.status, 200);
    let before = t.aws_requests();
    assert_eq!(t.post_twilio(TENANT_A, false, &params("SMnew"), TWILIO_TOKEN_A).await.status, 200);
    let new_cost = t.aws_requests() - before;
    let before = t.aws_requests();
    assert_eq!(t.post_twilio(TENANT_A, false, &params("SMnew"), TWILIO_TOKEN_A).await.status, 200);
    let duplicate_cost = t.aws_requests() - before;
    assert_eq!((new_cost, duplicate_cost), (3, 1));
}

#[tokio::test]
async fn a_message_stored_by_an_attempt_that_died_before_queueing_is_queued_by_the_next_delivery() {
    let t = TestStack::spawn().await;
    // GIVEN a message written two minutes ago by an attempt that never reached the queue
    let received_ms = concierge::clock::Clock::now_ms(&concierge::clock::SystemClock) - 120_000;
    let key = t.store_unqueued(TENANT_A, "wamid.stranded", received_ms).await;
    assert!(t.queued().await.is_empty());

    // WHEN Meta delivers it again
    let body = notification(&[(NUMBER_A, vec![text_message("4915112345678", "wamid.stranded", 1, "hi")], vec![])]);
    assert_eq!(t.post_meta(&body).await.status, 200);

    // THEN it is queued in its contact's group, still stored once, and marked queued
    let queued = t.queued().await;
    assert_eq!(queued.len(), 1);
    let tenant = TenantId::parse(TENANT_A).unwrap();
    let contact = ContactId::parse_key("+4915112345678").unwrap();
    let hash = Pseudonymizer::new(local_secret("CONTACT_HASH_KEY").as_bytes()).contact(&tenant, &contact);
    assert_eq!(group_of(&queued[0]), message_group(&tenant, &hash));
    let job: serde_json::Value = serde_json::from_str(queued[0].body().unwrap()).unwrap();
    assert_eq!(job["received_at"], received_ms / 1000, "the job keeps the stored receive time");
    assert_eq!(t.messages().await.len(), 1);
    assert_eq!(s(&t.message(&key).await.unwrap(), "stage"), "queued");
    // Due for the sweeper from its own receive time, not the redelivery's.
    let due: i64 = s(&t.message(&key).await.unwrap(), "pend_sk").parse().unwrap();
    assert_eq!(due, received_ms / 1000 * 1000 + SWEEP_AFTER_MS);
}

#[tokio::test]
async fn each_webhooks_log_line_counts_its_own_requests_only() {
    let t = TestStack::spawn().await;
    let message = |id: &str| notification(&[(NUMBER_A, vec![text_message("4915112345678", id, 1, "hi")], vec![])]);
    assert_eq!(t.post_meta(&message("wamid.warm")).await.status, 200);
    let logs = LogCapture::start();
    // Two webhooks at once, each with one new message (3 requests each).
    let (first, second) = (message("wamid.a"), message("wamid.b"));
    let (a, b) = futures::join!(t.post_meta(&first), t.post_meta(&second));
    assert_eq!((a.status, b.status), (200, 200));
    let counts: Vec<u64> = logs
        .text()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["message"] == "webhook handled")
        .map(|line| line["aws_requests"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [3, 3], "not the sum of both");
}
