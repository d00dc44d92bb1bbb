use concierge_e2e::*;
use webhook_ingest::handle;

/// Every file in events/ goes through the handler as `sam local invoke -e` would feed it.
#[tokio::test]
async fn every_event_file_is_accepted_by_its_function() {
    let t = TestStack::spawn().await;
    let dir = concierge_local::repo_root().join("events");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 4, "events/ holds the sample events");
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let request = lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let response = handle(t.ingest(), request).await.unwrap();
        let body = String::from_utf8_lossy(response.body().as_ref()).into_owned();
        assert_eq!(response.status().as_u16(), 200, "{}: {body}", path.display());
        if path.ends_with("meta-verify.json") {
            assert_eq!(body, "1158201444");
        }
    }
    let items = t.messages().await;
    let inbound = items.iter().filter(|i| s(i, "direction") == "in").count();
    // 1 text + 4 in the batch + 1 Twilio message; statuses for 3 outbound messages.
    assert_eq!(inbound, 6);
    assert_eq!(items.len() - inbound, 3);
    assert_eq!(t.queued().await.len(), 6);
    assert_eq!(t.aws_operation_count("SQS:SendMessage"), 6);
}
