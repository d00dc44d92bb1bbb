//! Sending to a contact: the port (`ChannelSender`), its HTTP adapter for Meta's Graph API and
//! Twilio's Messages API, and the retry policy around it. Errors and `Debug` output carry
//! statuses and provider codes only: never message text, numbers, tokens or response bodies.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{ConfigError, Env};
use crate::domain::ids::{ContactId, ProviderMessageId};
use crate::invocation;
use crate::tenants::settings::TemplateRef;

/// A tenant's WhatsApp Cloud API number.
#[derive(Clone, PartialEq, Eq)]
pub struct MetaAccount {
    pub phone_number_id: String,
    pub access_token: String,
}

/// A tenant's Twilio account and the sender it speaks as.
#[derive(Clone, PartialEq, Eq)]
pub struct TwilioAccount {
    pub account_sid: String,
    pub auth_token: String,
    /// `whatsapp:+14155550100` for WhatsApp; a bare E.164 number sends SMS.
    pub from: String,
}

#[derive(Clone, PartialEq, Eq)]
pub enum Account {
    Meta(MetaAccount),
    Twilio(TwilioAccount),
}

impl fmt::Debug for MetaAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetaAccount").field("phone_number_id", &self.phone_number_id).finish_non_exhaustive()
    }
}

impl fmt::Debug for TwilioAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioAccount").field("account_sid", &self.account_sid).finish_non_exhaustive()
    }
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Meta(a) => a.fmt(f),
            Self::Twilio(a) => a.fmt(f),
        }
    }
}

/// What to send. Text is personal data: `Debug` shows only which kind it is.
#[derive(Clone, Copy)]
pub enum OutboundBody<'a> {
    Text(&'a str),
    /// An approved template: the only thing allowed outside the 24-hour window.
    Template(&'a TemplateRef),
}

impl fmt::Debug for OutboundBody<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(_) => f.write_str("Text(..)"),
            Self::Template(t) => f.debug_tuple("Template").field(&t.name).finish(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct OutboundRequest<'a> {
    pub to: &'a ContactId,
    pub body: OutboundBody<'a>,
    /// Meta threads the answer under this message (`context.message_id`); Twilio ignores it.
    pub reply_to: Option<&'a ProviderMessageId>,
    /// Twilio's `StatusCallback` URL; Meta reports statuses through the app's webhook instead.
    pub status_callback: Option<&'a str>,
}

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Meta 131047 / Twilio 63016: the customer last wrote more than 24 h ago; only a template
    /// can reach them now.
    #[error("outside the 24-hour customer-service window")]
    OutsideWindow,
    /// 429, 5xx, or one of Meta's rate-limit codes: worth another try.
    #[error("provider busy or failing (status {status})")]
    Retryable { status: u16, retry_after_ms: Option<u64> },
    /// The request itself was refused; the same request will be refused again. `status` 0:
    /// refused here, before any request (see `HttpSender`).
    #[error("provider refused the message (status {status}, code {code:?})")]
    Rejected { status: u16, code: Option<i64> },
    /// The provider answered 2xx but with no readable message id, or a gateway timed out
    /// (504): it may have sent the message, so this is never retried (a retry would send it twice).
    #[error("provider accepted the message without a readable id (status {status})")]
    Unconfirmed { status: u16 },
    #[error("provider connection failed: {0}")]
    Transport(String),
}

impl SendError {
    /// Only what surely did not go out is retried: a refusal, or a connection never made. A
    /// timed-out request may have been delivered, and neither provider takes an idempotency
    /// key, so it is not sent again (the reply worker promises never to answer twice).
    pub fn retryable(&self) -> bool {
        match self {
            Self::Retryable { .. } => true,
            Self::Transport(kind) => kind == "connect",
            _ => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Retryable { retry_after_ms: Some(ms), .. } => Some(Duration::from_millis(*ms)),
            _ => None,
        }
    }
}

/// The port: how the reply worker reaches a contact.
pub trait ChannelSender: Send + Sync {
    /// Marks an inbound message read and shows the typing indicator (Meta); a no-op on Twilio,
    /// which has neither.
    fn mark_read(
        &self,
        account: &Account,
        message: &ProviderMessageId,
    ) -> impl Future<Output = Result<(), SendError>> + Send;
    fn send(
        &self,
        account: &Account,
        request: &OutboundRequest<'_>,
    ) -> impl Future<Output = Result<ProviderMessageId, SendError>> + Send;
}

