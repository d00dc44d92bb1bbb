use concierge_e2e::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn serve(router: axum::Router) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await });
    port
}

async fn http(port: u16, request: String) -> String {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn the_runner_serves_the_template_routes_and_the_lambda_invoke_api() {
    let t = TestStack::spawn().await;
    let api = serve(t.stack.api_router()).await;
    let lambda = serve(t.stack.invoke_router()).await;
    let token = local_secret("META_VERIFY_TOKEN");

    let verify = http(
        api,
        format!("GET /webhooks/meta?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=42 HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n"),
    )
    .await;
    assert!(verify.starts_with("HTTP/1.1 200") && verify.ends_with("42"), "{verify}");
    // A large but legal notification (Meta allows 3 MB) gets through the local API Gateway.
    let mut big = notification(&[(NUMBER_A, vec![text_message("4915112345678", "wamid.big", 1, "x")], vec![])]);
    big.resize(2_500_000, b' ');
    let signature = t.meta_signature(&big);
    let head = format!(
        "POST /webhooks/meta HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-hub-signature-256: {signature}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        big.len()
    );
    let posted = http(api, head + std::str::from_utf8(&big).unwrap()).await;
    assert!(posted.starts_with("HTTP/1.1 200"), "{}", &posted[..posted.len().min(200)]);
    let missing = http(api, "GET /nowhere HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".into()).await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");

    let event = std::fs::read_to_string(concierge_local::repo_root().join("events/meta-text-message.json")).unwrap();
    let invoke = |name: &str| {
        format!(
            "POST /2015-03-31/functions/{name}/invocations HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{event}",
            event.len()
        )
    };
    let invoked = http(lambda, invoke("WebhookIngestFunction")).await;
    assert!(invoked.starts_with("HTTP/1.1 200"), "{invoked}");
    let payload: serde_json::Value = serde_json::from_str(invoked.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(payload["statusCode"], 200);
    assert_eq!(t.messages().await.len(), 2, "the large notification and the invoked event were ingested");
    let unknown = http(lambda, invoke("NoSuchFunction")).await;
    assert!(unknown.starts_with("HTTP/1.1 404") && unknown.contains("ResourceNotFoundException"), "{unknown}");
}

/// A consumer that fails the jobs whose body is `job-1`, as a reply worker reports failures.
struct StandIn(std::sync::Mutex<Vec<(String, Option<String>)>>);

impl concierge::function::Function for StandIn {
    fn invoke(
        &self,
        event: concierge::function::Event,
        _: lambda_runtime::Context,
    ) -> concierge::function::BoxFuture<'_, Result<serde_json::Value, concierge::function::Error>> {
        Box::pin(async move {
            let event: aws_lambda_events::sqs::SqsEvent = serde_json::from_str(event.get())?;
            let mut response = aws_lambda_events::sqs::SqsBatchResponse::default();
            for record in event.records {
                let body = record.body.unwrap_or_default();
                self.0.lock().unwrap().push((body.clone(), record.attributes.get("MessageGroupId").cloned()));
                if body == "job-1" {
                    let mut failure = aws_lambda_events::sqs::BatchItemFailure::default();
                    failure.item_identifier = record.message_id.unwrap();
                    response.batch_item_failures.push(failure);
                }
            }
            Ok(serde_json::to_value(response)?)
        })
    }
}

/// The runner's SQS event source mapping, with a stand-in consumer (the reply worker comes next):
/// reported failures stay on the queue, the rest is deleted.
#[tokio::test]
async fn sqs_mappings_delete_what_succeeded_and_keep_reported_failures() {
    use std::sync::Arc;
    use std::time::Duration;

    use concierge_local::event_sources::SqsMapping;
    use concierge_local::functions::LocalFunction;

    let t = TestStack::spawn().await;
    for (i, contact) in ["+4915112345678", "+34600111222", "+447700900123"].iter().enumerate() {
        t.sqs
            .send_message()
            .queue_url(t.queue_url())
            .message_body(format!("job-{i}"))
            .message_group_id(format!("acme-dental#{contact}"))
            .message_deduplication_id(format!("d{i}"))
            .send()
            .await
            .unwrap();
    }
    let stand_in = Arc::new(StandIn(Default::default()));
    let mut def = t.ingest().def.clone();
    def.logical_id = "StandIn".into();
    let mapping = SqsMapping {
        function: Arc::new(LocalFunction::hosting(def, stand_in.clone(), t.stack.clock.clone())),
        queue_url: t.queue_url(),
        queue_arn: t.stack.provisioned.attribute("InboundQueue", "Arn").unwrap().to_owned(),
        batch_size: 10,
        report_batch_item_failures: true,
    };
    let outcome = mapping.poll_once(&t.sqs, Duration::ZERO).await.unwrap();
    assert_eq!((outcome.received, outcome.deleted), (3, 2));
    assert!(
        stand_in
            .0
            .lock()
            .unwrap()
            .iter()
            .all(|(_, group)| group.as_deref().is_some_and(|g| g.starts_with("acme-dental#")))
    );

    let attributes = t.queue_attributes().await;
    let count = |name: aws_sdk_sqs::types::QueueAttributeName| attributes[&name].parse::<u32>().unwrap();
    assert_eq!(
        count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            + count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        1,
        "only the reported failure is left"
    );
}

#[tokio::test]
async fn the_sandbox_sink_answers_like_the_providers_and_records_what_would_have_been_sent() {
    let t = TestStack::spawn().await;
    let function = t.stack.function("WebhookIngestFunction").unwrap();
    // Outbound calls go to the sandbox of the stack's own API (the test stack's port).
    assert_eq!(function.env["META_GRAPH_BASE_URL"], format!("{}/sandbox/meta", t.api_base));
    let api = serve(t.stack.api_router()).await;

    let send = r#"{"messaging_product":"whatsapp","recipient_type":"individual","to":"4915112345678","type":"text","text":{"body":"Yes, Saturday 9-13."}}"#;
    let reply = http(
        api,
        format!(
            "POST /sandbox/meta/v23.0/100000000000001/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{send}",
            send.len()
        ),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200") && reply.contains("wamid.sandbox-1"), "{reply}");
    let form = "To=whatsapp%3A%2B14155550123&From=whatsapp%3A%2B14155550100&Body=Hi";
    let twilio = http(
        api,
        format!(
            "POST /sandbox/twilio/2010-04-01/Accounts/{TWILIO_ACCOUNT_A}/Messages.json HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{form}",
            form.len()
        ),
    )
    .await;
    assert!(twilio.starts_with("HTTP/1.1 201"), "{twilio}");

    let sent = t.stack.outbox.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0]["phone_number_id"], "100000000000001");
    assert_eq!(sent[1]["request"]["Body"], "Hi");
}

