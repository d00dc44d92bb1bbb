//! Taking in a privacy request, whoever asks (a Shopify webhook, an operator, the purge for a
//! cancelled tenant): record it once, queue its job, mark it queued. Every caller may be
//! retried, so a request that exists already is queued again only if no earlier attempt got
//! that far, and a failed send leaves it `received` for the retry.

use super::queue::PrivacyQueue;
use super::requests::{PrivacyJob, PrivacyRequest, RequestState};
use crate::queue::QueueError;
use crate::store::StoreError;
use crate::store::requests::{Created, PrivacyRequests};

/// What became of a submitted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Submitted {
    /// It was recorded before (a retry, a redelivery).
    pub duplicate: bool,
    /// Its job was queued by this call.
    pub queued_now: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("recording the request: {0}")]
    Record(StoreError),
    #[error("queueing the job: {0}")]
    Queue(QueueError),
    #[error("marking the request queued: {0}")]
    Mark(StoreError),
}

pub async fn submit(
    requests: &impl PrivacyRequests,
    queue: &impl PrivacyQueue,
    record: &PrivacyRequest,
) -> Result<Submitted, SubmitError> {
    let (duplicate, to_queue) = match requests.create(record).await.map_err(SubmitError::Record)? {
        Created::New => (false, true),
        Created::Existing(existing) => (true, existing.state == RequestState::Received),
    };
    if to_queue {
        let job = PrivacyJob { tenant: record.tenant.clone(), request: record.id.clone() };
        queue.send(&job).await.map_err(SubmitError::Queue)?;
        requests.mark_queued(&record.tenant, &record.id).await.map_err(SubmitError::Mark)?;
    }
    Ok(Submitted { duplicate, queued_now: to_queue })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{RecordId, TenantId};
    use crate::privacy::queue::MemoryPrivacyQueue;
    use crate::privacy::requests::{RequestKind, RequestSource};
    use crate::store::requests::MemoryPrivacyRequests;

    fn record() -> PrivacyRequest {
        let source = RequestSource::Operator { actor: "test".into() };
        PrivacyRequest::received(
            TenantId::parse("acme").unwrap(),
            RecordId::generate(),
            RequestKind::Wipe,
            source,
            1,
            None,
        )
    }

    #[tokio::test]
    async fn a_request_is_queued_once_and_a_failed_send_is_queued_by_the_retry() {
        let (requests, queue) = (MemoryPrivacyRequests::default(), MemoryPrivacyQueue::default());
        let r = record();
        assert_eq!(submit(&requests, &queue, &r).await.unwrap(), Submitted { duplicate: false, queued_now: true });
        assert_eq!(submit(&requests, &queue, &r).await.unwrap(), Submitted { duplicate: true, queued_now: false });
        assert_eq!(queue.jobs().len(), 1);

        let r = record();
        queue.failing.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(matches!(submit(&requests, &queue, &r).await, Err(SubmitError::Queue(_))));
        queue.failing.store(false, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(submit(&requests, &queue, &r).await.unwrap(), Submitted { duplicate: true, queued_now: true });
        assert_eq!(queue.jobs().len(), 2);
    }
}
