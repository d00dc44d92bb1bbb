//! Privacy requests in `TenantsTable`: `pk = <tenant>`, `sk = PRIV#<request id>`, next to the
//! tenant's profile, so listing a tenant's requests is one Query on the `PRIV#` prefix (never a
//! Scan) and a tenant's requests are fenced by its partition key like everything else.
//!
//! Creating is conditional on the id being free: for a Shopify webhook the id is derived from
//! the webhook id, so that conditional put *is* the dedupe. Completing is conditional on the
//! request not being done, and removes the sealed subject in the same write.

pub mod dynamo;
pub mod memory;

use std::future::Future;

use crate::domain::{RecordId, TenantId};
use crate::privacy::requests::{Completion, PrivacyRequest};
use crate::store::StoreError;

pub use dynamo::DynamoPrivacyRequests;
pub use memory::MemoryPrivacyRequests;

/// What `create` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// Stored now.
    New,
    /// A request with that id was already there (a redelivery): it is returned as stored, and
    /// nothing was written.
    Existing(Box<PrivacyRequest>),
}

/// What `complete` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completed {
    /// Completed now; the request as it is stored after the write.
    Now(Box<PrivacyRequest>),
    /// It was done already (a redelivered job): nothing was written.
    Already(Box<PrivacyRequest>),
}

pub trait PrivacyRequests: Send + Sync {
    /// Stores a new request unless one with its tenant and id exists (then returns that one).
    fn create(&self, request: &PrivacyRequest) -> impl Future<Output = Result<Created, StoreError>> + Send;
    /// The request, read consistently.
    fn get(
        &self,
        tenant: &TenantId,
        id: &RecordId,
    ) -> impl Future<Output = Result<Option<PrivacyRequest>, StoreError>> + Send;
    /// `received` → `queued`; a request already queued, failed or done is left as it is. Returns
    /// whether it moved. A request that does not exist is a `Conflict`.
    /// `at_ms` is recorded as `queued_at_ms`.
    fn mark_queued(
        &self,
        tenant: &TenantId,
        id: &RecordId,
        at_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// A `queued` request's job sent again: `queued_at_ms` moves to `at_ms`; returns whether it
    /// was queued.
    fn requeued(
        &self,
        tenant: &TenantId,
        id: &RecordId,
        at_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// `failed` → `queued`, the reason removed (an operator's requeue); returns whether it moved.
    /// Apart from `mark_queued`, so a submission's late mark never undoes a failure recorded
    /// meanwhile.
    fn reopen(
        &self,
        tenant: &TenantId,
        id: &RecordId,
        at_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Moves a request that exists and is not done to `failed`, with a reason (a fixed phrase);
    /// returns whether it moved.
    fn fail(
        &self,
        tenant: &TenantId,
        id: &RecordId,
        reason: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Moves a request that is not done to `done`: sets the result and completion time,
    /// removes the sealed subject. A request that does not exist is a `Conflict`.
    fn complete(
        &self,
        tenant: &TenantId,
        id: &RecordId,
        completion: &Completion,
    ) -> impl Future<Output = Result<Completed, StoreError>> + Send;
    /// Every request of the tenant, oldest id first (one Query, paged).
    fn list(&self, tenant: &TenantId) -> impl Future<Output = Result<Vec<PrivacyRequest>, StoreError>> + Send;
    /// The tenant's requests not done and past their deadline at `now_ms`.
    fn overdue(
        &self,
        tenant: &TenantId,
        now_ms: i64,
    ) -> impl Future<Output = Result<Vec<PrivacyRequest>, StoreError>> + Send {
        async move { Ok(self.list(tenant).await?.into_iter().filter(|r| r.is_overdue(now_ms)).collect()) }
    }
}
