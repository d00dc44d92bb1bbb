//! Taking in a privacy request, whoever asks (a Shopify webhook, an operator, the purge for a
//! cancelled tenant): record it once, queue its job, mark it queued. Every caller may be
//! retried, so a request that exists already is queued again only if no earlier attempt got
//! that far, and a failed send leaves it `received` for the retry.
//!
//! A request can still lose its job: Shopify gives up retrying a webhook whose send failed
//! (it stays `received`), or the job dead-letters after its 5 receives (it stays `queued`).
//! The daily purge run sends such stuck requests' jobs again (`resend_stuck`); an operator can
//! send any open request's job again (`resend`, `concierge-admin privacy requeue`). The worker
//! completes a request once (a conditional transaction), so a job sent twice is harmless.

use super::queue::PrivacyQueue;
use super::requests::{PrivacyJob, PrivacyRequest, RequestState};
use crate::domain::TenantId;
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
        // The record in hand is this delivery's: its receipt time is now.
        requests.mark_queued(&record.tenant, &record.id, record.received_at_ms).await.map_err(SubmitError::Mark)?;
    }
    Ok(Submitted { duplicate, queued_now: to_queue })
}

/// How long a request may wait for its job before it counts as stuck. A job is received at
/// most 5 times, 30 minutes apart (the queue's visibility timeout), before it dead-letters, so
/// after 6 hours it has either finished or will not.
pub const STUCK_AFTER_MS: i64 = 6 * 3_600_000;

/// Sends the job of an open request again (done requests are left alone) and marks it queued.
/// A failed one is reopened *before* its job is sent, so the worker failing it again is never
/// overwritten by a late mark (a send that then fails leaves it queued without a job, which
/// `resend_stuck` finds). Returns whether a job was sent.
pub async fn resend(
    requests: &impl PrivacyRequests,
    queue: &impl PrivacyQueue,
    request: &PrivacyRequest,
    now_ms: i64,
) -> Result<bool, SubmitError> {
    let (tenant, id) = (&request.tenant, &request.id);
    match request.state {
        RequestState::Done => return Ok(false),
        RequestState::Failed => {
            requests.reopen(tenant, id, now_ms).await.map_err(SubmitError::Mark)?;
        }
        RequestState::Received | RequestState::Queued => {}
    }
    queue.send(&PrivacyJob { tenant: tenant.clone(), request: id.clone() }).await.map_err(SubmitError::Queue)?;
    // Received: now queued. Queued (its job lost): the new job's time, so the next sweep
    // leaves it to its own retries.
    let marked = requests.mark_queued(tenant, id, now_ms).await.map_err(SubmitError::Mark)?;
    if !marked {
        requests.requeued(tenant, id, now_ms).await.map_err(SubmitError::Mark)?;
    }
    Ok(true)
}

/// What a sweep of a tenant's requests found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Stuck requests whose job was sent again.
    pub resent: u64,
    /// Stuck requests whose re-send failed (logged; the next sweep tries again).
    pub resend_failed: u64,
    /// Requests waiting for an operator (`failed`).
    pub failed: u64,
}

/// Sends again the jobs of the tenant's stuck requests (`PrivacyRequest::is_stuck` at
/// `now_ms - STUCK_AFTER_MS`): one Query, plus a send and an update or two per stuck request.
/// One request failing does not keep the others waiting. Failed requests are not retried
/// here, their cause needs an operator: they are counted, so the caller can say so.
pub async fn resend_stuck(
    requests: &impl PrivacyRequests,
    queue: &impl PrivacyQueue,
    tenant: &TenantId,
    now_ms: i64,
) -> Result<Sweep, SubmitError> {
    let mut sweep = Sweep::default();
    for request in requests.list(tenant).await.map_err(SubmitError::Record)? {
        sweep.failed += u64::from(request.state == RequestState::Failed);
        if !request.is_stuck(now_ms - STUCK_AFTER_MS) {
            continue;
        }
        match resend(requests, queue, &request, now_ms).await {
            Ok(sent) => sweep.resent += u64::from(sent),
            Err(e) => {
                tracing::warn!(tenant = %tenant, request = %request.id, error = %e, "stuck privacy request not sent again");
                sweep.resend_failed += 1;
            }
        }
    }
    Ok(sweep)
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

    #[tokio::test]
    async fn only_requests_left_open_past_the_stuck_window_are_sent_again() {
        let (requests, queue) = (MemoryPrivacyRequests::default(), MemoryPrivacyQueue::default());
        let tenant = TenantId::parse("acme").unwrap();
        let at = |received_at_ms: i64| PrivacyRequest { received_at_ms, ..record() };
        let now = 10 * STUCK_AFTER_MS;
        // Lost before its send (Shopify gave up): received long ago.
        let lost = at(now - STUCK_AFTER_MS - 1);
        requests.create(&lost).await.unwrap();
        // Dead-lettered: queued long ago.
        let dead = at(now - 2 * STUCK_AFTER_MS);
        requests.create(&dead).await.unwrap();
        requests.mark_queued(&tenant, &dead.id, now - 2 * STUCK_AFTER_MS).await.unwrap();
        // Still within its retries; done; failed: left alone.
        let fresh = at(now - STUCK_AFTER_MS + 1);
        requests.create(&fresh).await.unwrap();
        let done = at(0);
        requests.create(&done).await.unwrap();
        let completion =
            crate::privacy::requests::Completion { completed_at_ms: 1, result: Default::default(), subject_hash: None };
        requests.complete(&tenant, &done.id, &completion).await.unwrap();
        let failed = at(0);
        requests.create(&failed).await.unwrap();
        requests.fail(&tenant, &failed.id, "the subject does not open").await.unwrap();

        let sweep = resend_stuck(&requests, &queue, &tenant, now).await.unwrap();
        assert_eq!(sweep, Sweep { resent: 2, resend_failed: 0, failed: 1 });
        let dead_now = requests.get(&tenant, &dead.id).await.unwrap().unwrap();
        assert_eq!(dead_now.queued_at_ms, Some(now), "the re-sent job's time");
        // Right after, nothing is stuck: the re-sent jobs get their own retries.
        assert_eq!(resend_stuck(&requests, &queue, &tenant, now + 1).await.unwrap().resent, 0);
        let mut sent: Vec<RecordId> = queue.jobs().into_iter().map(|j| j.request).collect();
        sent.sort();
        let mut expected = vec![lost.id.clone(), dead.id.clone()];
        expected.sort();
        assert_eq!(sent, expected);
        assert_eq!(requests.get(&tenant, &lost.id).await.unwrap().unwrap().state, RequestState::Queued);

        // An operator's requeue of the failed one clears its failure, and counts as its queueing:
        // the next sweep leaves it to its retries.
        let failed = requests.get(&tenant, &failed.id).await.unwrap().unwrap();
        assert!(resend(&requests, &queue, &failed, now).await.unwrap());
        let requeued = requests.get(&tenant, &failed.id).await.unwrap().unwrap();
        let sweep_at = now + STUCK_AFTER_MS - 1;
        assert!(!requeued.is_stuck(sweep_at - STUCK_AFTER_MS));
        assert_eq!((requeued.state, requeued.failure, requeued.queued_at_ms), (RequestState::Queued, None, Some(now)));
        let done = requests.get(&tenant, &done.id).await.unwrap().unwrap();
        assert!(!resend(&requests, &queue, &done, now).await.unwrap(), "a done request is never sent again");
        assert_eq!(queue.jobs().len(), 3);
    }
}