/// Where the providers' APIs are: the vendors by default, the local sandbox or a test server
/// otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub meta_base: Url,
    pub meta_version: String,
    pub twilio_base: Url,
}

pub const DEFAULT_META_BASE: &str = "https://graph.facebook.com";
pub const DEFAULT_META_VERSION: &str = "v23.0";
pub const DEFAULT_TWILIO_BASE: &str = "https://api.twilio.com";

impl Endpoints {
    pub fn new(meta_base: &str, meta_version: &str, twilio_base: &str) -> Result<Self, ConfigError> {
        let version_ok =
            !meta_version.is_empty() && meta_version.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.');
        if !version_ok {
            return Err(ConfigError::Invalid("META_GRAPH_VERSION", "must look like v23.0"));
        }
        Ok(Self {
            meta_base: base_url(meta_base).ok_or(ConfigError::Invalid("META_GRAPH_BASE_URL", "not an http(s) URL"))?,
            meta_version: meta_version.to_owned(),
            twilio_base: base_url(twilio_base)
                .ok_or(ConfigError::Invalid("TWILIO_API_BASE_URL", "not an http(s) URL"))?,
        })
    }

    /// `META_GRAPH_BASE_URL`, `META_GRAPH_VERSION`, `TWILIO_API_BASE_URL`, each defaulting to the vendor.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let or = |name, default: &str| env.optional(name).unwrap_or_else(|| default.to_owned());
        Self::new(
            &or("META_GRAPH_BASE_URL", DEFAULT_META_BASE),
            &or("META_GRAPH_VERSION", DEFAULT_META_VERSION),
            &or("TWILIO_API_BASE_URL", DEFAULT_TWILIO_BASE),
        )
    }

    /// `{meta_base}/{version}/{segments…}`, each segment percent-encoded so an id can never
    /// change the path.
    pub(crate) fn meta_url(&self, segments: &[&str]) -> Url {
        join(&self.meta_base, std::iter::once(self.meta_version.as_str()).chain(segments.iter().copied()))
    }

    pub(crate) fn twilio_url(&self, segments: &[&str]) -> Url {
        join(&self.twilio_base, segments.iter().copied())
    }
}

impl Default for Endpoints {
    fn default() -> Self {
        Self::new(DEFAULT_META_BASE, DEFAULT_META_VERSION, DEFAULT_TWILIO_BASE).expect("the vendors' URLs parse")
    }
}

fn base_url(s: &str) -> Option<Url> {
    let url = Url::parse(s.trim_end_matches('/')).ok()?;
    (matches!(url.scheme(), "http" | "https") && !url.cannot_be_a_base()).then_some(url)
}

