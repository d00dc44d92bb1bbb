//! Test harness: one emulator per test binary (started on a free port unless `AWS_ENDPOINT_URL`
//! names one), one isolated stack per test (its own tables and queues, by name prefix), built
//! by the local runner's own code from `template.yaml`, `infra/local/env.json` and the example
//! tenants. Requests go through the runner's API Gateway emulation into the real handlers; a
//! fault-injecting proxy can sit between the stack and the emulator.

pub mod history;
pub mod model;
pub mod proxy;
pub mod seed;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName, QueueAttributeName};
use base64::Engine;
use concierge_local::emulator::{Emulator, sdk_config};
use concierge_local::functions::LocalFunction;
use concierge_local::gateway::Gateway;
use concierge_local::{LocalStack, StackOptions, repo_root};
use hmac::{Hmac, KeyInit, Mac};
use lambda_http::http::{HeaderMap, HeaderName, HeaderValue, Uri};
use serde_json::{Value, json};

pub use model::{ScriptedModel, text_reply, tool_call};
pub use proxy::{Fault, FaultProxy};

pub const TENANT_A: &str = "acme-dental";
pub const TENANT_B: &str = "bella-salon";
pub const NUMBER_A: &str = "100000000000001";
pub const NUMBER_B: &str = "100000000000002";
pub const TWILIO_TOKEN_A: &str = "local-twilio-token-acme";
pub const TWILIO_TOKEN_B: &str = "local-twilio-token-bella";
pub const TWILIO_ACCOUNT_A: &str = "AC00000000000000000000000000000001";
pub const TWILIO_ACCOUNT_B: &str = "AC00000000000000000000000000000002";

pub fn emulator_endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        if let Ok(url) = std::env::var("AWS_ENDPOINT_URL")
            && !url.is_empty()
        {
            return url;
        }
        // A thread that lives as long as the test binary owns the emulator process.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async move {
                match Emulator::start(0, None).await {
                    Ok(emulator) => {
                        tx.send(Ok(emulator.endpoint.clone())).expect("harness waits");
                        std::future::pending::<()>().await;
                        drop(emulator);
                    }
                    Err(e) => tx.send(Err(format!("{e:#}"))).expect("harness waits"),
                }
            });
        });
        rx.recv().expect("emulator thread").unwrap_or_else(|e| panic!("cannot start the emulator: {e}"))
    })
}

/// A secret from `infra/local/env.json`, so tests sign with what the stack verifies with.
pub fn local_secret(name: &str) -> String {
    let text = std::fs::read_to_string(repo_root().join("infra/local/env.json")).expect("env.json");
    let env: Value = serde_json::from_str(&text).expect("env.json is JSON");
    ["WebhookIngestFunction", "Parameters"]
        .iter()
        .find_map(|section| env[section][name].as_str())
        .expect("secret in env.json")
        .to_owned()
}

/// The keyed hashes the local stack computes (its `CONTACT_HASH_KEY`).
pub fn pseudonyms() -> concierge::privacy::Pseudonymizer {
    concierge::privacy::Pseudonymizer::new(local_secret("CONTACT_HASH_KEY").as_bytes())
}

/// The key a message is stored under: `message_key("acme-dental", "meta", "wamid.x")`.
pub fn message_key(tenant: &str, channel: &str, provider_id: &str) -> String {
    let channel = concierge::domain::Channel::parse(channel).expect("meta or twilio");
    let tenant = concierge::domain::TenantId::parse(tenant).expect("a tenant id");
    concierge::store::keys::message_key(&tenant, channel, &pseudonyms().message_ref(channel, provider_id))
}

pub struct TestStack {
    pub stack: LocalStack,
    pub gateway: Gateway,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    /// Where the stack's API (and its sandbox sink for outbound messages) listens.
    pub api_base: String,
    meta_secret: String,
}

pub struct Reply {
    pub status: u16,
    pub body: String,
    pub content_type: String,
}

/// A shell holding only these variables (tests never see the developer's own).
pub fn shell(vars: &[(&str, &str)]) -> concierge_local::Shell {
    let vars: BTreeMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Arc::new(move |name| vars.get(name).cloned())
}

impl TestStack {
    /// A fresh stack with the example tenants loaded.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// A fresh stack whose functions reach AWS through `endpoint` (e.g. a fault proxy).
    pub async fn spawn_through(endpoint: &str) -> Self {
        Self::build(endpoint, |_| {}).await
    }

