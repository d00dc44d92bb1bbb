//! Ingestion: store each inbound message exactly once and queue it once, apply statuses
//! monotonically. Shared by the Meta and Twilio webhooks.
//!
//! Budget per message (once the tenant is cached): a new message costs two AWS requests (the
//! conditional put, the FIFO send); a duplicate one (the put that fails its condition and
//! returns what the first delivery stored).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use futures::StreamExt;

use crate::channels::meta::NumberUpdates;
use crate::clock::unix_now;
use crate::domain::{InboundMessage, StatusUpdate};
use crate::privacy::{Expiry, Pseudonymizer};
use crate::queue::{InboundJob, InboundQueue, QueueError, message_group};
use crate::store::StoreError;
use crate::store::messages::{MessageLog, Recorded, STAGE_RECEIVED, StatusApplied, inbound_item, message_key};
use crate::tenants::{Tenant, TenantDirectory};

/// The attempt window. A duplicate that finds its message still `received` this long after it
/// was stored queues it again: the attempt that stored it died before queueing (a crash, or the
/// 10 s function timeout) or gave up (it answers only after this window, see
/// `enqueue_within_attempt`), and the provider's retry always comes after that answer. Inside the
/// window, a duplicate is a concurrent delivery of a message being queued right now and costs
/// one request. A resend is safe either way: SQS drops it within its 5-minute deduplication
/// window, and the reply worker's stage check makes a later copy harmless.
pub const ATTEMPT_WINDOW_SECS: i64 = 5;

/// Whether a failing attempt that stored at `received_at` may give up: one second beyond the
/// window, a margin for the clocks of different instances.
fn window_passed(received_at: i64) -> bool {
    unix_now() > received_at + ATTEMPT_WINDOW_SECS + 1
}