fn join<'a>(base: &Url, segments: impl IntoIterator<Item = &'a str>) -> Url {
    let mut url = base.clone();
    // `base_url` refused URLs that cannot be a base, so the segments are always there.
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// One request may take this long; a whole invocation's sends fit in the Lambda timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A provider that does not accept a connection quickly is down: fail and retry.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Left at the invocation's deadline for the worker to record what happened.
pub const DEADLINE_RESERVE: Duration = Duration::from_secs(1);

/// Inside an invocation, one request ends by its deadline (minus the reserve) and after `limit`
/// at most; outside one, the client's own timeout applies.
pub(crate) fn within_deadline(request: reqwest::RequestBuilder, limit: Duration) -> reqwest::RequestBuilder {
    match invocation::remaining() {
        Some(left) => request.timeout(left.saturating_sub(DEADLINE_RESERVE).min(limit).max(Duration::from_millis(100))),
        None => request,
    }
}

/// A reqwest error as a short kind: its `Display` holds the URL, which may hold ids.
pub(crate) fn transport_kind(err: &reqwest::Error) -> String {
    // A connection that timed out is still one never made: `connect` first.
    let kind = if err.is_connect() {
        "connect"
    } else if err.is_timeout() {
        "timeout"
    } else if err.is_body() || err.is_decode() {
        "body"
    } else if err.is_redirect() {
        "redirect"
    } else {
        "request"
    };
    kind.to_owned()
}

/// Sends within the invocation's deadline: the status, `Retry-After`, and the answer when it is
/// JSON of the expected shape (error pages may not be).
async fn exchange<T: serde::de::DeserializeOwned>(
    request: reqwest::RequestBuilder,
) -> Result<(u16, Option<u64>, Option<T>), SendError> {
    let response =
        within_deadline(request, REQUEST_TIMEOUT).send().await.map_err(|e| SendError::Transport(transport_kind(&e)))?;
    let status = response.status().as_u16();
    let retry_after = retry_after_ms(response.headers());
    Ok((status, retry_after, response.json().await.ok()))
}

/// `Retry-After` in whole seconds (the form both providers use).
fn retry_after_ms(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    let secs: u64 = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(secs.saturating_mul(1000))
}

/// The HTTP adapter for both providers.
#[derive(Debug, Clone)]
pub struct HttpSender {
    http: reqwest::Client,
    endpoints: Endpoints,
}

impl HttpSender {
    pub fn new(endpoints: Endpoints) -> Result<Self, SendError> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| SendError::Transport(format!("client: {}", transport_kind(&e))))?;
        Ok(Self::with_client(http, endpoints))
    }

    pub fn with_client(http: reqwest::Client, endpoints: Endpoints) -> Self {
        Self { http, endpoints }
    }

    async fn meta_post(&self, account: &MetaAccount, body: &Value) -> Result<(u16, Value), SendError> {
        let url = self.endpoints.meta_url(&[&account.phone_number_id, "messages"]);
        let request = self.http.post(url).bearer_auth(&account.access_token).json(body);
        let (status, retry_after, answer) = exchange::<Value>(request).await?;
        if (200..300).contains(&status) {
            return Ok((status, answer.unwrap_or(Value::Null)));
        }
        let code = answer.as_ref().and_then(|a| a["error"]["code"].as_i64());
        Err(meta_error(status, code, retry_after))
    }

    async fn meta_send(
        &self,
        account: &MetaAccount,
        request: &OutboundRequest<'_>,
    ) -> Result<ProviderMessageId, SendError> {
        let body = meta_message(request);
        let (status, answer) = self.meta_post(account, &body).await?;
        let id = answer["messages"][0]["id"].as_str().and_then(|id| ProviderMessageId::parse(id).ok());
        id.ok_or(SendError::Unconfirmed { status })
    }

    async fn twilio_send(
        &self,
        account: &TwilioAccount,
        request: &OutboundRequest<'_>,
    ) -> Result<ProviderMessageId, SendError> {
        let form = twilio_form(account, request)?;
        let url = self.endpoints.twilio_url(&["2010-04-01", "Accounts", &account.account_sid, "Messages.json"]);
        let request = self
            .http
            .post(url)
            .basic_auth(&account.account_sid, Some(&account.auth_token))
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form);
        let (status, retry_after, answer) = exchange::<TwilioAnswer>(request).await?;
        if (200..300).contains(&status) {
            let id = answer.and_then(|a| a.sid).and_then(|sid| ProviderMessageId::parse(&sid).ok());
            return id.ok_or(SendError::Unconfirmed { status });
        }
        Err(twilio_error(status, answer.and_then(|a| a.code), retry_after))
    }
}

impl ChannelSender for HttpSender {
    async fn mark_read(&self, account: &Account, message: &ProviderMessageId) -> Result<(), SendError> {
        match account {
            Account::Meta(meta) => {
                let body = json!({
                    "messaging_product": "whatsapp",
                    "status": "read",
                    "message_id": message.as_str(),
                    "typing_indicator": {"type": "text"},
                });
                self.meta_post(meta, &body).await.map(|_| ())
            }
            Account::Twilio(_) => Ok(()),
        }
    }

    async fn send(&self, account: &Account, request: &OutboundRequest<'_>) -> Result<ProviderMessageId, SendError> {
        match account {
            Account::Meta(meta) => self.meta_send(meta, request).await,
            Account::Twilio(twilio) => self.twilio_send(twilio, request).await,
        }
    }
}

