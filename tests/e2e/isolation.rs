use concierge_e2e::*;

#[tokio::test]
async fn a_message_to_tenant_a_s_number_is_stored_under_a_and_never_under_b() {
    let t = TestStack::spawn().await;
    // One notification naming both tenants' numbers (one WABA can hold several numbers).
    let body = notification(&[
        (NUMBER_A, vec![text_message("4915112345678", "wamid.iso-a", 1, "for A")], vec![]),
        (NUMBER_B, vec![text_message("4915112345678", "wamid.iso-b", 2, "for B")], vec![]),
    ]);
    assert_eq!(t.post_meta(&body).await.status, 200);

    let a = t.message(&message_key("acme-dental", "meta", "wamid.iso-a")).await.expect("A's message under A");
    assert_eq!(s(&a, "gsi1pk"), "acme-dental#CONV#+4915112345678");
    let b = t.message(&message_key("bella-salon", "meta", "wamid.iso-b")).await.expect("B's message under B");
    assert_eq!(s(&b, "gsi1pk"), "bella-salon#CONV#+4915112345678");
    assert!(t.message(&message_key("bella-salon", "meta", "wamid.iso-a")).await.is_none());
    assert!(t.message(&message_key("acme-dental", "meta", "wamid.iso-b")).await.is_none());
    for item in t.messages().await {
        let pk = s(&item, "pk");
        let tenant = pk.split('#').next().unwrap();
        for key in ["pk", "gsi1pk", "exp_pk", "pend_pk"] {
            assert!(s(&item, key).starts_with(&format!("{tenant}#")), "{key} must start with the tenant id");
        }
    }
    let groups: Vec<String> = t.queued().await.iter().map(group_of).collect();
    assert!(
        groups.iter().any(|g| g.starts_with("acme-dental#")) && groups.iter().any(|g| g.starts_with("bella-salon#"))
    );
}

#[tokio::test]
async fn a_twilio_request_signed_with_a_s_token_to_b_s_url_is_refused() {
    let t = TestStack::spawn().await;
    let params = [
        ("MessageSid", "SM11111111111111111111111111111111"),
        ("AccountSid", TWILIO_ACCOUNT_A),
        ("From", "whatsapp:+14155550123"),
        ("To", "whatsapp:+14155550100"),
        ("Body", "hello"),
        ("WaId", "14155550123"),
    ];
    // A's token over B's URL: the signature is checked with B's token, and fails.
    let path = "/webhooks/twilio/bella-salon";
    let signature = twilio_signature(TWILIO_TOKEN_A, &format!("http://127.0.0.1:3000{path}"), &params);
    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
    let reply = t
        .request(
            "POST",
            path,
            &[("content-type", "application/x-www-form-urlencoded"), ("x-twilio-signature", &signature)],
            body.as_bytes(),
        )
        .await;
    assert_eq!(reply.status, 401);
    // A request valid under A's token, replayed to B's URL: same refusal.
    assert_eq!(t.post_twilio(TENANT_A, false, &params, TWILIO_TOKEN_A).await.status, 200);
    let replay_signature =
        twilio_signature(TWILIO_TOKEN_A, "http://127.0.0.1:3000/webhooks/twilio/acme-dental", &params);
    let replay = t
        .request(
            "POST",
            path,
            &[("content-type", "application/x-www-form-urlencoded"), ("x-twilio-signature", &replay_signature)],
            body.as_bytes(),
        )
        .await;
    assert_eq!(replay.status, 401);
    // Signed with B's token but carrying A's account: not B's traffic either.
    assert_eq!(t.post_twilio(TENANT_B, false, &params, TWILIO_TOKEN_B).await.status, 403);

    let stored = t.messages().await;
    assert_eq!(stored.len(), 1);
    assert!(s(&stored[0], "pk").starts_with("acme-dental#MSG#twilio#"));
}