    /// A fresh stack behind `endpoint`, its options adjusted first.
    pub async fn spawn_through_with(endpoint: &str, adjust: impl FnOnce(&mut StackOptions)) -> Self {
        Self::build(endpoint, adjust).await
    }

    /// A fresh stack, its options adjusted first.
    pub async fn spawn_with(adjust: impl FnOnce(&mut StackOptions)) -> Self {
        Self::build(emulator_endpoint(), adjust).await
    }

    async fn build(endpoint: &str, adjust: impl FnOnce(&mut StackOptions)) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let prefix = format!("t{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let sdk = sdk_config(endpoint).await;
        let direct = sdk_config(emulator_endpoint()).await;
        let state = std::env::temp_dir().join("concierge-e2e").join(&prefix);
        // Port 3000: the URL the Twilio fixtures in events/ were signed for.
        let mut options = StackOptions::new(&prefix, &state, 3000);
        options.shell = shell(&[]);
        adjust(&mut options);
        // The API, with its sandbox sink, on a port of its own: outbound messages go there
        // unless the test's shell points them elsewhere (e.g. at a fake provider).
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let api_base = format!("http://{}", listener.local_addr().expect("local address"));
        let test_shell = options.shell.clone();
        let sandbox: BTreeMap<String, String> =
            concierge_local::sandbox::base_urls(&api_base).into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        options.shell = Arc::new(move |name| test_shell(name).or_else(|| sandbox.get(name).cloned()));
        let stack = LocalStack::build(sdk, &options).await.expect("local stack builds");
        let router = stack.api_router();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self {
            gateway: stack.gateway(),
            dynamodb: aws_sdk_dynamodb::Client::new(&direct),
            sqs: aws_sdk_sqs::Client::new(&direct),
            stack,
            api_base,
            meta_secret: local_secret("META_APP_SECRET"),
        }
    }

    pub fn function(&self, logical_id: &str) -> &Arc<LocalFunction> {
        self.stack.function(logical_id).expect("declared in template.yaml")
    }

    pub fn ingest(&self) -> &Arc<LocalFunction> {
        self.function("WebhookIngestFunction")
    }

    pub fn aws_requests(&self) -> u64 {
        self.ingest().requests.get()
    }

    /// Requests the ingest function made so far for one operation, e.g. `SQS:SendMessageBatch`.
    pub fn aws_operation_count(&self, operation: &str) -> u64 {
        self.ingest().requests.operation(operation)
    }