/// Meta's codes for "too much, too fast" (some come with HTTP 400), and 131000, its
/// "something went wrong": 4 app, 80007 account, 130429 throughput, 131048 spam, 131056 pair.
const META_RETRYABLE_CODES: [i64; 6] = [4, 80007, 130429, 131048, 131056, 131000];
const META_OUTSIDE_WINDOW: i64 = 131047;
const TWILIO_OUTSIDE_WINDOW: i64 = 63016;

/// A gateway that gave up waiting (504) may have passed the message on: like a timeout, it is
/// not sent again.
const AMBIGUOUS: u16 = 504;

fn meta_error(status: u16, code: Option<i64>, retry_after_ms: Option<u64>) -> SendError {
    match code {
        Some(META_OUTSIDE_WINDOW) => SendError::OutsideWindow,
        _ if status == AMBIGUOUS => SendError::Unconfirmed { status },
        Some(c) if META_RETRYABLE_CODES.contains(&c) => SendError::Retryable { status, retry_after_ms },
        _ if status == 429 || status >= 500 => SendError::Retryable { status, retry_after_ms },
        _ => SendError::Rejected { status, code },
    }
}

fn twilio_error(status: u16, code: Option<i64>, retry_after_ms: Option<u64>) -> SendError {
    match code {
        Some(TWILIO_OUTSIDE_WINDOW) => SendError::OutsideWindow,
        _ if status == AMBIGUOUS => SendError::Unconfirmed { status },
        _ if status == 429 || status >= 500 => SendError::Retryable { status, retry_after_ms },
        _ => SendError::Rejected { status, code },
    }
}

#[derive(Deserialize)]
struct TwilioAnswer {
    sid: Option<String>,
    code: Option<i64>,
}

/// The Graph API message. A contact whose phone number Meta withholds is addressed by its
/// business-scoped user id in `recipient` (Meta's field for it) instead of `to`.
fn meta_message(request: &OutboundRequest<'_>) -> Value {
    let mut body = json!({"messaging_product": "whatsapp", "recipient_type": "individual"});
    match request.to {
        // Meta's `to` is the wa_id form: digits, no '+'.
        ContactId::Phone(phone) => body["to"] = json!(phone.as_str().trim_start_matches('+')),
        ContactId::BusinessScoped(user) => body["recipient"] = json!(user),
    }
    match request.body {
        OutboundBody::Text(text) => {
            body["type"] = json!("text");
            body["text"] = json!({"body": text, "preview_url": false});
        }
        OutboundBody::Template(template) => {
            body["type"] = json!("template");
            body["template"] = json!({"name": template.name, "language": {"code": template.language}});
        }
    }
    if let Some(reply_to) = request.reply_to {
        body["context"] = json!({"message_id": reply_to.as_str()});
    }
    body
}

/// Twilio's form. Refused here (status 0, no request made) when Twilio cannot carry it: a
/// contact known only by a business-scoped id (Twilio addresses phone numbers), or a template
/// whose name is not a Content SID (`HX…`; Twilio sends templates by SID, and the language is
/// part of the SID).
fn twilio_form(account: &TwilioAccount, request: &OutboundRequest<'_>) -> Result<String, SendError> {
    const REFUSED: SendError = SendError::Rejected { status: 0, code: None };
    let ContactId::Phone(phone) = request.to else { return Err(REFUSED) };
    // The recipient speaks the sender's channel: `whatsapp:` when sending from WhatsApp.
    let to = match account.from.strip_prefix("whatsapp:") {
        Some(_) => format!("whatsapp:{}", phone.as_str()),
        None => phone.as_str().to_owned(),
    };
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("To", &to).append_pair("From", &account.from);
    match request.body {
        OutboundBody::Text(text) => form.append_pair("Body", text),
        OutboundBody::Template(t) if t.name.starts_with("HX") => form.append_pair("ContentSid", &t.name),
        OutboundBody::Template(_) => return Err(REFUSED),
    };
    if let Some(callback) = request.status_callback {
        form.append_pair("StatusCallback", callback);
    }
    Ok(form.finish())
}

