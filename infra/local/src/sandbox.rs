//! The sandbox sink: with no provider credentials configured locally, outbound calls go here.
//! It answers like the Graph API (`/{version}/{phone_number_id}/messages`) and Twilio's
//! Messages API (`/2010-04-01/Accounts/{sid}/Messages.json`) and records each request, so the
//! whole flow runs with nothing configured and what would have been sent can be inspected
//! (`GET /sandbox/outbox`).

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

#[derive(Default)]
pub struct Outbox {
    sent: Mutex<Vec<Value>>,
}

impl Outbox {
    fn record(&self, entry: Value) -> usize {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        sent.push(entry);
        sent.len()
    }

    pub fn sent(&self) -> Vec<Value> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
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
        .route("/sandbox/outbox", get(list))
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
