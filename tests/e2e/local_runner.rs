use concierge_e2e::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn serve(router: axum::Router) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await });
    port
}

async fn http(port: u16, request: String) -> String {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
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
    assert!(
        verify.starts_with("HTTP/1.1 200") && verify.ends_with("42"),
        "{verify}"
    );
    let missing = http(
        api,
        "GET /nowhere HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".into(),
    )
    .await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");

    let event =
        std::fs::read_to_string(concierge_local::repo_root().join("events/meta-text-message.json"))
            .unwrap();
    let invoke = |name: &str| {
        format!(
            "POST /2015-03-31/functions/{name}/invocations HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{event}",
            event.len()
        )
    };
    let invoked = http(lambda, invoke("WebhookIngestFunction")).await;
    assert!(invoked.starts_with("HTTP/1.1 200"), "{invoked}");
    let payload: serde_json::Value =
        serde_json::from_str(invoked.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(payload["statusCode"], 200);
    assert_eq!(
        t.messages().await.len(),
        1,
        "the invoked event was ingested"
    );
    let unknown = http(lambda, invoke("NoSuchFunction")).await;
    assert!(
        unknown.starts_with("HTTP/1.1 404") && unknown.contains("ResourceNotFoundException"),
        "{unknown}"
    );
}
