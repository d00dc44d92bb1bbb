//! `POST /webhooks/twilio/{tenant}` (inbound messages) and `…/status` (status callbacks).

use concierge::channels::twilio::{self, Form, signature};
use concierge::domain::TenantId;
use concierge::ingest::IngestError;
use lambda_http::{Body, Request, Response};

use crate::{App, respond};

pub async fn receive(app: &App, req: &Request, tenant: &str, status: bool) -> Response<Body> {
    let body: &[u8] = req.body().as_ref();
    if body.len() > twilio::MAX_BODY_BYTES {
        return respond::error(413, "body too large");
    }
    // A tenant that does not exist (or has no Twilio account) is answered exactly like a bad
    // signature, so the URL space cannot be probed for tenant names; the directory knows the
    // tenant list, so made-up names cost no read.
    let unknown = || {
        tracing::warn!("twilio signature missing or invalid");
        respond::error(401, "invalid signature")
    };
    let Ok(tenant_id) = TenantId::parse(tenant) else {
        return unknown();
    };
    let failed = |e: IngestError| {
        tracing::error!(error = %e, "tenant lookup failed; answering 500");
        respond::error(500, "temporarily unavailable")
    };
    let tenant = match app.pipeline.tenant(&tenant_id).await {
        Ok(Some(tenant)) => tenant,
        Ok(None) => return unknown(),
        Err(e) => return failed(e),
    };
    let credentials = match app.pipeline.twilio_credentials(&tenant).await {
        Ok(Some(credentials)) => credentials,
        Ok(None) => return unknown(),
        Err(e) => return failed(e),
    };
    let now = app.clock.now();

    // Twilio signed the public URL it called, which Lambda does not see: rebuild it.
    let url = public_url(app, req, &tenant_id, status);
    let header = req.headers().get(signature::HEADER).and_then(|v| v.to_str().ok());
    if let Some(body_sha256) = query_param(req, "bodySHA256") {
        // JSON-bodied webhooks sign the URL and bind the body by hash; messaging uses forms.
        return match signature::verify_json(&credentials.auth_token, &url, &body_sha256, body, header) {
            Ok(()) => respond::error(415, "form-encoded body expected"),
            Err(_) => respond::error(401, "invalid signature"),
        };
    }
    let form = Form::parse(body);
    if signature::verify(&credentials.auth_token, &url, &form.pairs(), header).is_err() {
        return unknown();
    }
    // A valid signature for this tenant's token from another account is still not this tenant's.
    if form.get("AccountSid") != Some(credentials.account_sid.as_str()) {
        return respond::error(403, "account does not belong to this tenant");
    }

    let result = if status {
        match twilio::status_update(&form, now) {
            Ok(update) => app.pipeline.tenant_updates(&tenant, Vec::new(), update.into_iter().collect()).await,
            Err(_) => return respond::error(400, "malformed status callback"),
        }
    } else {
        match twilio::inbound_message(&form, now) {
            Ok(message) => app.pipeline.tenant_updates(&tenant, vec![message], Vec::new()).await,
            Err(_) => return respond::error(400, "malformed message"),
        }
    };
    match result {
        Ok(report) => {
            report.log("twilio");
            if status {
                respond::with(200, "text/plain", "")
            } else {
                respond::with(200, "text/xml", twilio::EMPTY_TWIML)
            }
        }
        Err(_) => respond::error(500, "temporarily unavailable"),
    }
}

fn public_url(app: &App, req: &Request, tenant: &TenantId, status: bool) -> String {
    let base = app.public_base_url.clone().unwrap_or_else(|| {
        let host = req.headers().get("host").and_then(|h| h.to_str().ok()).unwrap_or_default();
        format!("https://{host}")
    });
    let suffix = if status { "/status" } else { "" };
    match req.uri().query() {
        Some(q) if !q.is_empty() => format!("{base}/webhooks/twilio/{tenant}{suffix}?{q}"),
        _ => format!("{base}/webhooks/twilio/{tenant}{suffix}"),
    }
}

fn query_param(req: &Request, name: &str) -> Option<String> {
    let query = req.uri().query()?;
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}
