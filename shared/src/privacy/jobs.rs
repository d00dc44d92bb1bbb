//! One job of the privacy queue (`{"tenant","request"}`): the request's record says what to do
//! and, sealed, about whom. The operation runs, then one `TransactWriteItems` completes the
//! request (result, completion time, sealed subject removed) and appends its audit entry, so
//! the entry exists exactly when the request is done. A redelivered job finds the request done
//! and does nothing; a job that died half-way runs again, and every operation finishes what an
//! earlier attempt left (see `erasure`, `export`, `wipe`).

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::TransactWriteItem;

use super::erasure::Eraser;
use super::export::Exporter;
use super::identity::{IdentityLookup, SubjectIds};
use super::requests::{Completion, PrivacyJob, PrivacyRequest, RequestKind, RequestResult, RequestState};
use super::retention::audit_ttl;
use super::wipe::Wiper;
use crate::clock::Clock;
use crate::crypto::{CryptoError, MasterKey};
use crate::domain::{AuditAction, AuditEntry, TenantId};
use crate::store::audit::DynamoAuditLog;
use crate::store::requests::{DynamoPrivacyRequests, PrivacyRequests};
use crate::store::{StoreError, keys, table_key};
use crate::tenants::records::read_profile;

pub const ACTOR: &str = "privacy-worker";
/// Attempts at the completing transaction when another audit append takes its sequence number.
const COMPLETE_ATTEMPTS: usize = 16;

/// What became of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// Done now; the counts of what was exported or deleted.
    Done { kind: RequestKind, counts: BTreeMap<String, u64> },
    /// Done before (a redelivery): nothing was done again.
    AlreadyDone,
    /// No such request (its tenant was wiped, or the job is stale): nothing to do.
    Gone,
    /// Not a privacy job: dropped (it would fail the same way every time).
    Malformed,
    /// The request can never be done as it stands (its subject is missing or does not open):
    /// recorded as `failed` for an operator, and the job dropped rather than retried.
    Failed,
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the request's sealed subject does not open: {0}")]
    Crypto(#[from] CryptoError),
    #[error("the request has no subject to act on")]
    NoSubject,
}

pub struct PrivacyWorker {
    pub requests: DynamoPrivacyRequests,
    pub audit: DynamoAuditLog,
    pub master_key: MasterKey,
    pub lookup: IdentityLookup,
    pub exporter: Exporter,
    pub eraser: Eraser,
    pub wiper: Wiper,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub tenants_table: String,
    pub clock: Arc<dyn Clock>,
}

impl PrivacyWorker {
    pub async fn handle(&self, body: &str) -> Result<JobOutcome, JobError> {
        let Ok(job) = serde_json::from_str::<PrivacyJob>(body) else {
            tracing::warn!("not a privacy job; dropped");
            return Ok(JobOutcome::Malformed);
        };
        let Some(request) = self.requests.get(&job.tenant, &job.request).await? else {
            tracing::info!(tenant = %job.tenant, request = %job.request, "no such request; nothing to do");
            return Ok(JobOutcome::Gone);
        };
        if request.state == RequestState::Done {
            if request.kind == RequestKind::Wipe {
                self.remove_wiped(&request).await?;
            }
            tracing::info!(tenant = %job.tenant, request = %job.request, "request done already");
            return Ok(JobOutcome::AlreadyDone);
        }
        if request.state == RequestState::Failed {
            // Waiting for an operator (a held wipe, a subject that does not open): only their
            // requeue, which reopens it first, may run it. A stray job does nothing.
            tracing::warn!(tenant = %job.tenant, request = %job.request, "request failed; waits for an operator");
            return Ok(JobOutcome::Failed);
        }
        let now_ms = self.clock.now_ms();
        let profile = read_profile(&self.dynamodb, &self.tenants_table, &job.tenant).await?;
        let retention = profile.as_ref().map(|p| p.retention).unwrap_or_default();
        let country = profile.as_ref().and_then(|p| p.settings.default_country.clone());
        let tenant = &job.tenant;
        let (action, result, subject_hash) = match request.kind {
            RequestKind::Export | RequestKind::Erasure => {
                let subject = match request.open_subject(&self.master_key).await {
                    Ok(Some(subject)) => subject,
                    Ok(None) => return self.fail(&request, &JobError::NoSubject).await,
                    Err(e @ CryptoError::Tampered) => return self.fail(&request, &JobError::Crypto(e)).await,
                    // A KMS outage or a missing key file: retried.
                    Err(e) => return Err(e.into()),
                };
                let ids = SubjectIds {
                    phone: subject.phone,
                    email: subject.email,
                    shopify_customer_id: subject.shopify_customer_id,
                    contact: subject.contact,
                };
                let resolved = self.lookup.resolve(tenant, country.as_deref(), &ids).await?;
                let (action, mut result) = if request.kind == RequestKind::Export {
                    let out = self
                        .exporter
                        .export(tenant, request.id.as_str(), &resolved.contacts, now_ms, &retention)
                        .await?;
                    let result = RequestResult {
                        objects: out.objects.iter().map(|o| o.key.clone()).collect(),
                        links: out.objects.iter().map(|o| o.link.clone()).collect(),
                        counts: out.counts,
                        ..RequestResult::default()
                    };
                    (AuditAction::Export, result)
                } else {
                    let counts = self.eraser.erase(tenant, &resolved.contacts, now_ms, &retention).await?;
                    (AuditAction::Erasure, RequestResult { counts, ..RequestResult::default() })
                };
                // The result and the audit entry say how many contacts held anything (or had
                // been erased): 0 is "unmatched", for an operator to look at, never mistaken
                // for a plain "nothing held".
                let found = *result.counts.entry("contacts".to_owned()).or_default();
                result.unmatched = found == 0;
                if result.unmatched {
                    tracing::warn!(tenant = %tenant, request = %request.id, ?ids, "the subject matched no contact");
                }
                (action, result, Some(resolved.subject_hash))
            }
            RequestKind::Wipe => {
                let keep = [keys::PROFILE_SK, &keys::privacy_request_sk(&request.id)];
                let counts = self.wiper.wipe(tenant, now_ms / 1000, &keep).await?;
                (AuditAction::TenantWipe, RequestResult { counts, ..RequestResult::default() }, None)
            }
        };
        let counts = result.counts.clone();
        let entry = AuditEntry {
            at_ms: now_ms,
            action,
            actor: ACTOR.to_owned(),
            subject: subject_hash.clone().or(request.subject_hash.clone()),
            counts: counts.clone(),
        };
        let completion = Completion { completed_at_ms: now_ms, result, subject_hash };
        if !self.complete(tenant, &request, entry, &completion).await? {
            return Ok(JobOutcome::AlreadyDone);
        }
        if request.kind == RequestKind::Wipe {
            self.remove_wiped(&request).await?;
        }
        tracing::info!(tenant = %tenant, request = %request.id, kind = request.kind.as_str(), ?counts, "request done");
        Ok(JobOutcome::Done { kind: request.kind, counts })
    }

