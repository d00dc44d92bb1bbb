//! Copying inbound media into our bucket while the provider still has it: Meta's download URLs
//! live about 5 minutes (its media ids 7 days) and Twilio's media may be deleted, so the reply
//! worker copies each attachment under the tenant's prefix as soon as it handles the message.
//! Media is personal data: errors and `Debug` carry statuses and sizes, never bytes or URLs.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use base64::Engine;
use reqwest::Url;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::channels::outbound::{Account, Endpoints, MetaAccount, TwilioAccount, transport_kind, within_deadline};
use crate::domain::ids::TenantId;
use crate::domain::message::Attachment;

/// WhatsApp's own limit for a document: nothing larger can arrive.
pub const MAX_MEDIA_BYTES: u64 = 100 * 1024 * 1024;
/// A download of up to 100 MB needs longer than a message send.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// Deleted or expired at the provider (404, 410, Meta's unknown-object code): permanent.
    #[error("media gone (status {status})")]
    Gone { status: u16 },
    /// Any other 4xx (a wrong token, say): the same request will fail again.
    #[error("media request refused (status {status})")]
    Refused { status: u16 },
    /// 429 or 5xx.
    #[error("media provider busy or failing (status {status})")]
    Unavailable { status: u16 },
    #[error("media larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// The bytes do not hash to the SHA-256 the provider stated. Permanent: the provider serves
    /// the same bytes for the same id again.
    #[error("media does not match its SHA-256")]
    Integrity,
    /// The provider's answer (Meta's media metadata) is not what it documents.
    #[error("media answer not understood: {0}")]
    Malformed(&'static str),
    /// The attachment has nothing this account can fetch (no media id on Meta, no URL on Twilio).
    #[error("attachment has no source this account can fetch")]
    NoSource,
    #[error("media connection failed: {0}")]
    Transport(String),
    /// S3 refused or failed the upload; `code` is S3's error code.
    #[error("storing media failed (status {status:?}, code {code:?})")]
    Store { status: Option<u16>, code: Option<String> },
}

impl MediaError {
    pub fn retryable(&self) -> bool {
        match self {
            Self::Unavailable { .. } | Self::Transport(_) => true,
            // No status: the upload never got an answer (timeout, connection).
            Self::Store { status, .. } => status.is_none_or(|s| s == 429 || s >= 500),
            _ => false,
        }
    }

    fn from_status(status: u16) -> Self {
        match status {
            404 | 410 => Self::Gone { status },
            429 | 500.. => Self::Unavailable { status },
            _ => Self::Refused { status },
        }
    }
}

/// Where copied media is kept.
pub trait MediaStore: Send + Sync {
    fn put(
        &self,
        key: &str,
        content_type: Option<&str>,
        bytes: Vec<u8>,
    ) -> impl Future<Output = Result<(), MediaError>> + Send;
}

/// The bucket, encrypted at rest with S3-managed keys.
#[derive(Debug, Clone)]
pub struct S3MediaStore {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3MediaStore {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self { client, bucket: bucket.into() }
    }
}

impl MediaStore for S3MediaStore {
    async fn put(&self, key: &str, content_type: Option<&str>, bytes: Vec<u8>) -> Result<(), MediaError> {
        let result = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .set_content_type(content_type.map(str::to_owned))
            .server_side_encryption(ServerSideEncryption::Aes256)
            .body(ByteStream::from(bytes))
            .send()
            .await;
        result.map(|_| ()).map_err(|e| MediaError::Store {
            status: e.raw_response().map(|r| r.status().as_u16()),
            code: e.code().map(str::to_owned),
        })
    }
}

/// A stored object: its content type and bytes.
pub type StoredMedia = (Option<String>, Vec<u8>);

/// An in-memory store for unit tests.
#[derive(Default)]
pub struct MemoryMediaStore {
    objects: Mutex<BTreeMap<String, StoredMedia>>,
}

