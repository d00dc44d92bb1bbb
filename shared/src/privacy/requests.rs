//! Privacy requests: a data subject's export or erasure, or the wipe of a whole tenant, from the
//! moment it is received (a Shopify compliance webhook, an operator) until it is done. The
//! record is the proof that a request was handled within its deadline (received + 30 days).
//!
//! The subject's identifiers (phone as given, email, Shopify customer id, the contact key once
//! resolved) are kept only *sealed* (AES-256-GCM envelope, bound to the tenant and the request),
//! and only until the request completes: completing removes them in the same write. Queue jobs
//! and logs carry the request's id, never an identifier.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::crypto::{CryptoError, MasterKey, Sealed};
use crate::domain::{RecordId, TenantId};

/// How long a controller has to act on a request (Shopify: 30 days; GDPR: one month).
pub const DUE_AFTER_MS: i64 = 30 * 86_400_000;

/// What is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    /// A copy of everything about one contact (JSON + CSV).
    Export,
    /// Everything about one contact deleted.
    Erasure,
    /// Everything of the tenant deleted.
    Wipe,
}

impl RequestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Export => "export",
            Self::Erasure => "erasure",
            Self::Wipe => "wipe",
        }
    }
}

/// Where a request came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RequestSource {
    /// A Shopify compliance webhook (`X-Shopify-Webhook-Id`, `X-Shopify-Topic`).
    Shopify { webhook_id: String, topic: String },
    /// An operator or a platform job (`concierge-admin`, `retention-purge`).
    Operator { actor: String },
}

/// Where a request is: `received` (recorded) → `queued` (its job is on the privacy queue) →
/// `done`. `failed` when its job can never succeed as it stands (its sealed subject does not
/// open, or it has none): it stays open (and overdue past its deadline) for an operator, who
/// can queue it again (`concierge-admin privacy requeue`). Done never moves back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    Received,
    Queued,
    Failed,
    Done,
}

impl RequestState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Queued => "queued",
            Self::Failed => "failed",
            Self::Done => "done",
        }
    }
}

/// Who a request is about, in clear: exists only in memory, between opening the sealed copy and
/// acting on it. `Debug` shows which identifiers are present, never their values.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    /// As the source gave it (Shopify: `555-625-1199`, read later in the tenant's country).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shopify_customer_id: Option<String>,
    /// The contact's key (`ContactId::key`), once resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
}

impl fmt::Debug for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subject")
            .field("phone", &self.phone.is_some())
            .field("email", &self.email.is_some())
            .field("shopify_customer_id", &self.shopify_customer_id.is_some())
            .field("contact", &self.contact.is_some())
            .finish()
    }
}

impl Subject {
    /// Whether it names anyone at all.
    pub fn is_empty(&self) -> bool {
        self.phone.is_none() && self.email.is_none() && self.shopify_customer_id.is_none() && self.contact.is_none()
    }

    /// Sealed for `request` of `tenant`: the copy opens only for that request.
    pub async fn seal(&self, key: &MasterKey, tenant: &TenantId, request: &RecordId) -> Result<Sealed, CryptoError> {
        let json = serde_json::to_vec(self).expect("plain strings serialise");
        key.seal(&json, &seal_context(tenant, request)).await
    }

    /// Opens a copy sealed by `seal` for the same tenant and request.
    pub async fn open(
        sealed: &Sealed,
        key: &MasterKey,
        tenant: &TenantId,
        request: &RecordId,
    ) -> Result<Self, CryptoError> {
        let json = key.open(sealed, &seal_context(tenant, request)).await?;
        serde_json::from_slice(&json).map_err(|_| CryptoError::Tampered)
    }
}

/// What a sealed subject is bound to (as channel tokens are bound to tenant and field).
pub fn seal_context(tenant: &TenantId, request: &RecordId) -> String {
    format!("{tenant}#privacy_request.{request}.subject")
}

/// What a completed request produced. Holds no identifier of the subject.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestResult {
    /// Export objects in the data bucket (`<tenant>/exports/<request id>/…`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<String>,
    /// Presigned GET links of those objects (valid 7 days).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    /// Items per category exported or deleted (`messages`, `leads`, …).
    #[serde(default)]
    pub counts: BTreeMap<String, u64>,
    /// The identifiers matched no contact: nothing was found to export or erase. Said apart
    /// from "done, nothing held", because identifiers the index cannot resolve (a Shopify
    /// customer id, a national number with no country to read it in) look the same.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unmatched: bool,
}

/// One privacy request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivacyRequest {
    pub tenant: TenantId,
    pub id: RecordId,
    pub kind: RequestKind,
    pub source: RequestSource,
    pub received_at_ms: i64,
    /// `received_at_ms + DUE_AFTER_MS`.
    pub due_at_ms: i64,
    pub completed_at_ms: Option<i64>,
    /// When its job was last put on the queue by a mark (`mark_queued`, `reopen`).
    pub queued_at_ms: Option<i64>,
    pub state: RequestState,
    /// The subject's identifiers, sealed (`Subject::seal`); `None` for a wipe and once done.
    pub subject: Option<Sealed>,
    /// The keyed hash of the subject the audit entry names (`Pseudonymizer::contact`, or
    /// `opaque` for identifiers that matched no contact), set when known.
    pub subject_hash: Option<String>,
    pub result: Option<RequestResult>,
    /// Why it failed (`state = failed`): a fixed phrase, never input.
    pub failure: Option<String>,
}