    pub async fn request(&self, method: &str, path_and_query: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let uri: Uri = path_and_query.parse().expect("valid path");
        let mut map = HeaderMap::new();
        map.insert("host", HeaderValue::from_static("127.0.0.1:3000"));
        for (k, v) in headers {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).expect("header name"),
                HeaderValue::from_str(v).expect("header value"),
            );
        }
        let reply = self.gateway.dispatch(method, &uri, &map, body).await.expect("a route of the template");
        Reply {
            status: reply.status,
            content_type: reply
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            body: String::from_utf8_lossy(&reply.body).into_owned(),
        }
    }

    pub fn meta_signature(&self, body: &[u8]) -> String {
        concierge::channels::meta::signature::sign(self.meta_secret.as_bytes(), body)
    }

    /// A Meta notification, signed as Meta signs it.
    pub async fn post_meta(&self, body: &[u8]) -> Reply {
        let signature = self.meta_signature(body);
        self.request(
            "POST",
            "/webhooks/meta",
            &[("content-type", "application/json"), ("x-hub-signature-256", &signature)],
            body,
        )
        .await
    }

    /// A Twilio webhook to `tenant`'s URL, signed with `token`.
    pub async fn post_twilio(&self, tenant: &str, status: bool, params: &[(&str, &str)], token: &str) -> Reply {
        let path = format!("/webhooks/twilio/{tenant}{}", if status { "/status" } else { "" });
        let signature = twilio_signature(token, &format!("http://127.0.0.1:3000{path}"), params);
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
        self.request(
            "POST",
            &path,
            &[("content-type", "application/x-www-form-urlencoded"), ("x-twilio-signature", &signature)],
            body.as_bytes(),
        )
        .await
    }

    /// Invokes a function through the runner's Invoke API path, as Lambda would.
    pub async fn invoke(&self, logical_id: &str, event: &Value) -> Result<Value, String> {
        self.function(logical_id).invoke_json(event).await
    }

    /// The template's SQS event source mapping of a function (which must have one).
    pub fn mapping(&self, logical_id: &str) -> concierge_local::event_sources::SqsMapping {
        self.stack
            .sqs_mappings()
            .expect("mappings")
            .into_iter()
            .find(|m| m.function.def.logical_id == logical_id)
            .unwrap_or_else(|| panic!("{logical_id} consumes no queue in the template"))
    }

    /// Feeds the inbound queue to the reply worker through the template's event source mapping
    /// (batches, partial failures, deletes) until nothing is left to receive; returns how many
    /// records were delivered.
    pub async fn deliver(&self) -> usize {
        let mapping = self.mapping("ReplyWorkerFunction");
        let mut delivered = 0;
        loop {
            let outcome = mapping.poll_once(&self.sqs, std::time::Duration::ZERO).await.expect("poll");
            if outcome.received == 0 {
                return delivered;
            }
            delivered += outcome.received;
        }
    }

    /// What the sandbox sink received as sent messages (mark-as-read requests are not in it).
    pub fn outbox(&self) -> Vec<Value> {
        self.stack.outbox.sent()
    }

    /// The text bodies of the messages sent through Meta, in order.
    pub fn sent_texts(&self) -> Vec<String> {
        self.outbox().iter().filter_map(|m| m["request"]["text"]["body"].as_str().map(str::to_owned)).collect()
    }

    pub fn worker(&self) -> &Arc<LocalFunction> {
        self.function("ReplyWorkerFunction")
    }

    /// The emulator's S3, straight (not through a fault proxy).
    pub async fn s3(&self) -> aws_sdk_s3::Client {
        let sdk = sdk_config(emulator_endpoint()).await;
        aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build())
    }

    pub fn bucket(&self, logical_id: &str) -> String {
        self.stack.provisioned.reference(logical_id).expect("bucket").to_owned()
    }

    /// Every object key of a bucket.
    pub async fn objects(&self, logical_id: &str) -> Vec<String> {
        let pages: Vec<_> = self
            .s3()
            .await
            .list_objects_v2()
            .bucket(self.bucket(logical_id))
            .into_paginator()
            .send()
            .collect::<Vec<_>>()
            .await;
        pages.into_iter().flat_map(|p| p.expect("list").contents.unwrap_or_default()).filter_map(|o| o.key).collect()
    }

    pub fn table(&self, logical_id: &str) -> String {
        self.stack.table(logical_id).expect("table").to_owned()
    }

    /// Every item of a table (a Scan is fine in a test, never on a real path).
    pub async fn scan(&self, logical_id: &str) -> Vec<HashMap<String, AttributeValue>> {
        self.dynamodb
            .scan()
            .table_name(self.table(logical_id))
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .expect("scan")
    }

    /// Every item of `MessagesTable`.
    pub async fn messages(&self) -> Vec<HashMap<String, AttributeValue>> {
        self.scan("MessagesTable").await
    }

    pub async fn message(&self, key: &str) -> Option<HashMap<String, AttributeValue>> {
        self.dynamodb
            .get_item()
            .table_name(self.table("MessagesTable"))
            .key("pk", AttributeValue::S(key.into()))
            .consistent_read(true)
            .send()
            .await
            .expect("get item")
            .item
    }

    /// Stores a text from `+4915112345678` to `tenant` as an ingest attempt that started at
    /// `received_ms` and died before queueing it would have left it; returns its key.
    pub async fn store_unqueued(&self, tenant: &str, provider_id: &str, received_ms: i64) -> String {
        use concierge::domain::{Channel, ContactId, Content, InboundMessage, ProviderMessageId, TenantId};
        use concierge::store::messages::{DynamoMessageLog, InboundLog};

        let tenant = concierge::tenants::Tenant::new(TenantId::parse(tenant).unwrap());
        let message = InboundMessage {
            channel: Channel::Meta,
            id: ProviderMessageId::parse(provider_id).unwrap(),
            contact: ContactId::parse_key("+4915112345678").unwrap(),
            profile_name: None,
            sent_at: 1,
            reply_to: None,
            content: Content::Text { body: "hi".into() },
        };
        let attempt = concierge::ingest::Attempt::new(&tenant, &concierge::clock::ManualClock::at(received_ms));
        let key = message_key(tenant.id.as_str(), "meta", provider_id);
        let contact = message.contact.key();
        let prepared = concierge::ingest::prepare(&tenant, &message, &key, &contact, "unused", &attempt);
        let log = DynamoMessageLog::new(self.dynamodb.clone(), self.table("MessagesTable"), pseudonyms());
        log.record_inbound(&prepared.new).await.unwrap();
        key
    }

    pub fn queue_url(&self) -> String {
        self.stack.provisioned.reference("InboundQueue").expect("queue").to_owned()
    }

    pub async fn queue_attributes(&self) -> HashMap<QueueAttributeName, String> {
        self.sqs
            .get_queue_attributes()
            .queue_url(self.queue_url())
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .unwrap_or_default()
    }

    /// Everything on the inbound queue, read without deleting it (messages stay in flight).
    pub async fn queued(&self) -> Vec<Message> {
        self.peek(&self.queue_url()).await
    }

    /// Everything on a queue, read without deleting it (messages stay in flight).
    async fn peek(&self, url: &str) -> Vec<Message> {
        let mut all = Vec::new();
        loop {
            let batch = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .visibility_timeout(300)
                .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
                .send()
                .await
                .expect("receive")
                .messages
                .unwrap_or_default();
            if batch.is_empty() {
                return all;
            }
            all.extend(batch);
        }
    }

    /// The message keys of everything on the queue.
    pub async fn queued_keys(&self) -> Vec<String> {
        self.queued().await.iter().map(job_key).collect()
    }
}