impl MemoryMediaStore {
    pub fn keys(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// The content type and bytes stored under `key`.
    pub fn get(&self, key: &str) -> Option<StoredMedia> {
        self.lock().get(key).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, StoredMedia>> {
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl fmt::Debug for MemoryMediaStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryMediaStore").field("objects", &self.lock().len()).finish()
    }
}

impl MediaStore for MemoryMediaStore {
    async fn put(&self, key: &str, content_type: Option<&str>, bytes: Vec<u8>) -> Result<(), MediaError> {
        self.lock().insert(key.to_owned(), (content_type.map(str::to_owned), bytes));
        Ok(())
    }
}

/// Downloaded media. `Debug` shows its size, never its bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub content_type: Option<String>,
}

impl fmt::Debug for Fetched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetched").field("len", &self.bytes.len()).field("content_type", &self.content_type).finish()
    }
}

/// Meta's answer for a media id.
#[derive(Deserialize)]
struct MetaMedia {
    url: String,
    mime_type: Option<String>,
    sha256: Option<String>,
    file_size: Option<u64>,
}

/// Downloads attachments from the provider that announced them.
#[derive(Debug, Clone)]
pub struct MediaFetcher {
    http: reqwest::Client,
    endpoints: Endpoints,
    max_bytes: u64,
}

impl MediaFetcher {
    pub fn new(endpoints: Endpoints) -> Result<Self, MediaError> {
        let http = reqwest::Client::builder()
            .timeout(DOWNLOAD_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| MediaError::Transport(format!("client: {}", transport_kind(&e))))?;
        Ok(Self::with_client(http, endpoints))
    }

    pub fn with_client(http: reqwest::Client, endpoints: Endpoints) -> Self {
        Self { http, endpoints, max_bytes: MAX_MEDIA_BYTES }
    }

    /// A lower cap than WhatsApp's (for tests, or a tenant's own limit).
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    pub async fn fetch(&self, account: &Account, attachment: &Attachment) -> Result<Fetched, MediaError> {
        match (account, &attachment.media_id, &attachment.url) {
            (Account::Meta(meta), Some(id), _) => self.fetch_meta(meta, id, attachment.sha256.as_deref()).await,
            (Account::Twilio(twilio), _, Some(url)) => self.fetch_twilio(twilio, url).await,
            _ => Err(MediaError::NoSource),
        }
    }

    /// Two steps, both with the bearer token: the id's metadata, then its short-lived URL.
    async fn fetch_meta(
        &self,
        account: &MetaAccount,
        media_id: &str,
        stated: Option<&str>,
    ) -> Result<Fetched, MediaError> {
        let request = self.http.get(self.endpoints.meta_url(&[media_id])).bearer_auth(&account.access_token);
        let response = send(within_deadline(request, DOWNLOAD_TIMEOUT)).await?;
        let status = response.status().as_u16();
        if !response.status().is_success() {
            // Meta answers an unknown or expired id with 400 and code 100.
            let code = response.json::<serde_json::Value>().await.ok().and_then(|b| b["error"]["code"].as_i64());
            return Err(if code == Some(100) { MediaError::Gone { status } } else { MediaError::from_status(status) });
        }
        let media: MetaMedia = response.json().await.map_err(|_| MediaError::Malformed("media metadata"))?;
        if media.file_size.is_some_and(|n| n > self.max_bytes) {
            return Err(MediaError::TooLarge { limit: self.max_bytes });
        }
        let url = Url::parse(&media.url).map_err(|_| MediaError::Malformed("media url"))?;
        let request = self.http.get(url).bearer_auth(&account.access_token);
        let fetched = self.download(request, media.mime_type).await?;
        // The metadata's hash is the download's own; the webhook's is the fallback.
        if let Some(expected) = media.sha256.as_deref().or(stated) {
            verify_sha256(&fetched.bytes, expected)?;
        }
        Ok(fetched)
    }

    /// Twilio's media URL redirects to a short-lived signed URL elsewhere; reqwest follows it
    /// and drops the Authorization header on the way to another host, as it should. The auth
    /// token only ever goes to the Twilio API's own origin: a URL elsewhere is fetched without it.
    async fn fetch_twilio(&self, account: &TwilioAccount, url: &str) -> Result<Fetched, MediaError> {
        let url = Url::parse(url).map_err(|_| MediaError::Malformed("media url"))?;
        let trusted = url.origin() == self.endpoints.twilio_base.origin();
        let mut request = self.http.get(url);
        if trusted {
            request = request.basic_auth(&account.account_sid, Some(&account.auth_token));
        }
        self.download(request, None).await
    }