async fn wait_out_window(received_at: i64) {
    while !window_passed(received_at) {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Requests in flight at once for one webhook (a Meta batch holds up to 1,000 updates).
const CONCURRENCY: usize = 16;

/// What one webhook did, for the summary log line and for tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IngestReport {
    pub stored: usize,
    pub duplicates: usize,
    pub requeued: usize,
    pub statuses_applied: usize,
    pub statuses_stale: usize,
    pub unrouted: usize,
    pub skipped: usize,
    /// Messages the store refuses for good (e.g. over DynamoDB's 400 KB item limit).
    pub rejected: usize,
}

impl IngestReport {
    /// One structured log line per webhook: counts only.
    pub fn log(&self, provider: &'static str) {
        tracing::info!(
            provider,
            stored = self.stored,
            duplicates = self.duplicates,
            requeued = self.requeued,
            statuses_applied = self.statuses_applied,
            statuses_stale = self.statuses_stale,
            unrouted = self.unrouted,
            skipped = self.skipped,
            rejected = self.rejected,
            "webhook ingested"
        );
    }

    fn add(&mut self, other: Self) {
        self.stored += other.stored;
        self.duplicates += other.duplicates;
        self.requeued += other.requeued;
        self.statuses_applied += other.statuses_applied;
        self.statuses_stale += other.statuses_stale;
        self.unrouted += other.unrouted;
        self.skipped += other.skipped;
        self.rejected += other.rejected;
    }
}

/// A failure worth a retry by the provider; what was done so far is safe to do again.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// One webhook's attempt at one tenant's messages: what every message of it shares.
pub struct Attempt {
    /// Marks this attempt's own writes (see `Ingest::message`).
    pub id: String,
    pub received_at: i64,
    pub message_expiry: Expiry,
}

impl Attempt {
    pub fn new(tenant: &Tenant, received_at: i64) -> Self {
        Self {
            id: crate::crypto::unique_id(),
            received_at,
            message_expiry: Expiry::after_days(&tenant.id, received_at, tenant.retention.messages),
        }
    }
}

/// The writes for one inbound message, computed without I/O.
pub struct Prepared {
    pub item: HashMap<String, AttributeValue>,
    pub job: InboundJob,
    pub group: String,
    pub contact_hash: String,
}

/// The CPU part of ingesting one message (benchmarked in `benches/ingest.rs`).
pub fn prepare(
    pseudonyms: &Pseudonymizer,
    tenant: &Tenant,
    m: &InboundMessage,
    attempt: &Attempt,
) -> Result<Prepared, StoreError> {
    let contact = m.contact.key();
    let contact_hash = pseudonyms.contact_key(&tenant.id, &contact);
    let key = message_key(&tenant.id, m.channel, &m.id);
    let now = attempt.received_at;
    let item = inbound_item(&tenant.id, m, &key, &contact, now, &attempt.message_expiry, &attempt.id)?;
    let job = InboundJob { tenant_id: tenant.id.clone(), channel: m.channel, message_key: key, received_at: now };
    let group = message_group(&tenant.id, &contact_hash);
    Ok(Prepared { item, job, group, contact_hash })
}

pub struct Ingest<D, L, Q> {
    pub directory: D,
    pub log: L,
    pub queue: Q,
    pub pseudonyms: Pseudonymizer,
}

impl<D: TenantDirectory, L: MessageLog, Q: InboundQueue> Ingest<D, L, Q> {
    /// A Meta notification: each receiving number routed to its own tenant, unknown numbers dropped.
    pub async fn meta(&self, batch: Vec<NumberUpdates>, now: i64) -> Result<IngestReport, IngestError> {
        let mut report = IngestReport::default();
        let mut work = Vec::new();
        for updates in batch {
            report.skipped += updates.skipped;
            if !updates.error_codes.is_empty() {
                tracing::warn!(codes = ?updates.error_codes, "webhook change carried errors");
            }
            match self.directory.by_meta_number(&updates.phone_number_id).await? {
                Some(tenant) => work.push((tenant, updates.messages, updates.statuses)),
                None => {
                    // A 2xx all the same: an error would only make Meta retry for 7 days.
                    report.unrouted += updates.messages.len() + updates.statuses.len();
                    tracing::warn!(
                        number = %self.pseudonyms.opaque(&updates.phone_number_id),
                        updates = updates.messages.len() + updates.statuses.len(),
                        "no tenant serves this phone number id; updates dropped"
                    );
                }
            }
        }
        let mut first_error = None;
        for (tenant, messages, statuses) in work {
            match self.tenant_updates(&tenant, messages, statuses, now).await {
                Ok(r) => report.add(r),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(report), Err)
    }

    /// Messages and statuses for one tenant. Each contact's messages go in send-time order (one
    /// FIFO group per contact); contacts and statuses proceed concurrently. Everything runs to
    /// completion before an error is returned, so a retry finds the successes already done.
    pub async fn tenant_updates(
        &self,
        tenant: &Arc<Tenant>,
        messages: Vec<InboundMessage>,
        statuses: Vec<StatusUpdate>,
        now: i64,
    ) -> Result<IngestReport, IngestError> {
        let mut by_contact: BTreeMap<String, Vec<InboundMessage>> = BTreeMap::new();
        for m in messages {
            by_contact.entry(m.contact.key()).or_default().push(m);
        }
        let attempt = Attempt::new(tenant, now);
        let message_results = futures::stream::iter(by_contact.into_values())
            .map(|group| self.contact_messages(tenant, group, &attempt))
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<_>>();
        let status_results = futures::stream::iter(statuses)
            .map(|st| self.status(tenant, st, now))
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<_>>();
        let (message_results, status_results) = futures::join!(message_results, status_results);
        let results = message_results.into_iter().chain(status_results);
        let mut report = IngestReport::default();
        let mut first_error = None;
        for r in results {
            match r {
                Ok(r) => report.add(r),
                Err(e) => {
                    tracing::error!(error = %e, "ingest step failed; asking the provider to retry");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            None => Ok(report),
            Some(e) => {
                // A put may have committed even where an error came back. Answer only once the
                // window has passed, so the provider's retry finds such a message stranded and
                // queues it, instead of taking it for a delivery still in progress.
                wait_out_window(attempt.received_at).await;
                Err(e)
            }
        }
    }

    async fn contact_messages(
        &self,
        tenant: &Tenant,
        mut group: Vec<InboundMessage>,
        attempt: &Attempt,
    ) -> Result<IngestReport, IngestError> {
        group.sort_by(|a, b| (a.sent_at, a.id.as_str()).cmp(&(b.sent_at, b.id.as_str())));
        // The same message twice in one notification is one message.
        group.dedup_by(|a, b| a.id == b.id);
        let mut report = IngestReport::default();
        for m in &group {
            report.add(self.message(tenant, m, attempt).await?);
        }
        Ok(report)
    }

    async fn message(
        &self,
        tenant: &Tenant,
        m: &InboundMessage,
        attempt: &Attempt,
    ) -> Result<IngestReport, IngestError> {
        let now = attempt.received_at;
        let mut report = IngestReport::default();
        let Prepared { item, mut job, group, contact_hash } = match prepare(&self.pseudonyms, tenant, m, attempt) {
            Ok(prepared) => prepared,
            Err(e) => {
                // Only a permanent failure can come from building the item.
                tracing::error!(error = %e, "message cannot be stored; skipped");
                report.rejected = 1;
                return Ok(report);
            }
        };
        let recorded = match self.log.record_inbound(item).await {
            Ok(recorded) => recorded,
            Err(e) if e.is_permanent() => {
                // Retrying cannot store it either; acknowledging keeps the rest of the batch moving.
                tracing::error!(contact = %contact_hash, error = %e, "message cannot be stored; skipped");
                report.rejected = 1;
                return Ok(report);
            }
            Err(e) => return Err(e.into()),
        };
        match recorded {
            // Ours, or our own write that the SDK retried after it had committed.
            Recorded::New => self.enqueue_within_attempt(&job, &group, now).await?,
            Recorded::Duplicate { attempt: Some(a), .. } if a == attempt.id => {
                self.enqueue_within_attempt(&job, &group, now).await?
            }
            Recorded::Duplicate { stage, received_at, .. } => {
                report.duplicates = 1;
                let stranded = stage.as_deref() == Some(STAGE_RECEIVED)
                    && received_at.is_some_and(|at| now - at > ATTEMPT_WINDOW_SECS);
                if stranded {
                    job.received_at = received_at.unwrap_or(now);
                    self.queue.enqueue(&job, &group).await?;
                    report.requeued = 1;
                    tracing::info!(contact = %contact_hash, "stored message still unanswered after its attempt window; queued again");
                }
                return Ok(report);
            }
        }
        tracing::debug!(contact = %contact_hash, "message stored and queued");
        report.stored = 1;
        Ok(report)
    }

    /// Sends a freshly stored message to the queue. If the queue keeps failing, keeps trying
    /// until the attempt window has passed before giving up, so that the provider's retry of
    /// this delivery is sure to find the message outside the window and queue it.
    async fn enqueue_within_attempt(&self, job: &InboundJob, group: &str, received_at: i64) -> Result<(), IngestError> {
        let mut pause = Duration::from_millis(100);
        loop {
            match self.queue.enqueue(job, group).await {
                Ok(()) => return Ok(()),
                Err(e) if window_passed(received_at) => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(error = %e, "enqueue failed; retrying within the attempt window");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    async fn status(&self, tenant: &Tenant, st: StatusUpdate, now: i64) -> Result<IngestReport, IngestError> {
        let stub_expiry = Expiry::after_days(&tenant.id, now, tenant.retention.idempotency_keys);
        let mut report = IngestReport::default();
        match self.log.apply_status(&tenant.id, &st, &stub_expiry).await? {
            StatusApplied::Applied => report.statuses_applied = 1,
            StatusApplied::Stale => report.statuses_stale = 1,
        }
        if let Some(code) = st.error_code {
            tracing::info!(status = st.status.as_str(), code, "delivery failed");
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::domain::{Channel, ContactId, Content, ProviderMessageId, TenantId};
    use crate::privacy::RetentionDays;
    use crate::tenants::TwilioCredentials;

    /// Answers `record_inbound` from a script, remembering the attempt it was given.
    #[derive(Default)]
    struct ScriptedLog {
        answers: Mutex<Vec<Result<Recorded, StoreError>>>,
        attempts: Mutex<Vec<String>>,
    }

    impl MessageLog for ScriptedLog {
        async fn record_inbound(&self, item: HashMap<String, AttributeValue>) -> Result<Recorded, StoreError> {
            let attempt = item["attempt"].as_s().unwrap().clone();
            self.attempts.lock().unwrap().push(attempt.clone());
            match self.answers.lock().unwrap().remove(0) {
                // "the write committed, but the SDK retried it": the item now holds our attempt
                Ok(Recorded::Duplicate { stage, received_at, attempt: Some(a) }) if a == "OURS" => {
                    Ok(Recorded::Duplicate { stage, received_at, attempt: Some(attempt) })
                }
                other => other,
            }
        }

        async fn apply_status(&self, _: &TenantId, _: &StatusUpdate, _: &Expiry) -> Result<StatusApplied, StoreError> {
            Ok(StatusApplied::Applied)
        }
    }

    #[derive(Default)]
    struct RecordingQueue(Mutex<Vec<String>>);

    impl InboundQueue for RecordingQueue {
        async fn enqueue(&self, job: &InboundJob, _group: &str) -> Result<(), QueueError> {
            self.0.lock().unwrap().push(job.message_key.clone());
            Ok(())
        }
    }

    struct NoDirectory;

    impl TenantDirectory for NoDirectory {
        async fn by_meta_number(&self, _: &str) -> Result<Option<Arc<Tenant>>, StoreError> {
            Ok(None)
        }
        async fn by_id(&self, _: &TenantId) -> Result<Option<Arc<Tenant>>, StoreError> {
            Ok(None)
        }
        async fn twilio_credentials(&self, _: &Tenant) -> Result<Option<Arc<TwilioCredentials>>, StoreError> {
            Ok(None)
        }
    }

    fn ingest(answers: Vec<Result<Recorded, StoreError>>) -> Ingest<NoDirectory, ScriptedLog, RecordingQueue> {
        Ingest {
            directory: NoDirectory,
            log: ScriptedLog { answers: Mutex::new(answers), ..Default::default() },
            queue: RecordingQueue::default(),
            pseudonyms: Pseudonymizer::new(b"k"),
        }
    }

    fn tenant() -> Arc<Tenant> {
        Arc::new(Tenant {
            id: TenantId::parse("acme").unwrap(),
            retention: RetentionDays::default(),
            meta_phone_number_id: None,
            twilio: None,
        })
    }

    fn message(id: &str, sent_at: i64) -> InboundMessage {
        InboundMessage {
            channel: Channel::Meta,
            id: ProviderMessageId::parse(id).unwrap(),
            contact: ContactId::parse_key("+4915112345678").unwrap(),
            profile_name: None,
            sent_at,
            reply_to: None,
            content: Content::Text { body: "x".into() },
        }
    }

    fn duplicate(attempt: &str, received_at: i64) -> Result<Recorded, StoreError> {
        Ok(Recorded::Duplicate {
            stage: Some(STAGE_RECEIVED.into()),
            received_at: Some(received_at),
            attempt: Some(attempt.into()),
        })
    }

    #[tokio::test]
    async fn our_own_committed_write_seen_again_after_an_sdk_retry_is_still_queued() {
        let now = unix_now();
        let ingest = ingest(vec![duplicate("OURS", now)]);
        let report = ingest.tenant_updates(&tenant(), vec![message("wamid.1", 1)], vec![], now).await.unwrap();
        assert_eq!((report.stored, report.duplicates), (1, 0));
        assert_eq!(ingest.queue.0.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_concurrent_delivery_inside_the_window_is_a_duplicate_and_a_stranded_one_is_requeued() {
        let now = unix_now();
        let ingest = ingest(vec![duplicate("other", now - 1), duplicate("dead", now - ATTEMPT_WINDOW_SECS - 1)]);
        let report = ingest
            .tenant_updates(&tenant(), vec![message("wamid.1", 1), message("wamid.2", 2)], vec![], now)
            .await
            .unwrap();
        assert_eq!((report.duplicates, report.requeued), (2, 1));
        assert_eq!(*ingest.queue.0.lock().unwrap(), ["acme#MSG#meta#wamid.2"]);
        // One attempt id per webhook, shared by its messages.
        let attempts = ingest.log.attempts.lock().unwrap();
        assert_eq!(attempts[0], attempts[1]);
    }

    #[tokio::test]
    async fn a_message_the_store_refuses_for_good_is_skipped_and_the_contacts_next_one_still_stored() {
        let ingest = ingest(vec![Err(StoreError::Rejected("too large")), Ok(Recorded::New)]);
        let report = ingest
            .tenant_updates(&tenant(), vec![message("wamid.big", 1), message("wamid.next", 2)], vec![], unix_now())
            .await
            .unwrap();
        assert_eq!((report.rejected, report.stored), (1, 1));
        assert_eq!(*ingest.queue.0.lock().unwrap(), ["acme#MSG#meta#wamid.next"]);
    }

    #[tokio::test]
    async fn the_same_message_twice_in_one_notification_is_stored_and_queued_once() {
        let ingest = ingest(vec![Ok(Recorded::New)]);
        let twice = vec![message("wamid.1", 1), message("wamid.1", 1)];
        let report = ingest.tenant_updates(&tenant(), twice, vec![], unix_now()).await.unwrap();
        assert_eq!(report.stored, 1);
        assert_eq!(ingest.queue.0.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_passing_store_failure_is_returned_for_the_provider_to_retry() {
        let ingest = ingest(vec![Err(StoreError::Aws { operation: "PutItem", message: "throttled".into() })]);
        // Received long enough ago that the attempt window is already over.
        let received_at = unix_now() - 2 * ATTEMPT_WINDOW_SECS;
        let result = ingest.tenant_updates(&tenant(), vec![message("wamid.1", 1)], vec![], received_at).await;
        assert!(matches!(result, Err(IngestError::Store(_))));
        assert!(ingest.queue.0.lock().unwrap().is_empty());
    }
}