pub fn job_key(message: &Message) -> String {
    let job: Value = serde_json::from_str(message.body().expect("body")).expect("job JSON");
    job["message_key"].as_str().expect("message_key").to_owned()
}

pub fn group_of(message: &Message) -> String {
    message
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
        .cloned()
        .expect("FIFO messages carry their group")
}

/// Twilio's signature, written out independently of the production module, as Twilio's own
/// libraries compute it (sorted parameters, a value repeated under one name signed once).
pub fn twilio_signature(token: &str, url: &str, params: &[(&str, &str)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    sorted.dedup();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()).expect("any key length");
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

pub fn text_message(from: &str, id: &str, timestamp: i64, body: &str) -> Value {
    json!({"from": from, "id": id, "timestamp": timestamp.to_string(), "type": "text", "text": {"body": body}})
}

/// A Meta notification with one change per `(phone_number_id, messages, statuses)`.
pub fn notification(changes: &[(&str, Vec<Value>, Vec<Value>)]) -> Vec<u8> {
    let changes: Vec<Value> = changes
        .iter()
        .map(|(number, messages, statuses)| {
            let contacts: Vec<Value> = messages
                .iter()
                .filter_map(|m| m["from"].as_str())
                .map(|from| json!({"profile": {"name": "Customer Name"}, "wa_id": from}))
                .collect();
            json!({"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550001111", "phone_number_id": number},
                "contacts": contacts, "messages": messages, "statuses": statuses
            }})
        })
        .collect();
    serde_json::to_vec(
        &json!({"object": "whatsapp_business_account", "entry": [{"id": "200000000000001", "changes": changes}]}),
    )
    .expect("serialisable")
}

/// Captures this thread's log output (JSON lines), filtered as production filters it, at the
/// most verbose level it allows (so what production could ever log is what is checked).
///
/// One subscriber serves the whole test binary and writes each line to the capture of the thread
/// that logged it: per-thread subscribers would race on tracing's global interest cache when
/// tests run in parallel and lose lines. Each test runs on its own thread, with a current-thread
/// runtime, so its tasks log on its thread.
pub struct LogCapture {
    buffer: Arc<Mutex<Vec<u8>>>,
}

thread_local! {
    static CAPTURE: std::cell::RefCell<Option<Arc<Mutex<Vec<u8>>>>> = const { std::cell::RefCell::new(None) };
}

impl LogCapture {
    pub fn start() -> Self {
        static INSTALLED: OnceLock<()> = OnceLock::new();
        INSTALLED.get_or_init(|| {
            let subscriber =
                concierge::telemetry::subscriber(tracing_subscriber::filter::LevelFilter::TRACE, || CaptureWriter);
            tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber of the tests");
        });
        let buffer = Arc::new(Mutex::new(Vec::new()));
        CAPTURE.with(|c| *c.borrow_mut() = Some(buffer.clone()));
        Self { buffer }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().expect("log buffer")).into_owned()
    }

    /// Fails the test naming any of `personal` that reached the logs.
    pub fn assert_free_of(&self, personal: &[&str]) {
        let text = self.text();
        for p in personal {
            assert!(!text.contains(p), "{p:?} leaked into the logs:\n{text}");
        }
    }
}

