//! How a function's environment is made locally (template < env-vars file < shell), and where
//! platform secrets come from (the environment locally, Secrets Manager in AWS).

use std::io::Write;

use concierge_e2e::*;

#[tokio::test]
async fn a_secret_given_in_the_shell_is_the_one_the_function_uses() {
    // `META_APP_SECRET=from-the-shell make run`
    let t = TestStack::spawn_with(|o| o.shell = shell(&[("META_APP_SECRET", "from-the-shell")])).await;
    assert_eq!(t.ingest().env["META_APP_SECRET"], "from-the-shell");
    let body = notification(&[(NUMBER_A, vec![text_message("4915112345678", "wamid.shell", 1, "hi")], vec![])]);
    // Signed with env.json's secret: refused; with the shell's: accepted.
    assert_eq!(t.post_meta(&body).await.status, 401);
    let signature = concierge::channels::meta::signature::sign(b"from-the-shell", &body);
    let headers = [("content-type", "application/json"), ("x-hub-signature-256", signature.as_str())];
    assert_eq!(t.request("POST", "/webhooks/meta", &headers, &body).await.status, 200);
}

#[tokio::test]
async fn the_model_settings_in_the_shell_reach_every_function_and_undeclared_ones_do_not() {
    // `LLM_PROVIDER=openai LLM_API_KEY=… make run`
    let vars = [("LLM_PROVIDER", "openai"), ("LLM_API_KEY", "sk-test"), ("SOMETHING_ELSE", "x")];
    let t = TestStack::spawn_with(|o| o.shell = shell(&vars)).await;
    for f in &t.stack.functions {
        assert_eq!(f.env.get("LLM_PROVIDER").map(String::as_str), Some("openai"), "{}", f.def.logical_id);
        assert_eq!(f.env.get("LLM_API_KEY").map(String::as_str), Some("sk-test"));
        assert!(!f.env.contains_key("SOMETHING_ELSE"), "only declared and documented variables are taken");
    }
}

#[tokio::test]
async fn the_env_vars_file_overrides_the_template_and_the_shell_overrides_both() {
    let mut file = tempfile_in_target("env-precedence.json");
    write!(
        file.1,
        r#"{{"Parameters": {{"CONTACT_HASH_KEY": "k", "PUBLIC_BASE_URL": "https://from-file.example"}},
            "WebhookIngestFunction": {{"META_APP_SECRET": "s", "META_VERIFY_TOKEN": "v", "ROUTES_TABLE": "from-file"}},
            "ShopifyGdprFunction": {{"SHOPIFY_CLIENT_SECRET": "s"}}}}"#
    )
    .unwrap();
    let path = file.0.clone();
    let t = TestStack::spawn_with(move |o| {
        o.env_vars = path;
        o.shell = shell(&[("PUBLIC_BASE_URL", "https://from-shell.example")]);
    })
    .await;
    let env = &t.ingest().env;
    assert_eq!(env["ROUTES_TABLE"], "from-file", "the file beats the template");
    assert_eq!(env["PUBLIC_BASE_URL"], "https://from-shell.example", "the shell beats the file");
    assert!(env["MESSAGES_TABLE"].ends_with("-MessagesTable"), "the template's own value otherwise");
    assert_eq!(t.function("InboundSweeperFunction").env["CONTACT_HASH_KEY"], "k", "Parameters apply to every function");
}

#[tokio::test]
async fn without_secrets_in_the_environment_they_are_read_from_secrets_manager_once() {
    let t = TestStack::spawn().await;
    let name = format!("concierge/test-{}", std::process::id());
    let secrets = aws_sdk_secretsmanager::Client::new(&t.stack.sdk);
    let value = r#"{"meta_app_secret":"from-secrets-manager","meta_verify_token":"v","contact_hash_key":"k"}"#;
    secrets.create_secret().name(&name).secret_string(value).send().await.unwrap();

    // The deployed shape: the variables empty, the secret named.
    let empty = [
        ("META_APP_SECRET", ""),
        ("META_VERIFY_TOKEN", ""),
        ("CONTACT_HASH_KEY", ""),
        ("PLATFORM_SECRET_ID", name.as_str()),
    ];
    let t = TestStack::spawn_with(|o| o.shell = shell(&empty)).await;
    let body = notification(&[(NUMBER_A, vec![text_message("4915112345678", "wamid.sm", 1, "hi")], vec![])]);
    let signature = concierge::channels::meta::signature::sign(b"from-secrets-manager", &body);
    let headers = [("content-type", "application/json"), ("x-hub-signature-256", signature.as_str())];
    assert_eq!(t.request("POST", "/webhooks/meta", &headers, &body).await.status, 200);
    assert_eq!(t.request("POST", "/webhooks/meta", &headers, &body).await.status, 200);
    assert_eq!(t.ingest().requests.operation("Secrets Manager:GetSecretValue"), 1, "read at init, kept while warm");
    assert!(!format!("{:?}", t.ingest().env).contains("from-secrets-manager"));
}

/// A file under the target directory (removed with it), and its path.
fn tempfile_in_target(name: &str) -> (std::path::PathBuf, std::fs::File) {
    let dir = std::env::temp_dir().join("concierge-e2e").join(format!("config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    (path.clone(), std::fs::File::create(path).unwrap())
}