/// Like Lambda, a handler runs to completion when the HTTP client goes away: a webhook whose
/// caller hangs up mid-way is still stored and queued.
#[tokio::test]
async fn a_webhook_whose_caller_hangs_up_is_still_handled_to_the_end() {
    let proxy = FaultProxy::start(emulator_endpoint()).await;
    let t = TestStack::spawn_through(&proxy.endpoint).await;
    let api = serve(t.stack.api_router()).await;
    // Every write takes a moment, so the caller is gone before the handler is done.
    proxy.inject("PutItem", Fault::Delay(std::time::Duration::from_millis(500)));
    let body = notification(&[(NUMBER_A, vec![text_message("4915112345678", "wamid.hangup", 1, "hi")], vec![])]);
    let signature = t.meta_signature(&body);
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", api)).await.unwrap();
    let head = format!(
        "POST /webhooks/meta HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-hub-signature-256: {signature}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    // Wait until the handler has started its first write, then hang up.
    while proxy.held() == 0 {
        tokio::task::yield_now().await;
    }
    drop(stream);
    let key = &message_key("acme-dental", "meta", "wamid.hangup");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Some(item) = t.message(key).await
            && s(&item, "stage") == "queued"
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the handler was cut off with its caller");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(t.queued_keys().await, std::slice::from_ref(key));
}

async fn fire_schedules_of(lambda: u16, function: &str) -> String {
    let request =
        format!("POST /schedules/{function} HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    http(lambda, request).await
}

/// `POST /schedules/{function}` fires a schedule now: a message that has waited six minutes is
/// queued by the sweep it starts.
#[tokio::test]
async fn a_schedule_fires_on_demand_with_the_current_time() {
    use concierge::clock::{Clock, SystemClock};

    let t = TestStack::spawn().await;
    let key = t.store_unqueued(TENANT_A, "wamid.waiting", SystemClock.now_ms() - 6 * 60_000).await;

    let lambda = serve(t.stack.invoke_router()).await;
    let fired = fire_schedules_of(lambda, "InboundSweeperFunction").await;
    assert!(fired.starts_with("HTTP/1.1 200"), "{fired}");
    let report: serde_json::Value = serde_json::from_str(fired.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(report["requeued"], 1, "{report}");
    assert_eq!(t.queued_keys().await, [key]);
    let none = fire_schedules_of(lambda, "WebhookIngestFunction").await;
    assert!(none.starts_with("HTTP/1.1 404"), "{none}");
}