impl Drop for LogCapture {
    fn drop(&mut self) {
        CAPTURE.with(|c| *c.borrow_mut() = None);
    }
}

/// Writes to the capture of the current thread, if any.
struct CaptureWriter;

impl std::io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| {
            if let Some(buffer) = c.borrow().as_ref() {
                buffer.lock().expect("log buffer").extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn s(item: &HashMap<String, AttributeValue>, name: &str) -> String {
    match item.get(name) {
        Some(AttributeValue::S(v)) => v.clone(),
        Some(AttributeValue::N(v)) => v.clone(),
        other => panic!("{name}: {other:?}"),
    }
}

pub fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

// ------------------------------------------------------------------ Shopify compliance webhooks

pub const SHOP_A: &str = "acme-dental.myshopify.com";

/// The Shopify client secret the local stack verifies with (`infra/local/env.json`).
pub fn shopify_secret() -> String {
    let text = std::fs::read_to_string(repo_root().join("infra/local/env.json")).expect("env.json");
    let env: Value = serde_json::from_str(&text).expect("env.json is JSON");
    env["ShopifyGdprFunction"]["SHOPIFY_CLIENT_SECRET"].as_str().expect("the Shopify secret in env.json").to_owned()
}

impl TestStack {
    /// A Shopify webhook with the headers Shopify sends (its own capitalisation), signed with
    /// `hmac` (`None`: no signature header).
    pub async fn post_shopify_signed(
        &self,
        topic: &str,
        shop: &str,
        webhook_id: &str,
        body: &[u8],
        hmac: Option<&str>,
    ) -> Reply {
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("X-Shopify-Topic", topic),
            ("X-Shopify-Shop-Domain", shop),
            ("X-Shopify-Webhook-Id", webhook_id),
            ("X-Shopify-API-Version", "2025-10"),
            ("X-Shopify-Triggered-At", "2026-01-01T00:00:00Z"),
        ];
        if let Some(hmac) = hmac {
            headers.push(("X-Shopify-Hmac-Sha256", hmac));
        }
        self.request("POST", "/webhooks/shopify", &headers, body).await
    }

    /// A Shopify webhook signed as Shopify signs it, for the local secret.
    pub async fn post_shopify(&self, topic: &str, shop: &str, webhook_id: &str, body: &[u8]) -> Reply {
        let hmac = concierge::shopify::signature::sign(shopify_secret().as_bytes(), body);
        self.post_shopify_signed(topic, shop, webhook_id, body, Some(&hmac)).await
    }

    pub fn shopify(&self) -> &Arc<LocalFunction> {
        self.function("ShopifyGdprFunction")
    }

    pub fn privacy_queue_url(&self) -> String {
        self.stack.provisioned.reference("PrivacyJobsQueue").expect("privacy queue").to_owned()
    }

    /// Every job on the privacy queue (bodies), read without deleting them.
    pub async fn privacy_jobs(&self) -> Vec<String> {
        self.peek(&self.privacy_queue_url()).await.into_iter().filter_map(|m| m.body).collect()
    }

    /// The privacy requests stored for `tenant` (a Query on its partition).
    pub async fn privacy_requests(&self, tenant: &str) -> Vec<concierge::privacy::requests::PrivacyRequest> {
        use concierge::store::requests::{DynamoPrivacyRequests, PrivacyRequests};
        let store = DynamoPrivacyRequests::new(self.dynamodb.clone(), self.table("TenantsTable"));
        store.list(&concierge::domain::TenantId::parse(tenant).expect("tenant id")).await.expect("list")
    }
}

/// What an outside tool needs to find this stack (the operator CLI's `--prefix` and
/// `--key-file`).
impl TestStack {
    /// The resource-name prefix: tables are `<prefix>-<LogicalId>`.
    pub fn prefix(&self) -> String {
        let table = self.table("TenantsTable");
        table.strip_suffix("-TenantsTable").expect("local names are <prefix>-<LogicalId>").to_owned()
    }

    /// The stack's master key file (as `build` places it).
    pub fn key_file(&self) -> std::path::PathBuf {
        std::env::temp_dir().join("concierge-e2e").join(self.prefix()).join("master.key")
    }
}