/// How `send_with_retries` spaces its attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first wait; each later one doubles (before jitter).
    pub base: Duration,
    pub max_attempts: u32,
    /// A provider asking for a longer pause than this is left to a later invocation.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { base: Duration::from_millis(250), max_attempts: 3, max_retry_after: Duration::from_secs(5) }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1-based): equal jitter over the exponential step,
    /// so concurrent workers hit by the same limit spread out, or the provider's `Retry-After`
    /// when it asks for longer.
    fn wait(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let step = self.base.saturating_mul(1 << (retry - 1).min(16));
        let half = step / 2;
        let jittered = half + half.mul_f64(fastrand::f64());
        retry_after.map_or(jittered, |r| r.max(jittered))
    }

    /// Sends, retrying what is retryable while the invocation has time for it.
    pub async fn send<S: ChannelSender>(
        &self,
        sender: &S,
        account: &Account,
        request: &OutboundRequest<'_>,
    ) -> Result<ProviderMessageId, SendError> {
        let mut attempt = 1;
        loop {
            let err = match sender.send(account, request).await {
                Ok(id) => return Ok(id),
                Err(e) => e,
            };
            if !err.retryable() || attempt >= self.max_attempts {
                return Err(err);
            }
            if err.retry_after().is_some_and(|r| r > self.max_retry_after) {
                return Err(err);
            }
            let wait = self.wait(attempt, err.retry_after());
            let fits = invocation::remaining().is_none_or(|left| wait + DEADLINE_RESERVE <= left);
            if !fits {
                return Err(err);
            }
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }
}

/// `send` with the default policy: 3 attempts, 250 ms doubling, `Retry-After` up to 5 s, never
/// past the invocation's deadline minus 1 s.
pub async fn send_with_retries<S: ChannelSender>(
    sender: &S,
    account: &Account,
    request: &OutboundRequest<'_>,
) -> Result<ProviderMessageId, SendError> {
    RetryPolicy::default().send(sender, account, request).await
}

/// Accounts for the tests of what talks to the providers (sending, media).
#[cfg(test)]
pub(crate) mod testing {
    use super::{Account, MetaAccount, TwilioAccount};

    pub const TOKEN: &str = "EAAG-secret-token";

    pub fn meta() -> Account {
        Account::Meta(MetaAccount { phone_number_id: "1099".into(), access_token: TOKEN.into() })
    }

