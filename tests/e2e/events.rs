use concierge::privacy::requests::{RequestKind, RequestState};
use concierge_e2e::*;

/// The function each file in events/ is for (`sam local invoke <Function> -e events/<file>`).
fn function_of(file: &str) -> &'static str {
    match file {
        f if f.starts_with("meta-") || f.starts_with("twilio-") => "WebhookIngestFunction",
        f if f.starts_with("schedule-purge") => "RetentionPurgeFunction",
        f if f.starts_with("schedule") => "InboundSweeperFunction",
        f if f.starts_with("sqs-inbound") => "ReplyWorkerFunction",
        f if f.starts_with("shopify-") => "ShopifyGdprFunction",
        f if f.starts_with("sqs-privacy") => "PrivacyWorkerFunction",
        other => panic!("events/{other}: no function is known for it; add it here"),
    }
}

/// Every file in events/ goes through its function as `sam local invoke -e` would feed it.
#[tokio::test]
async fn every_event_file_is_accepted_by_its_function() {
    let t = TestStack::spawn().await;
    let dir = concierge_local::repo_root().join("events");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    // The uninstall suspends the example tenant: after the reply worker's event, so that one
    // still shows the path of a tenant that is installed.
    files.sort_by_key(|p| p.ends_with("shopify-app-uninstalled.json"));
    assert!(files.len() >= 6, "events/ holds the sample events");
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let event: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let result = t.invoke(function_of(&name), &event).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        if function_of(&name) == "WebhookIngestFunction" {
            assert_eq!(result["statusCode"], 200, "{name}: {result}");
        }
        if function_of(&name) == "ShopifyGdprFunction" {
            assert_eq!(result["statusCode"], 200, "{name}: {result}");
        }
        if name == "meta-verify.json" {
            assert_eq!(result["body"], "1158201444");
        }
        if name.starts_with("sqs-inbound") {
            // The job of meta-text-message.json's message: taken, and (sent long ago, outside
            // the 24-hour window, with no template configured) closed without a free-form reply.
            assert_eq!(result["batchItemFailures"], serde_json::json!([]), "{name}: {result}");
            let key =
                message_key(TENANT_A, "meta", "wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFjNFQjBEMjc3RTY3QjVGQkYwNjFBAA==");
            assert_eq!(s(&t.message(&key).await.unwrap(), "stage"), "answered", "{name}");
            assert!(t.outbox().is_empty(), "no free text outside the window");
        }
        if name.starts_with("sqs-privacy") {
            // The job of shopify-customers-data-request.json's request: its export is done (the
            // documented payload's customer never wrote to the tenant: an empty export).
            assert_eq!(result["batchItemFailures"], serde_json::json!([]), "{name}: {result}");
            let id = concierge::privacy::requests::shopify_request_id("b54557e4-bdd9-4b37-8a5f-bf7d70bcd001");
            let sk = format!("PRIV#{id}");
            assert!(event["Records"][0]["body"].as_str().unwrap().contains(id.as_str()), "{name}");
            let request = t.scan("TenantsTable").await.into_iter().find(|i| s(i, "sk") == sk);
            let request = request.unwrap_or_else(|| panic!("{name}: the data request's record"));
            assert_eq!(s(&request, "state"), "done", "{name}");
            assert!(!request.contains_key("subject"), "{name}: the sealed subject went with completion");
        }
        if name.starts_with("schedule-purge") {
            // A run for every tenant, each recorded in its audit trail.
            let tenants = result["tenants"].as_array().unwrap();
            assert!(tenants.len() >= 2 && tenants.iter().all(|r| r["complete"] == true), "{name}: {result}");
            let audited = t.scan("AuditTable").await;
            assert!(audited.iter().any(|i| i["action"].as_s().unwrap() == "purge_run"), "{name}");
        } else if name.starts_with("schedule") {
            assert!(result["tenants"].as_u64().unwrap() >= 2, "{name}: {result}");
        }
    }
    let items = t.messages().await;
    let inbound = items.iter().filter(|i| i.contains_key("content")).count();
    // 1 text + 4 in the batch + 1 Twilio message; statuses for 3 outbound messages.
    assert_eq!(inbound, 6);
    assert_eq!(items.len() - inbound, 3);
    assert_eq!(t.queued().await.len(), 6);
    assert_eq!(t.ingest().requests.sent_messages().len(), 6);
    // One privacy request per Shopify compliance topic; the uninstall suspended. The shop/redact
    // event ran before the uninstall's (kept last, above), so it is held, not queued.
    let requests = t.privacy_requests(TENANT_A).await;
    assert_eq!(requests.len(), 3);
    let held: Vec<_> = requests.iter().filter(|r| r.state == RequestState::Failed).map(|r| r.kind).collect();
    assert_eq!(held, [RequestKind::Wipe]);
    assert_eq!(t.privacy_jobs().await.len(), 2);
    let profile = t.scan("TenantsTable").await.into_iter().find(|i| s(i, "pk") == TENANT_A && s(i, "sk") == "PROFILE");
    assert!(profile.unwrap().contains_key("suspended_at"));
}
