use concierge_e2e::*;

fn inbound(sid: &str) -> Vec<(&str, &str)> {
    vec![
        ("MessageSid", sid),
        ("SmsMessageSid", sid),
        ("AccountSid", TWILIO_ACCOUNT_A),
        ("From", "whatsapp:+14155550123"),
        ("To", "whatsapp:+14155550100"),
        ("Body", "Can I move my appointment?"),
        ("NumMedia", "0"),
        ("ProfileName", "Sam"),
        ("WaId", "14155550123"),
        ("ApiVersion", "2010-04-01"),
    ]
}

#[tokio::test]
async fn a_signed_inbound_message_is_stored_once_queued_once_and_answered_with_empty_twiml() {
    let t = TestStack::spawn().await;
    let params = inbound("SM22222222222222222222222222222222");
    let first = t.post_twilio(TENANT_A, false, &params, TWILIO_TOKEN_A).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.content_type, "text/xml");
    assert!(first.body.ends_with("<Response/>"), "{}", first.body);
    // Twilio retries once by default: same message, no second copy.
    assert_eq!(t.post_twilio(TENANT_A, false, &params, TWILIO_TOKEN_A).await.status, 200);

    let item =
        t.message(&message_key("acme-dental", "twilio", "SM22222222222222222222222222222222")).await.expect("stored");
    assert_eq!(s(&item, "gsi1pk"), "acme-dental#CONV#+14155550123");
    assert_eq!(s(&item, "stage"), "queued");
    assert_eq!(t.messages().await.len(), 1);
    assert_eq!(t.queued().await.len(), 1);
    // Counted at the client: FIFO deduplication would hide a second send from the queue.
    assert_eq!(t.ingest().requests.sent_messages().len(), 1);
}

#[tokio::test]
async fn bad_twilio_requests_get_clear_statuses_and_write_nothing() {
    let t = TestStack::spawn().await;
    let params = inbound("SM33333333333333333333333333333333");
    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(params.iter().copied()).finish();
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let unsigned = t.request("POST", "/webhooks/twilio/acme-dental", &form, body.as_bytes()).await;
    assert_eq!(unsigned.status, 401);
    // A tenant that does not exist is answered exactly like a bad signature: no enumeration.
    for unknown in ["no-such-tenant", "Not_A_Tenant"] {
        let reply = t.post_twilio(unknown, false, &params, TWILIO_TOKEN_A).await;
        assert_eq!((reply.status, &reply.body), (unsigned.status, &unsigned.body), "{unknown}");
    }
    // An extra parameter added after signing breaks the signature.
    let signature = twilio_signature(TWILIO_TOKEN_A, "http://127.0.0.1:3000/webhooks/twilio/acme-dental", &params);
    let padded = format!("{body}&Injected=1");
    let headers = [("content-type", "application/x-www-form-urlencoded"), ("x-twilio-signature", signature.as_str())];
    assert_eq!(t.request("POST", "/webhooks/twilio/acme-dental", &headers, padded.as_bytes()).await.status, 401);
    // Signed, but not a message.
    let no_sender = [("MessageSid", "SM4"), ("AccountSid", TWILIO_ACCOUNT_A), ("Body", "x")];
    assert_eq!(t.post_twilio(TENANT_A, false, &no_sender, TWILIO_TOKEN_A).await.status, 400);
    assert!(t.messages().await.is_empty());
    assert!(t.queued().await.is_empty());
}

#[tokio::test]
async fn status_callbacks_update_the_outbound_message_monotonically() {
    let t = TestStack::spawn().await;
    let callback = |status: &'static str| {
        vec![
            ("MessageSid", "SM55555555555555555555555555555555"),
            ("MessageStatus", status),
            ("AccountSid", TWILIO_ACCOUNT_A),
        ]
    };
    assert_eq!(t.post_twilio(TENANT_A, true, &callback("delivered"), TWILIO_TOKEN_A).await.status, 200);
    assert_eq!(t.post_twilio(TENANT_A, true, &callback("sent"), TWILIO_TOKEN_A).await.status, 200);
    let item =
        t.message(&message_key("acme-dental", "twilio", "SM55555555555555555555555555555555")).await.expect("recorded");
    assert_eq!(s(&item, "delivery_status"), "delivered");
    assert!(t.queued().await.is_empty(), "statuses are not queued for the assistant");
}

#[tokio::test]
async fn the_signed_url_includes_the_query_string_and_unknown_statuses_are_acknowledged() {
    let t = TestStack::spawn().await;
    let params = inbound("SM66666666666666666666666666666666");
    let path = "/webhooks/twilio/acme-dental?source=whatsapp";
    let signature = twilio_signature(TWILIO_TOKEN_A, &format!("http://127.0.0.1:3000{path}"), &params);
    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(params.iter().copied()).finish();
    let headers = [("content-type", "application/x-www-form-urlencoded"), ("x-twilio-signature", signature.as_str())];
    assert_eq!(t.request("POST", path, &headers, body.as_bytes()).await.status, 200);
    // Signed without the query: refused.
    let unsigned_query = twilio_signature(TWILIO_TOKEN_A, "http://127.0.0.1:3000/webhooks/twilio/acme-dental", &params);
    let headers =
        [("content-type", "application/x-www-form-urlencoded"), ("x-twilio-signature", unsigned_query.as_str())];
    assert_eq!(t.request("POST", path, &headers, body.as_bytes()).await.status, 401);

    let odd = [
        ("MessageSid", "SM77777777777777777777777777777777"),
        ("MessageStatus", "partially_delivered"),
        ("AccountSid", TWILIO_ACCOUNT_A),
    ];
    assert_eq!(t.post_twilio(TENANT_A, true, &odd, TWILIO_TOKEN_A).await.status, 200);
    assert!(t.message(&message_key("acme-dental", "twilio", "SM77777777777777777777777777777777")).await.is_none());
}

#[tokio::test]
async fn made_up_tenant_names_cost_no_reads() {
    let t = TestStack::spawn().await;
    let params = inbound("SM88888888888888888888888888888888");
    // The first request reads the tenant list once.
    assert_eq!(t.post_twilio("made-up-0", false, &params, TWILIO_TOKEN_A).await.status, 401);
    let before = t.ingest().requests.by_operation();
    for i in 1..50 {
        assert_eq!(t.post_twilio(&format!("made-up-{i}"), false, &params, TWILIO_TOKEN_A).await.status, 401);
    }
    assert_eq!(t.ingest().requests.by_operation(), before, "no read per made-up name");
}

#[tokio::test]
async fn a_parameter_twilio_repeats_with_the_same_value_is_signed_as_twilio_signs_it() {
    let t = TestStack::spawn().await;
    let mut params = inbound("SM99999999999999999999999999999999");
    params.push(("MediaUrl0", "https://api.twilio.com/m/1"));
    params.push(("MediaUrl0", "https://api.twilio.com/m/1"));
    // The harness signs as Twilio's library does (the repeated pair once).
    assert_eq!(t.post_twilio(TENANT_A, false, &params, TWILIO_TOKEN_A).await.status, 200);
    assert_eq!(t.messages().await.len(), 1);
}
