//! The sandbox sink: with no provider credentials configured locally, outbound calls go here.
//! It answers like the Graph API (`/{version}/{phone_number_id}/messages`) and Twilio's
//! Messages API (`/2010-04-01/Accounts/{sid}/Messages.json`) and records each request, so the
//! whole flow runs with nothing configured and what would have been sent can be inspected
//! (`GET /sandbox/outbox`; mark-as-read calls, which send nothing, at `GET /sandbox/reads`).
//! It also serves Meta's media endpoints with deterministic bytes, so media copying runs locally.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

#[derive(Default)]
pub struct Outbox {
    sent: Mutex<Vec<Value>>,
    /// Mark-as-read calls: kept apart, since the outbox lists messages a contact would receive.
    reads: Mutex<Vec<Value>>,
}

fn push(list: &Mutex<Vec<Value>>, entry: Value) -> usize {
    let mut list = list.lock().unwrap_or_else(|p| p.into_inner());
    list.push(entry);
    list.len()
}

impl Outbox {
    fn record(&self, entry: Value) -> usize {
        push(&self.sent, entry)
    }

    fn record_read(&self, entry: Value) {
        push(&self.reads, entry);
    }

    pub fn sent(&self) -> Vec<Value> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn reads(&self) -> Vec<Value> {
        self.reads.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Base URLs the functions get for their outbound clients.
pub fn base_urls(api_base: &str) -> [(&'static str, String); 2] {
    [
        ("META_GRAPH_BASE_URL", format!("{api_base}/sandbox/meta")),
        ("TWILIO_API_BASE_URL", format!("{api_base}/sandbox/twilio")),
    ]
}

pub fn router(outbox: Arc<Outbox>) -> axum::Router {
    axum::Router::new()
        .route("/sandbox/meta/{version}/{phone_number_id}/messages", post(meta_send))
        .route("/sandbox/twilio/2010-04-01/Accounts/{account}/Messages.json", post(twilio_send))
        .route("/sandbox/meta/{version}/{media_id}", get(meta_media))
        .route("/sandbox/media/{media_id}", get(media_bytes))
        .route("/sandbox/outbox", get(list))
        .route("/sandbox/reads", get(list_reads))
        .with_state(outbox)
}

async fn meta_send(
    State(outbox): State<Arc<Outbox>>,
    Path((_, phone_number_id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": {"message": "invalid JSON", "code": 100}})))
            .into_response();
    };
    if request["status"] == "read" {
        outbox.record_read(json!({"channel": "meta", "phone_number_id": phone_number_id, "request": request}));
        return axum::Json(json!({"success": true})).into_response();
    }
    let to = request["to"].as_str().unwrap_or_default().to_owned();
    let n = outbox.record(json!({"channel": "meta", "phone_number_id": phone_number_id, "request": request}));
    axum::Json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": to, "wa_id": to}],
        "messages": [{"id": format!("wamid.sandbox-{n}")}]
    }))
    .into_response()
}

async fn twilio_send(State(outbox): State<Arc<Outbox>>, Path(account): Path<String>, body: Bytes) -> Response {
    let form: serde_json::Map<String, Value> =
        form_urlencoded::parse(&body).map(|(k, v)| (k.into_owned(), Value::String(v.into_owned()))).collect();
    let n = outbox.record(json!({"channel": "twilio", "account_sid": account, "request": form}));
    (
        StatusCode::CREATED,
        axum::Json(json!({"sid": format!("SMsandbox{n:024}"), "account_sid": account, "status": "queued"})),
    )
        .into_response()
}

async fn list(State(outbox): State<Arc<Outbox>>) -> Response {
    axum::Json(outbox.sent()).into_response()
}

async fn list_reads(State(outbox): State<Arc<Outbox>>) -> Response {
    axum::Json(outbox.reads()).into_response()
}

/// The bytes of a sandbox media id: deterministic, so a copy can be checked against them.
pub fn media_content(media_id: &str) -> Vec<u8> {
    [b"sandbox media ".as_slice(), media_id.as_bytes()].concat()
}

/// Meta's media metadata. The download URL points back at this server through the Host the
/// caller used, as Meta's points at its own CDN.
async fn meta_media(headers: HeaderMap, Path((_, media_id)): Path<(String, String)>) -> Response {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return (StatusCode::BAD_REQUEST, "Host header required").into_response();
    };
    let bytes = media_content(&media_id);
    axum::Json(json!({
        "messaging_product": "whatsapp",
        "url": format!("http://{host}/sandbox/media/{media_id}"),
        "mime_type": "image/jpeg",
        "sha256": concierge::media::sha256_hex(&bytes),
        "file_size": bytes.len(),
        "id": media_id,
    }))
    .into_response()
}

async fn media_bytes(Path(media_id): Path<String>) -> Response {
    ([(header::CONTENT_TYPE, "image/jpeg")], media_content(&media_id)).into_response()
}

#[cfg(test)]
mod tests {
    use concierge::channels::outbound::{
        Account, ChannelSender, Endpoints, HttpSender, MetaAccount, OutboundBody, OutboundRequest,
    };
    use concierge::domain::ids::{ContactId, ProviderMessageId, TenantId};
    use concierge::domain::message::Attachment;
    use concierge::media::{MediaFetcher, MemoryMediaStore, copy_attachments};

    use super::*;

    /// The sandbox on a loopback port, and the endpoints the functions would be given for it.
    async fn start() -> (Arc<Outbox>, Endpoints) {
        let outbox = Arc::new(Outbox::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api_base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(axum::serve(listener, router(outbox.clone())).into_future());
        let [(_, meta), (_, twilio)] = base_urls(&api_base);
        (outbox, Endpoints::new(&meta, "v23.0", &twilio).unwrap())
    }

    fn account() -> Account {
        Account::Meta(MetaAccount { phone_number_id: "1099".into(), access_token: "sandbox".into() })
    }

    #[tokio::test]
    async fn mark_read_is_listed_apart_from_sent_messages() {
        let (outbox, endpoints) = start().await;
        let sender = HttpSender::new(endpoints).unwrap();
        let message = ProviderMessageId::parse("wamid.IN1").unwrap();
        sender.mark_read(&account(), &message).await.unwrap();
        let to = ContactId::parse_key("+4915112345678").unwrap();
        let request =
            OutboundRequest { to: &to, body: OutboundBody::Text("hi"), reply_to: None, status_callback: None };
        let id = sender.send(&account(), &request).await.unwrap();

        assert_eq!(id.as_str(), "wamid.sandbox-1");
        let sent = outbox.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0]["request"]["text"]["body"], "hi");
        let reads = outbox.reads();
        assert_eq!(reads.len(), 1);
        assert_eq!(reads[0]["request"]["message_id"], "wamid.IN1");
    }

    #[tokio::test]
    async fn media_is_copied_from_the_sandbox_with_its_hash_checked() {
        let (_, endpoints) = start().await;
        let fetcher = MediaFetcher::new(endpoints).unwrap();
        let store = MemoryMediaStore::default();
        let tenant = TenantId::parse("acme").unwrap();
        let attachment = Attachment { media_id: Some("42".into()), ..Attachment::default() };
        let keys = copy_attachments(&fetcher, &store, &account(), &tenant, "ref", &[attachment]).await.unwrap();
        assert_eq!(keys, [Some("acme/media/ref/0".to_owned())]);
        assert_eq!(store.get("acme/media/ref/0"), Some((Some("image/jpeg".into()), media_content("42"))));
    }
}
