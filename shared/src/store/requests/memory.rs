//! In-memory privacy requests, for unit tests; held to the same conformance suite as the table.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{Completed, Created, PrivacyRequests};
use crate::domain::{RecordId, TenantId};
use crate::privacy::requests::{Completion, PrivacyRequest, RequestState};
use crate::store::StoreError;

#[derive(Debug, Default)]
pub struct MemoryPrivacyRequests {
    requests: Mutex<BTreeMap<(TenantId, RecordId), PrivacyRequest>>,
}

impl MemoryPrivacyRequests {
    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<(TenantId, RecordId), PrivacyRequest>) -> T) -> T {
        f(&mut self.requests.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl PrivacyRequests for MemoryPrivacyRequests {
    async fn create(&self, request: &PrivacyRequest) -> Result<Created, StoreError> {
        self.with(|all| match all.get(&(request.tenant.clone(), request.id.clone())) {
            Some(existing) => Ok(Created::Existing(Box::new(existing.clone()))),
            None => {
                all.insert((request.tenant.clone(), request.id.clone()), request.clone());
                Ok(Created::New)
            }
        })
    }

    async fn get(&self, tenant: &TenantId, id: &RecordId) -> Result<Option<PrivacyRequest>, StoreError> {
        self.with(|all| Ok(all.get(&(tenant.clone(), id.clone())).cloned()))
    }

    async fn mark_queued(&self, tenant: &TenantId, id: &RecordId, at_ms: i64) -> Result<bool, StoreError> {
        self.with(|all| match all.get_mut(&(tenant.clone(), id.clone())) {
            Some(r) if r.state == RequestState::Received => {
                r.state = RequestState::Queued;
                r.queued_at_ms = Some(at_ms);
                Ok(true)
            }
            Some(_) => Ok(false),
            None => Err(StoreError::Conflict("no such privacy request to mark queued".into())),
        })
    }

    async fn requeued(&self, tenant: &TenantId, id: &RecordId, at_ms: i64) -> Result<bool, StoreError> {
        self.with(|all| match all.get_mut(&(tenant.clone(), id.clone())) {
            Some(r) if r.state == RequestState::Queued => {
                r.queued_at_ms = Some(at_ms);
                Ok(true)
            }
            _ => Ok(false),
        })
    }

    async fn reopen(&self, tenant: &TenantId, id: &RecordId, at_ms: i64) -> Result<bool, StoreError> {
        self.with(|all| match all.get_mut(&(tenant.clone(), id.clone())) {
            Some(r) if r.state == RequestState::Failed => {
                r.state = RequestState::Queued;
                r.queued_at_ms = Some(at_ms);
                r.failure = None;
                Ok(true)
            }
            _ => Ok(false),
        })
    }

    async fn fail(&self, tenant: &TenantId, id: &RecordId, reason: &str) -> Result<bool, StoreError> {
        self.with(|all| match all.get_mut(&(tenant.clone(), id.clone())) {
            Some(r) if r.state != RequestState::Done => {
                r.state = RequestState::Failed;
                r.failure = Some(reason.to_owned());
                Ok(true)
            }
            _ => Ok(false),
        })
    }

    async fn complete(
        &self,
        tenant: &TenantId,
        id: &RecordId,
        completion: &Completion,
    ) -> Result<Completed, StoreError> {
        self.with(|all| match all.get_mut(&(tenant.clone(), id.clone())) {
            Some(r) if r.state == RequestState::Done => Ok(Completed::Already(Box::new(r.clone()))),
            Some(r) => {
                r.state = RequestState::Done;
                r.completed_at_ms = Some(completion.completed_at_ms);
                r.result = Some(completion.result.clone());
                r.subject = None;
                r.failure = None;
                if let Some(hash) = &completion.subject_hash {
                    r.subject_hash = Some(hash.clone());
                }
                Ok(Completed::Now(Box::new(r.clone())))
            }
            None => Err(StoreError::Conflict("no such privacy request to complete".into())),
        })
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<PrivacyRequest>, StoreError> {
        self.with(|all| Ok(all.iter().filter(|((t, _), _)| t == tenant).map(|(_, r)| r.clone()).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn behaves_like_the_table() {
        crate::store::conformance::privacy_requests(
            &MemoryPrivacyRequests::default(),
            &TenantId::parse("acme").unwrap(),
        )
        .await;
    }
}