impl PrivacyRequest {
    /// A request just received: due 30 days later.
    pub fn received(
        tenant: TenantId,
        id: RecordId,
        kind: RequestKind,
        source: RequestSource,
        received_at_ms: i64,
        subject: Option<Sealed>,
    ) -> Self {
        Self {
            tenant,
            id,
            kind,
            source,
            received_at_ms,
            due_at_ms: received_at_ms + DUE_AFTER_MS,
            completed_at_ms: None,
            queued_at_ms: None,
            state: RequestState::Received,
            subject,
            subject_hash: None,
            result: None,
            failure: None,
        }
    }

    /// Not done and not failed, received (and queued, if it was) before `before_ms`: its job
    /// was lost (dead-lettered, or never sent because Shopify gave up retrying) and should be
    /// sent again.
    pub fn is_stuck(&self, before_ms: i64) -> bool {
        let last = self.queued_at_ms.unwrap_or(self.received_at_ms).max(self.received_at_ms);
        matches!(self.state, RequestState::Received | RequestState::Queued) && last < before_ms
    }

    /// Not done and past its deadline at `now_ms`.
    pub fn is_overdue(&self, now_ms: i64) -> bool {
        self.state != RequestState::Done && self.due_at_ms < now_ms
    }

    /// The subject in clear (`None` for a wipe, and once the request is done).
    pub async fn open_subject(&self, key: &MasterKey) -> Result<Option<Subject>, CryptoError> {
        match &self.subject {
            Some(sealed) => Subject::open(sealed, key, &self.tenant, &self.id).await.map(Some),
            None => Ok(None),
        }
    }
}

/// What completes a request: the subject's sealed identifiers are removed in the same write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub completed_at_ms: i64,
    pub result: RequestResult,
    /// Replaces the stored subject hash when given.
    pub subject_hash: Option<String>,
}

/// The id of the request a Shopify webhook creates: derived from `X-Shopify-Webhook-Id` (a hash,
/// so any header value makes a valid, fixed-length id), so a redelivery finds the first one.
pub fn shopify_request_id(webhook_id: &str) -> RecordId {
    let digest = Sha256::digest(webhook_id.as_bytes());
    RecordId::parse(&format!("shopify-{}", hex::encode(&digest[..16]))).expect("hex is a valid record id")
}

/// The privacy queue's job: which request of which tenant. Kind and subject are read from the
/// record, so no identifier ever travels on the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyJob {
    pub tenant: TenantId,
    pub request: RecordId,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    fn key() -> MasterKey {
        MasterKey::Local { key_id: "local:test".into(), key: [7u8; 32] }
    }

    fn jana() -> Subject {
        Subject {
            phone: Some("555-625-1199".into()),
            email: Some("jana@example.com".into()),
            shopify_customer_id: Some("191167".into()),
            contact: None,
        }
    }

    #[tokio::test]
    async fn a_sealed_subject_opens_only_for_its_own_tenant_and_request() {
        let id = shopify_request_id("b54557e4-bdd9-4b37-8a5f-bf7d70bcd043");
        let sealed = jana().seal(&key(), &tenant(), &id).await.unwrap();
        let stored = serde_json::to_string(&sealed).unwrap();
        assert!(!stored.contains("jana") && !stored.contains("555-625") && !stored.contains("191167"), "{stored}");
        assert_eq!(Subject::open(&sealed, &key(), &tenant(), &id).await.unwrap(), jana());
        let other = shopify_request_id("another");
        assert!(Subject::open(&sealed, &key(), &tenant(), &other).await.is_err());
        assert!(Subject::open(&sealed, &key(), &TenantId::parse("globex").unwrap(), &id).await.is_err());
    }

    #[test]
    fn debug_names_which_identifiers_exist_never_their_values() {
        let printed = format!("{:?}", jana());
        assert!(printed.contains("email: true") && printed.contains("contact: false"), "{printed}");
        for value in ["jana", "555", "191167"] {
            assert!(!printed.contains(value), "{printed}");
        }
    }

    #[test]
    fn request_ids_from_webhook_ids_are_stable_and_distinct() {
        let a = shopify_request_id("b54557e4-bdd9-4b37-8a5f-bf7d70bcd043");
        assert_eq!(a, shopify_request_id("b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"));
        assert_ne!(a, shopify_request_id("b54557e4-bdd9-4b37-8a5f-bf7d70bcd044"));
        assert!(a.as_str().starts_with("shopify-") && a.as_str().len() == 40, "{a}");
        // Any header value, even one no id could hold, gives a valid id.
        assert!(shopify_request_id("#/ \u{1F600}").as_str().starts_with("shopify-"));
    }

    #[test]
    fn due_thirty_days_after_receipt_and_overdue_only_while_open() {
        let mut r = PrivacyRequest::received(
            tenant(),
            RecordId::parse("r1").unwrap(),
            RequestKind::Wipe,
            RequestSource::Operator { actor: "concierge-admin".into() },
            1_000,
            None,
        );
        assert_eq!(r.due_at_ms, 1_000 + 30 * 86_400_000);
        assert!(!r.is_overdue(r.due_at_ms));
        assert!(r.is_overdue(r.due_at_ms + 1));
        r.state = RequestState::Done;
        assert!(!r.is_overdue(r.due_at_ms + 1));
    }

    #[test]
    fn a_job_is_the_tenant_and_the_request_only() {
        let job = PrivacyJob { tenant: tenant(), request: RecordId::parse("r1").unwrap() };
        assert_eq!(serde_json::to_string(&job).unwrap(), r#"{"tenant":"acme","request":"r1"}"#);
        assert!(serde_json::from_str::<PrivacyJob>(r#"{"tenant":"acme","request":"r1","email":"x"}"#).is_err());
        assert!(serde_json::from_str::<PrivacyJob>(r#"{"tenant":"a#b","request":"r1"}"#).is_err());
    }
}
