use concierge::domain::{Channel, ContactId, Content, InboundMessage, ProviderMessageId, TenantId};
use concierge::privacy::{Expiry, Pseudonymizer};
use concierge::store::messages::inbound_item;
use concierge_e2e::*;

#[tokio::test]
async fn a_new_message_costs_two_aws_requests_and_a_duplicate_one_once_the_tenant_is_cached() {
    let t = TestStack::spawn().await;
    let message = |id: &str| {
        notification(&[(
            NUMBER_A,
            vec![text_message("4915112345678", id, 1, "hi")],
            vec![],
        )])
    };
    // Warm: the first message also looks the tenant up.
    assert_eq!(t.post_meta(&message("wamid.warm")).await.status, 200);

    let before = t.aws_requests();
    assert_eq!(t.post_meta(&message("wamid.new")).await.status, 200);
    let new_cost = t.aws_requests() - before;

    let before = t.aws_requests();
    assert_eq!(t.post_meta(&message("wamid.new")).await.status, 200);
    let duplicate_cost = t.aws_requests() - before;

    assert!(new_cost <= 2, "new message: {new_cost} AWS requests");
    assert!(
        duplicate_cost <= 1,
        "duplicate: {duplicate_cost} AWS requests"
    );
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
    assert_eq!(
        t.post_twilio(TENANT_A, false, &params("SMwarm"), TWILIO_TOKEN_A)
            .await
            .status,
        200
    );
    let before = t.aws_requests();
    assert_eq!(
        t.post_twilio(TENANT_A, false, &params("SMnew"), TWILIO_TOKEN_A)
            .await
            .status,
        200
    );
    let new_cost = t.aws_requests() - before;
    let before = t.aws_requests();
    assert_eq!(
        t.post_twilio(TENANT_A, false, &params("SMnew"), TWILIO_TOKEN_A)
            .await
            .status,
        200
    );
    let duplicate_cost = t.aws_requests() - before;
    assert!(
        new_cost <= 2 && duplicate_cost <= 1,
        "new {new_cost}, duplicate {duplicate_cost}"
    );
}

#[tokio::test]
async fn a_message_stored_by_an_attempt_that_died_before_queueing_is_queued_by_the_next_delivery() {
    let t = TestStack::spawn().await;
    // GIVEN a message written by an attempt that never reached the queue, two minutes ago
    let tenant = TenantId::parse(TENANT_A).unwrap();
    let message = InboundMessage {
        channel: Channel::Meta,
        id: ProviderMessageId::parse("wamid.stranded").unwrap(),
        contact: ContactId::parse_key("+4915112345678").unwrap(),
        profile_name: None,
        sent_at: 1,
        reply_to: None,
        content: Content::Text { body: "hi".into() },
    };
    let received_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        - 120;
    let hash = Pseudonymizer::new(b"k").contact(&tenant, &message.contact);
    let item = inbound_item(
        &tenant,
        &message,
        &hash,
        received_at,
        &Expiry::after_days(&tenant, received_at, 730),
    )
    .unwrap();
    t.dynamodb
        .put_item()
        .table_name(t.table("MessagesTable"))
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
    assert!(t.queued().await.is_empty());

    // WHEN Meta delivers it again
    let body = notification(&[(
        NUMBER_A,
        vec![text_message("4915112345678", "wamid.stranded", 1, "hi")],
        vec![],
    )]);
    assert_eq!(t.post_meta(&body).await.status, 200);

    // THEN it is queued, still stored once
    assert_eq!(t.queued().await.len(), 1);
    assert_eq!(t.messages().await.len(), 1);
}

#[tokio::test]
async fn when_the_queue_is_unavailable_the_write_is_undone_and_meta_is_asked_to_retry() {
    let t = TestStack::spawn().await;
    t.sqs
        .delete_queue()
        .queue_url(t.queue_url())
        .send()
        .await
        .unwrap();
    let body = notification(&[(
        NUMBER_A,
        vec![text_message("4915112345678", "wamid.unqueued", 1, "hi")],
        vec![],
    )]);
    let reply = t.post_meta(&body).await;
    assert_eq!(reply.status, 500);
    assert!(
        !reply.body.contains("queue") && !reply.body.contains("Exception"),
        "no internals: {}",
        reply.body
    );
    assert!(
        t.messages().await.is_empty(),
        "nothing half-written: the retry will store and queue it"
    );
}