    /// Reads a body up to the cap: refused by its Content-Length when stated, and while reading
    /// when not (or when it lies).
    async fn download(
        &self,
        request: reqwest::RequestBuilder,
        mime_type: Option<String>,
    ) -> Result<Fetched, MediaError> {
        let mut response = send(within_deadline(request, DOWNLOAD_TIMEOUT)).await?;
        if !response.status().is_success() {
            return Err(MediaError::from_status(response.status().as_u16()));
        }
        let too_large = MediaError::TooLarge { limit: self.max_bytes };
        if response.content_length().is_some_and(|n| n > self.max_bytes) {
            return Err(too_large);
        }
        let content_type = mime_type.or_else(|| {
            let header = response.headers().get(reqwest::header::CONTENT_TYPE)?;
            header.to_str().ok().map(str::to_owned)
        });
        // Sized by the stated length only up to a small bound: a stated length is not trusted.
        let mut bytes = Vec::with_capacity(response.content_length().unwrap_or(0).min(1 << 20) as usize);
        while let Some(chunk) = response.chunk().await.map_err(|e| MediaError::Transport(transport_kind(&e)))? {
            if (bytes.len() + chunk.len()) as u64 > self.max_bytes {
                return Err(too_large);
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Fetched { bytes, content_type })
    }
}

async fn send(request: reqwest::RequestBuilder) -> Result<reqwest::Response, MediaError> {
    request.send().await.map_err(|e| MediaError::Transport(transport_kind(&e)))
}

/// Meta states hashes as hex in its media metadata and as base64 in webhooks: both are accepted.
fn verify_sha256(bytes: &[u8], expected: &str) -> Result<(), MediaError> {
    let expected = expected.trim();
    let decoded = if expected.len() == 64 {
        hex::decode(expected).ok()
    } else {
        base64::engine::general_purpose::STANDARD.decode(expected).ok()
    };
    match decoded {
        Some(d) if d.as_slice() == Sha256::digest(bytes).as_slice() => Ok(()),
        _ => Err(MediaError::Integrity),
    }
}

/// Lowercase hex SHA-256, as Meta states it (the local sandbox serves media with it).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `<tenant>/media/<message_ref>/<index>`: under the tenant's prefix, so a tenant's media is
/// listed, exported and deleted with its prefix. `message_ref` is the caller's opaque hash of the
/// message id (Meta's ids carry the sender's number), so no key holds personal data.
pub fn media_key(tenant: &TenantId, message_ref: &str, index: usize) -> String {
    format!("{tenant}/media/{message_ref}/{index}")
}

/// Copies each attachment of one message, in order, returning where each was stored (`None`
/// for an attachment with neither a media id nor a URL). The first failure ends the copy: the
/// caller retries the message or, for a permanent error, goes on without its media.
pub async fn copy_attachments<S: MediaStore>(
    fetcher: &MediaFetcher,
    store: &S,
    account: &Account,
    tenant: &TenantId,
    message_ref: &str,
    attachments: &[Attachment],
) -> Result<Vec<Option<String>>, MediaError> {
    let mut keys = Vec::with_capacity(attachments.len());
    for (index, attachment) in attachments.iter().enumerate() {
        if attachment.media_id.is_none() && attachment.url.is_none() {
            keys.push(None);
            continue;
        }
        let fetched = fetcher.fetch(account, attachment).await?;
        let key = media_key(tenant, message_ref, index);
        let content_type = fetched.content_type.as_deref().or(attachment.mime_type.as_deref());
        store.put(&key, content_type, fetched.bytes).await?;
        keys.push(Some(key));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use wiremock::matchers::{basic_auth, bearer_token, header_exists, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;

    const JPEG: &[u8] = b"\xff\xd8\xff\xe0 pretend jpeg";

    use crate::channels::outbound::testing::{TOKEN, meta, twilio};

    fn fetcher(server: &MockServer) -> MediaFetcher {
        MediaFetcher::new(Endpoints::new(&server.uri(), "v23.0", &server.uri()).unwrap()).unwrap()
    }

    fn meta_attachment(id: &str) -> Attachment {
        Attachment { media_id: Some(id.into()), ..Attachment::default() }
    }

    fn twilio_attachment(url: String) -> Attachment {
        Attachment { url: Some(url), mime_type: Some("image/png".into()), ..Attachment::default() }
    }

    async fn serve_meta_media(server: &MockServer, id: &str, sha256: &str) {
        Mock::given(method("GET"))
            .and(path(format!("/v23.0/{id}")))
            .and(bearer_token(TOKEN))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "messaging_product": "whatsapp",
                "url": format!("{}/download/{id}", server.uri()),
                "mime_type": "image/jpeg",
                "sha256": sha256,
                "file_size": JPEG.len(),
                "id": id,
            })))
            .expect(1)
            .mount(server)
            .await;
        Mock::given(method("GET"))
            .and(path(format!("/download/{id}")))
            .and(bearer_token(TOKEN))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(JPEG))
            .expect(1)
            .mount(server)
            .await;
    }

    #[tokio::test]
    async fn meta_media_is_fetched_in_two_steps_with_the_token_and_its_hash_checked() {
        let server = MockServer::start().await;
        serve_meta_media(&server, "7001", &sha256_hex(JPEG)).await;
        let fetched = fetcher(&server).fetch(&meta(), &meta_attachment("7001")).await.unwrap();
        assert_eq!(fetched.bytes, JPEG);
        assert_eq!(fetched.content_type.as_deref(), Some("image/jpeg"));
    }

    #[tokio::test]
    async fn meta_media_whose_hash_differs_is_refused() {
        let server = MockServer::start().await;
        serve_meta_media(&server, "7002", &sha256_hex(b"other bytes")).await;
        let result = fetcher(&server).fetch(&meta(), &meta_attachment("7002")).await;
        assert_eq!(result, Err(MediaError::Integrity));
        assert!(!MediaError::Integrity.retryable());
    }

    #[test]
    fn webhook_hashes_in_base64_are_checked_too() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(JPEG));
        assert_eq!(verify_sha256(JPEG, &b64), Ok(()));
        assert_eq!(verify_sha256(b"x", &b64), Err(MediaError::Integrity));
    }

    #[tokio::test]
    async fn expired_meta_ids_are_gone_and_server_errors_retryable() {
        let server = MockServer::start().await;
        let unknown = json!({"error": {"code": 100, "error_subcode": 33, "message": "m"}});
        Mock::given(path("/v23.0/old"))
            .respond_with(ResponseTemplate::new(400).set_body_json(unknown))
            .mount(&server)
            .await;
        Mock::given(path("/v23.0/busy")).respond_with(ResponseTemplate::new(503)).mount(&server).await;
        let f = fetcher(&server);
        let gone = f.fetch(&meta(), &meta_attachment("old")).await.unwrap_err();
        assert_eq!(gone, MediaError::Gone { status: 400 });
        assert!(!gone.retryable());
        let busy = f.fetch(&meta(), &meta_attachment("busy")).await.unwrap_err();
        assert_eq!(busy, MediaError::Unavailable { status: 503 });
        assert!(busy.retryable());
    }

    #[tokio::test]
    async fn twilio_media_is_fetched_with_basic_auth() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/2010-04-01/Accounts/AC123/Messages/MM1/Media/ME1"))
            .and(basic_auth("AC123", "twilio-secret"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(b"png bytes".to_vec(), "image/png"))
            .expect(1)
            .mount(&server)
            .await;
        let url = format!("{}/2010-04-01/Accounts/AC123/Messages/MM1/Media/ME1", server.uri());
        let fetched = fetcher(&server).fetch(&twilio(), &twilio_attachment(url)).await.unwrap();
        assert_eq!(fetched.bytes, b"png bytes");
        assert_eq!(fetched.content_type.as_deref(), Some("image/png"));
    }

    #[tokio::test]
    async fn the_twilio_token_never_goes_to_another_origin() {
        let api = MockServer::start().await;
        let elsewhere = MockServer::start().await;
        Mock::given(header_exists("authorization")).respond_with(ResponseTemplate::new(500)).mount(&elsewhere).await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(b"x"))
            .mount(&elsewhere)
            .await;
        let url = format!("{}/media/ME1", elsewhere.uri());
        assert!(fetcher(&api).fetch(&twilio(), &twilio_attachment(url)).await.is_ok());
    }

    #[tokio::test]
    async fn bodies_above_the_cap_are_refused_by_their_stated_size() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![0u8; 64]))
            .mount(&server)
            .await;
        let url = format!("{}/media/big", server.uri());
        let result = fetcher(&server).with_max_bytes(63).fetch(&twilio(), &twilio_attachment(url.clone())).await;
        assert_eq!(result, Err(MediaError::TooLarge { limit: 63 }));
        assert!(fetcher(&server).with_max_bytes(64).fetch(&twilio(), &twilio_attachment(url)).await.is_ok());
    }

    #[tokio::test]
    async fn meta_media_above_the_cap_is_refused_before_downloading() {
        let server = MockServer::start().await;
        Mock::given(path("/v23.0/huge"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "url": format!("{}/download/huge", server.uri()),
                "mime_type": "video/mp4",
                "file_size": MAX_MEDIA_BYTES + 1,
            })))
            .mount(&server)
            .await;
        Mock::given(path("/download/huge")).respond_with(ResponseTemplate::new(200)).expect(0).mount(&server).await;
        let result = fetcher(&server).fetch(&meta(), &meta_attachment("huge")).await;
        assert_eq!(result, Err(MediaError::TooLarge { limit: MAX_MEDIA_BYTES }));
    }

    /// A loopback server answering one request with a chunked body of `chunks` × 1 KiB and no
    /// Content-Length, which wiremock cannot send.
    async fn chunked_server(chunks: usize) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let mut answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for _ in 0..chunks {
                answer.extend_from_slice(b"400\r\n");
                answer.extend_from_slice(&[7u8; 1024]);
                answer.extend_from_slice(b"\r\n");
            }
            answer.extend_from_slice(b"0\r\n\r\n");
            let _ = socket.write_all(&answer).await;
        });
        format!("http://{address}/media")
    }

    #[tokio::test]
    async fn bodies_without_a_stated_size_are_cut_off_while_reading() {
        let url = chunked_server(8).await;
        let endpoints = Endpoints::new(&url, "v23.0", &url).unwrap();
        let f = MediaFetcher::new(endpoints.clone()).unwrap().with_max_bytes(4 * 1024);
        assert_eq!(f.fetch(&twilio(), &twilio_attachment(url)).await, Err(MediaError::TooLarge { limit: 4096 }));

        let url = chunked_server(4).await;
        let f = MediaFetcher::new(endpoints).unwrap().with_max_bytes(4 * 1024);
        assert_eq!(f.fetch(&twilio(), &twilio_attachment(url)).await.unwrap().bytes.len(), 4096);
    }

    #[tokio::test]
    async fn attachments_are_copied_under_the_tenant_prefix() {
        let server = MockServer::start().await;
        serve_meta_media(&server, "7003", &sha256_hex(JPEG)).await;
        let store = MemoryMediaStore::default();
        let tenant = TenantId::parse("acme-dental").unwrap();
        let nothing = Attachment::default();
        let attachments = [nothing, meta_attachment("7003")];
        let keys = copy_attachments(&fetcher(&server), &store, &meta(), &tenant, "c0ffee", &attachments).await.unwrap();
        assert_eq!(keys, vec![None, Some("acme-dental/media/c0ffee/1".to_owned())]);
        assert_eq!(store.keys(), ["acme-dental/media/c0ffee/1"]);
        assert_eq!(store.get("acme-dental/media/c0ffee/1"), Some((Some("image/jpeg".into()), JPEG.to_vec())));
    }

    #[tokio::test]
    async fn an_attachment_the_account_cannot_fetch_is_an_error_not_a_silent_gap() {
        let server = MockServer::start().await;
        let url = twilio_attachment(format!("{}/x", server.uri()));
        assert_eq!(fetcher(&server).fetch(&meta(), &url).await, Err(MediaError::NoSource));
    }

    #[test]
    fn debug_of_fetched_media_shows_its_size_only() {
        let printed = format!("{:?}", Fetched { bytes: b"secret photo".to_vec(), content_type: None });
        assert!(printed.contains("len: 12") && !printed.contains("secret"), "{printed}");
    }
}