    /// Records a request that cannot be done as `failed` (with the error's fixed phrase) and
    /// drops its job: a retry would fail the same way.
    async fn fail(&self, request: &PrivacyRequest, why: &JobError) -> Result<JobOutcome, JobError> {
        let reason = why.to_string();
        if !self.requests.fail(&request.tenant, &request.id, &reason).await? {
            // Another delivery completed it meanwhile.
            return Ok(JobOutcome::AlreadyDone);
        }
        tracing::error!(tenant = %request.tenant, request = %request.id, reason, "privacy request failed");
        Ok(JobOutcome::Failed)
    }

    /// Completes the request and appends its audit entry in one write; `false` when another
    /// delivery of the job completed it first.
    async fn complete(
        &self,
        tenant: &TenantId,
        request: &PrivacyRequest,
        entry: AuditEntry,
        completion: &Completion,
    ) -> Result<bool, StoreError> {
        let ttl = audit_ttl(entry.at_ms.div_euclid(1000));
        for _ in 0..COMPLETE_ATTEMPTS {
            let (_, append) = self.audit.prepare_append(tenant, entry.clone(), ttl).await?;
            let done = self.requests.complete_update(tenant, &request.id, completion)?;
            let result = self
                .dynamodb
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().update(done).build())
                .transact_items(TransactWriteItem::builder().put(append).build())
                .send()
                .await;
            let reasons = match &result {
                Ok(_) => return Ok(true),
                Err(e) => match e.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(c)) => c.cancellation_reasons().to_vec(),
                    _ => Vec::new(),
                },
            };
            let failed = |i: usize| reasons.get(i).and_then(|r| r.code()) == Some("ConditionalCheckFailed");
            let conflict = reasons.iter().any(|r| r.code() == Some("TransactionConflict"));
            if failed(0) {
                return Ok(false);
            }
            if !(failed(1) || conflict) {
                return Err(StoreError::aws("TransactWriteItems privacy request done", result.expect_err("failed")));
            }
            // Another append took the sequence number (or touched the item): read the head again.
        }
        Err(StoreError::Conflict("privacy request completion kept losing the race for the audit head".into()))
    }

    /// The last of a wiped tenant: its profile (kept so a retried wipe knew where to start) and
    /// the wipe's own record (its audit entry is what stays).
    async fn remove_wiped(&self, request: &PrivacyRequest) -> Result<(), StoreError> {
        let tenant = request.tenant.as_str();
        let keys = vec![
            table_key(tenant, Some(keys::PROFILE_SK)),
            table_key(tenant, Some(&keys::privacy_request_sk(&request.id))),
        ];
        crate::store::batch::delete_keys(&self.dynamodb, &self.tenants_table, keys).await?;
        Ok(())
    }
}