    pub fn twilio() -> Account {
        Account::Twilio(TwilioAccount {
            account_sid: "AC123".into(),
            auth_token: "twilio-secret".into(),
            from: "whatsapp:+14155550100".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::time::Instant;
    use wiremock::matchers::{basic_auth, bearer_token, body_json, body_string, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::invocation::Scope;

    const PHONE: &str = "+4915112345678";

    use super::testing::{TOKEN, meta, twilio};

    fn sender(server: &MockServer) -> HttpSender {
        HttpSender::new(Endpoints::new(&server.uri(), "v23.0", &server.uri()).unwrap()).unwrap()
    }

    fn contact() -> ContactId {
        ContactId::parse_key(PHONE).unwrap()
    }

    fn text<'a>(to: &'a ContactId, body: &'a str) -> OutboundRequest<'a> {
        OutboundRequest { to, body: OutboundBody::Text(body), reply_to: None, status_callback: None }
    }

    /// Immediate retries: the wiremock tests count requests, not time.
    const FAST: RetryPolicy =
        RetryPolicy { base: Duration::from_millis(1), max_attempts: 3, max_retry_after: Duration::from_secs(5) };

    fn meta_sent(id: &str) -> ResponseTemplate {
        ResponseTemplate::new(200).set_body_json(json!({"messaging_product": "whatsapp", "messages": [{"id": id}]}))
    }

    fn meta_failed(status: u16, code: i64) -> ResponseTemplate {
        ResponseTemplate::new(status).set_body_json(json!({"error": {"code": code, "message": "m", "type": "t"}}))
    }

    #[tokio::test]
    async fn meta_text_goes_to_the_graph_api_with_bearer_token_and_thread_context() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v23.0/1099/messages"))
            .and(bearer_token(TOKEN))
            .and(header("content-type", "application/json"))
            .and(body_json(json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": "4915112345678",
                "type": "text",
                "text": {"body": "Hello there", "preview_url": false},
                "context": {"message_id": "wamid.IN1"},
            })))
            .respond_with(meta_sent("wamid.OUT1"))
            .expect(1)
            .mount(&server)
            .await;
        let to = contact();
        let reply_to = ProviderMessageId::parse("wamid.IN1").unwrap();
        let request = OutboundRequest { reply_to: Some(&reply_to), ..text(&to, "Hello there") };
        let id = sender(&server).send(&meta(), &request).await.unwrap();
        assert_eq!(id.as_str(), "wamid.OUT1");
    }

    #[tokio::test]
    async fn meta_templates_and_business_scoped_recipients_use_their_own_fields() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v23.0/1099/messages"))
            .and(body_json(json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "recipient": "DE.998877",
                "type": "template",
                "template": {"name": "follow_up", "language": {"code": "de"}},
            })))
            .respond_with(meta_sent("wamid.OUT2"))
            .expect(1)
            .mount(&server)
            .await;
        let to = ContactId::business_scoped("DE.998877").unwrap();
        let template = TemplateRef { name: "follow_up".into(), language: "de".into() };
        let request =
            OutboundRequest { to: &to, body: OutboundBody::Template(&template), reply_to: None, status_callback: None };
        assert_eq!(sender(&server).send(&meta(), &request).await.unwrap().as_str(), "wamid.OUT2");
    }

    #[tokio::test]
    async fn twilio_gets_a_form_with_basic_auth_and_the_status_callback() {
        let server = MockServer::start().await;
        let form = "To=whatsapp%3A%2B4915112345678&From=whatsapp%3A%2B14155550100&Body=Hi+%26+bye\
                    &StatusCallback=https%3A%2F%2Fexample.com%2Fstatus";
        Mock::given(method("POST"))
            .and(path("/2010-04-01/Accounts/AC123/Messages.json"))
            .and(basic_auth("AC123", "twilio-secret"))
            .and(header("content-type", "application/x-www-form-urlencoded"))
            .and(body_string(form))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"sid": "SM42", "status": "queued"})))
            .expect(1)
            .mount(&server)
            .await;
        let to = contact();
        let request = OutboundRequest { status_callback: Some("https://example.com/status"), ..text(&to, "Hi & bye") };
        assert_eq!(sender(&server).send(&twilio(), &request).await.unwrap().as_str(), "SM42");
    }

    #[tokio::test]
    async fn twilio_templates_go_by_content_sid_and_other_names_are_refused_unsent() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(body_string("To=whatsapp%3A%2B4915112345678&From=whatsapp%3A%2B14155550100&ContentSid=HXabc"))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"sid": "SM43"})))
            .expect(1)
            .mount(&server)
            .await;
        let to = contact();
        let by_sid = TemplateRef { name: "HXabc".into(), language: "en".into() };
        let by_name = TemplateRef { name: "follow_up".into(), language: "en".into() };
        let request =
            |t| OutboundRequest { to: &to, body: OutboundBody::Template(t), reply_to: None, status_callback: None };
        let s = sender(&server);
        assert_eq!(s.send(&twilio(), &request(&by_sid)).await.unwrap().as_str(), "SM43");
        assert_eq!(s.send(&twilio(), &request(&by_name)).await, Err(SendError::Rejected { status: 0, code: None }));
    }

    #[tokio::test]
    async fn outside_the_window_is_reported_and_never_retried() {
        let server = MockServer::start().await;
        Mock::given(method("POST")).respond_with(meta_failed(400, 131047)).expect(1).mount(&server).await;
        let to = contact();
        let result = FAST.send(&sender(&server), &meta(), &text(&to, "hi")).await;
        assert_eq!(result, Err(SendError::OutsideWindow));
    }

    #[tokio::test]
    async fn twilio_window_error_is_outside_window_too() {
        let server = MockServer::start().await;
        let answer = json!({"code": 63016, "message": "m", "status": 400});
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(400).set_body_json(answer))
            .expect(1)
            .mount(&server)
            .await;
        let to = contact();
        let result = FAST.send(&sender(&server), &twilio(), &text(&to, "hi")).await;
        assert_eq!(result, Err(SendError::OutsideWindow));
    }

    #[tokio::test]
    async fn server_errors_are_retried_until_the_send_succeeds() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(500))
            .up_to_n_times(2)
            .expect(2)
            .mount(&server)
            .await;
        Mock::given(method("POST")).respond_with(meta_sent("wamid.OK")).expect(1).mount(&server).await;
        let to = contact();
        let id = FAST.send(&sender(&server), &meta(), &text(&to, "hi")).await.unwrap();
        assert_eq!(id.as_str(), "wamid.OK");
    }

    #[tokio::test]
    async fn a_gateway_timeout_may_have_delivered_and_is_not_sent_again() {
        let server = MockServer::start().await;
        Mock::given(method("POST")).respond_with(ResponseTemplate::new(504)).expect(1).mount(&server).await;
        let to = contact();
        let result = FAST.send(&sender(&server), &meta(), &text(&to, "hi")).await;
        assert_eq!(result, Err(SendError::Unconfirmed { status: 504 }));
        assert!(
            !SendError::Transport("timeout".into()).retryable() && SendError::Transport("connect".into()).retryable()
        );
    }

    #[tokio::test]
    async fn other_client_errors_are_rejected_after_one_request() {
        let server = MockServer::start().await;
        Mock::given(method("POST")).respond_with(meta_failed(400, 131026)).expect(1).mount(&server).await;
        let to = contact();
        let result = FAST.send(&sender(&server), &meta(), &text(&to, "hi")).await;
        assert_eq!(result, Err(SendError::Rejected { status: 400, code: Some(131026) }));
    }

    #[tokio::test]
    async fn rate_limit_codes_and_429_are_retryable_with_retry_after() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(meta_failed(400, 131056).insert_header("retry-after", "2"))
            .mount(&server)
            .await;
        let to = contact();
        let err = sender(&server).send(&meta(), &text(&to, "hi")).await.unwrap_err();
        assert_eq!(err, SendError::Retryable { status: 400, retry_after_ms: Some(2000) });
        assert_eq!(twilio_error(429, Some(20429), None), SendError::Retryable { status: 429, retry_after_ms: None });
        // Meta's app, account and spam rate limits come with HTTP 400 and are retried too.
        for code in [4, 80007, 131048] {
            assert_eq!(meta_error(400, Some(code), None), SendError::Retryable { status: 400, retry_after_ms: None });
        }
    }

    #[tokio::test]
    async fn a_slow_provider_times_out_as_a_transport_error() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(meta_sent("wamid.LATE").set_delay(Duration::from_secs(5)))
            .mount(&server)
            .await;
        let http = reqwest::Client::builder().timeout(Duration::from_millis(100)).build().unwrap();
        let s = HttpSender::with_client(http, Endpoints::new(&server.uri(), "v23.0", &server.uri()).unwrap());
        let to = contact();
        assert_eq!(s.send(&meta(), &text(&to, "hi")).await, Err(SendError::Transport("timeout".into())));

        // The default client waits 10 s, but not past the invocation's deadline minus the reserve.
        let scope = Scope::new(Some(Instant::now() + Duration::from_millis(1_200)));
        let result = scope.run(sender(&server).send(&meta(), &text(&to, "hi"))).await;
        assert_eq!(result, Err(SendError::Transport("timeout".into())));
    }

    #[tokio::test]
    async fn mark_read_posts_the_read_status_with_a_typing_indicator() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v23.0/1099/messages"))
            .and(bearer_token(TOKEN))
            .and(body_json(json!({
                "messaging_product": "whatsapp",
                "status": "read",
                "message_id": "wamid.IN1",
                "typing_indicator": {"type": "text"},
            })))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true})))
            .expect(1)
            .mount(&server)
            .await;
        let s = sender(&server);
        let message = ProviderMessageId::parse("wamid.IN1").unwrap();
        s.mark_read(&meta(), &message).await.unwrap();
        // Twilio has no read receipts: nothing is requested (the mock expects one call only).
        s.mark_read(&twilio(), &message).await.unwrap();
    }

    #[test]
    fn debug_output_hides_tokens_and_text() {
        let printed = format!("{:?} {:?}", meta(), twilio());
        assert!(!printed.contains(TOKEN) && !printed.contains("twilio-secret"), "{printed}");
        assert!(printed.contains("1099") && printed.contains("AC123"), "{printed}");
        let to = contact();
        let request = format!("{:?}", text(&to, "my card is 4111"));
        assert!(!request.contains("4111") && !request.contains("4915112345678"), "{request}");
    }

    #[test]
    fn endpoints_refuse_what_is_not_a_base_url() {
        assert!(Endpoints::new("ftp://x", "v23.0", DEFAULT_TWILIO_BASE).is_err());
        assert!(Endpoints::new(DEFAULT_META_BASE, "v23.0/../x", DEFAULT_TWILIO_BASE).is_err());
        let e = Endpoints::new("http://127.0.0.1:3000/sandbox/meta/", "v23.0", DEFAULT_TWILIO_BASE).unwrap();
        assert_eq!(
            e.meta_url(&["1/2", "messages"]).as_str(),
            "http://127.0.0.1:3000/sandbox/meta/v23.0/1%2F2/messages"
        );
    }

    /// A sender answering from a script, noting when each attempt came.
    struct Scripted {
        answers: Mutex<Vec<Result<ProviderMessageId, SendError>>>,
        calls: Mutex<Vec<Instant>>,
    }

    impl Scripted {
        fn new(mut answers: Vec<Result<ProviderMessageId, SendError>>) -> Self {
            answers.reverse();
            Self { answers: Mutex::new(answers), calls: Mutex::default() }
        }

        fn calls(&self) -> Vec<Duration> {
            let calls = self.calls.lock().unwrap();
            calls.iter().map(|t| t.duration_since(calls[0])).collect()
        }
    }

    impl ChannelSender for Scripted {
        async fn mark_read(&self, _: &Account, _: &ProviderMessageId) -> Result<(), SendError> {
            Ok(())
        }

        async fn send(&self, _: &Account, _: &OutboundRequest<'_>) -> Result<ProviderMessageId, SendError> {
            self.calls.lock().unwrap().push(Instant::now());
            self.answers.lock().unwrap().pop().expect("no more answers scripted")
        }
    }

    const BUSY: SendError = SendError::Retryable { status: 503, retry_after_ms: None };

    fn ok() -> Result<ProviderMessageId, SendError> {
        Ok(ProviderMessageId::parse("wamid.OK").unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_with_jitter_and_stops_after_three_attempts() {
        let s = Scripted::new(vec![Err(BUSY), Err(BUSY), Err(BUSY)]);
        let to = contact();
        assert_eq!(send_with_retries(&s, &meta(), &text(&to, "hi")).await, Err(BUSY));
        let calls = s.calls();
        assert_eq!(calls.len(), 3);
        let (first, second) = (calls[1], calls[2] - calls[1]);
        assert!((125..=250).contains(&first.as_millis()), "{first:?}");
        assert!((250..=500).contains(&second.as_millis()), "{second:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_up_to_five_seconds() {
        let asked = |ms| Err(SendError::Retryable { status: 429, retry_after_ms: Some(ms) });
        let s = Scripted::new(vec![asked(2_000), ok()]);
        let to = contact();
        assert!(send_with_retries(&s, &meta(), &text(&to, "hi")).await.is_ok());
        assert_eq!(s.calls()[1], Duration::from_secs(2));

        let s = Scripted::new(vec![asked(6_000)]);
        assert!(send_with_retries(&s, &meta(), &text(&to, "hi")).await.is_err());
        assert_eq!(s.calls().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn no_retry_runs_into_the_invocation_reserve() {
        // 1.1 s left: the shortest wait (125 ms) plus the 1 s reserve does not fit.
        let scope = Scope::new(Some(Instant::now() + Duration::from_millis(1_100)));
        let s = Scripted::new(vec![Err(BUSY), ok()]);
        let to = contact();
        let result = scope.run(send_with_retries(&s, &meta(), &text(&to, "hi"))).await;
        assert_eq!(result, Err(BUSY));
        assert_eq!(s.calls().len(), 1);

        let scope = Scope::new(Some(Instant::now() + Duration::from_secs(2)));
        let s = Scripted::new(vec![Err(SendError::Transport("connect".into())), ok()]);
        assert!(scope.run(send_with_retries(&s, &meta(), &text(&to, "hi"))).await.is_ok());
    }
}
