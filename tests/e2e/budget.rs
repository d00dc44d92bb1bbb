use concierge::domain::{Channel, ContactId, Content, InboundMessage, ProviderMessageId, TenantId};
use concierge::privacy::{Expiry, Pseudonymizer};
use concierge::store::messages::inbound_item;
use concierge_e2e::*;

#[tokio::test]
async fn a_new_message_costs_two_aws_requests_and_a_duplicate_one_once_the_tenant_is_cached() {
    let t = TestStack::spawn().await;
    let message = |id: &str| notification(&[(NUMBER_A, vec![text_message("4915112345678", id, 1, "hi")], vec![])]);
    // Warm: the first message also looks the tenant up.
    assert_eq!(t.post_meta(&message("wamid.warm")).await.status, 200);

    let before = t.aws_requests();
    assert_eq!(t.post_meta(&message("wamid.new")).await.status, 200);
    let new_cost = t.aws_requests() - before;

    let before = t.aws_requests();
    assert_eq!(t.post_meta(&message("wamid.new")).await.status, 200);
    let duplicate_cost = t.aws_requests() - before;

    assert!(new_cost <= 2, "new message: {new_cost} AWS requests");
    assert!(duplicate_cost <= 1, "duplicate: {duplicate_cost} AWS requests");
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
    assert!(new_cost <= 2 && duplicate_cost <= 1, "new {new_cost}, duplicate {duplicate_cost}");
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
    let received_at = concierge::clock::unix_now() - 120;
    let hash = Pseudonymizer::new(local_secret("CONTACT_HASH_KEY").as_bytes()).contact(&tenant, &message.contact);
    let expiry = Expiry::after_days(&tenant, received_at, 730);
    let key = concierge::store::messages::message_key(&tenant, message.channel, &message.id);
    let item =
        inbound_item(&tenant, &message, &key, &message.contact.key(), received_at, &expiry, "dead-attempt").unwrap();
    t.dynamodb.put_item().table_name(t.table("MessagesTable")).set_item(Some(item)).send().await.unwrap();
    assert!(t.queued().await.is_empty());

    // WHEN Meta delivers it again
    let body = notification(&[(NUMBER_A, vec![text_message("4915112345678", "wamid.stranded", 1, "hi")], vec![])]);
    assert_eq!(t.post_meta(&body).await.status, 200);

    // THEN it is queued in its contact's group, still stored once
    let queued = t.queued().await;
    assert_eq!(queued.len(), 1);
    assert_eq!(group_of(&queued[0]), format!("{TENANT_A}#{hash}"));
    let job: serde_json::Value = serde_json::from_str(queued[0].body().unwrap()).unwrap();
    assert_eq!(job["received_at"], received_at, "the job keeps the stored receive time");
    assert_eq!(t.messages().await.len(), 1);
}

#[tokio::test]
async fn when_the_queue_is_down_meta_is_asked_to_retry_and_the_retry_queues_the_stored_message() {
    let t = TestStack::spawn().await;
    let attributes = t.queue_attributes().await;
    t.sqs.delete_queue().queue_url(t.queue_url()).send().await.unwrap();
    let body = notification(&[(NUMBER_A, vec![text_message("4915112345678", "wamid.unqueued", 1, "hi")], vec![])]);

    // The attempt keeps trying through its window, then answers 500.
    let reply = t.post_meta(&body).await;
    assert_eq!(reply.status, 500);
    assert!(!reply.body.contains("queue") && !reply.body.contains("Exception"), "no internals: {}", reply.body);
    assert_eq!(t.messages().await.len(), 1, "the stored message stays for the retry to find");

    // The queue is back; Meta retries.
    let name = t.queue_url().rsplit('/').next().unwrap().to_owned();
    let keep =
        [aws_sdk_sqs::types::QueueAttributeName::FifoQueue, aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout];
    let restored =
        keep.iter().fold(t.sqs.create_queue().queue_name(name), |r, k| r.attributes(k.clone(), attributes[k].clone()));
    assert_eq!(restored.send().await.unwrap().queue_url.unwrap(), t.queue_url());
    assert_eq!(t.post_meta(&body).await.status, 200);
    assert_eq!(t.queued().await.len(), 1, "nothing lost");
    assert_eq!(t.messages().await.len(), 1);
}

/// moto does not enforce IAM: check instead that every AWS operation the function performed
/// across the paths exercised here is granted by its policy in template.yaml.
#[tokio::test]
async fn every_aws_operation_the_function_makes_is_allowed_by_its_template_policy() {
    let t = TestStack::spawn().await;
    let status = serde_json::json!({"id": "wamid.o", "status": "read", "timestamp": "1"});
    let body = notification(&[(NUMBER_A, vec![text_message("4915112345678", "wamid.iam", 1, "x")], vec![status])]);
    assert_eq!(t.post_meta(&body).await.status, 200);
    assert_eq!(t.post_meta(&body).await.status, 200);
    let params = [("MessageSid", "SMiam"), ("AccountSid", TWILIO_ACCOUNT_A), ("From", "+14155550123"), ("Body", "x")];
    assert_eq!(t.post_twilio(TENANT_A, false, &params, TWILIO_TOKEN_A).await.status, 200);

    let template = std::fs::read_to_string(concierge_local::repo_root().join("template.yaml")).unwrap();
    let function = &template[template.find("WebhookIngestFunction:").unwrap()..];
    let policy = &function[..function.find("Events:").unwrap()];
    let operations = t.ingest().aws_requests_by_operation();
    assert!(operations.len() >= 4, "{operations:?}");
    for operation in operations.keys() {
        let (service, action) = operation.split_once(':').unwrap();
        let permission = format!("- {}:{action}", service.to_ascii_lowercase());
        assert!(policy.contains(&permission), "template.yaml does not grant {permission}");
    }
}
