//! `GET /webhooks/meta` (subscription handshake) and `POST /webhooks/meta` (notifications).

use concierge::channels::meta::{self, signature};
use lambda_http::{Body, Request, RequestExt, Response};
use subtle::ConstantTimeEq;

use crate::{App, respond};

/// Echoes the challenge when the verify token matches; 403 otherwise.
pub fn verify(app: &App, req: &Request) -> Response<Body> {
    let query = req.query_string_parameters();
    let token_ok = query
        .first("hub.verify_token")
        .is_some_and(|t| bool::from(t.as_bytes().ct_eq(app.meta_verify_token.expose().as_bytes())));
    if query.first("hub.mode") != Some("subscribe") || !token_ok {
        return respond::error(403, "verification failed");
    }
    // Meta's challenge is a number; refusing anything else keeps this from reflecting markup.
    match query.first("hub.challenge") {
        Some(c) if !c.is_empty() && c.len() <= 128 && c.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            respond::ok_text(c.to_owned())
        }
        _ => respond::error(400, "missing or invalid hub.challenge"),
    }
}

pub async fn notify(app: &App, req: &Request) -> Response<Body> {
    // API Gateway's base64 encoding is already undone by lambda_http: these are Meta's bytes.
    let body: &[u8] = req.body().as_ref();
    if body.len() > meta::MAX_BODY_BYTES {
        return respond::error(413, "body exceeds 3 MB");
    }
    let header = req.headers().get(signature::HEADER).and_then(|v| v.to_str().ok());
    if signature::verify(app.meta_app_secret.expose().as_bytes(), body, header).is_err() {
        tracing::warn!("meta signature missing or invalid");
        return respond::error(401, "invalid signature");
    }
    let batch = match meta::parse_notification(body) {
        Ok(batch) => batch,
        Err(_) => return respond::error(400, "malformed notification"),
    };
    match app.pipeline.meta(batch).await {
        Ok(report) => {
            report.log("meta");
            respond::ok_text("OK")
        }
        // Meta retries; everything done so far is idempotent.
        Err(_) => respond::error(500, "temporarily unavailable"),
    }
}
