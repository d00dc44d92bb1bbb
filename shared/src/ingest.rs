//! Ingestion: store each inbound message exactly once and queue it once, apply statuses
//! monotonically. Shared by the Meta and Twilio webhooks.
//!
//! Budget per message (once the tenant is cached): a new message costs two AWS requests (the
//! conditional put, the FIFO send); a duplicate one (the put that fails its condition and
//! returns what the first delivery stored).

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use serde::Serialize;

use crate::channels::meta::NumberUpdates;
use crate::domain::{InboundMessage, StatusUpdate};
use crate::privacy::{Expiry, Pseudonymizer};
use crate::queue::{InboundJob, InboundQueue, QueueError, message_group};
use crate::store::StoreError;
use crate::store::messages::{
    MessageLog, Recorded, STAGE_RECEIVED, StatusApplied, inbound_item, message_key,
};
use crate::tenants::{Tenant, TenantDirectory};

/// Longest an ingest attempt can live (API Gateway's integration timeout is 29 s). A duplicate
/// that finds its message still `received` after this found an attempt that died between the
/// write and the send: it queues the message again. Within SQS's 5-minute deduplication window
/// that resend is dropped if the first send did happen; after it, the reply worker's stage check
/// makes a second copy harmless.
pub const ATTEMPT_WINDOW_SECS: i64 = 30;

/// Requests in flight at once for one webhook (a Meta batch holds up to 1,000 updates).
const CONCURRENCY: usize = 16;

/// What one webhook did, for the summary log line and for tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IngestReport {
    pub stored: usize,
    pub duplicates: usize,
    pub requeued: usize,
    pub statuses_applied: usize,
    pub statuses_stale: usize,
    pub unrouted: usize,
    pub skipped: usize,
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
    }
}

/// Every failure here is worth a retry by the provider: nothing was half-done.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

pub struct Ingest<D, L, Q> {
    pub directory: D,
    pub log: L,
    pub queue: Q,
    pub pseudonyms: Pseudonymizer,
}

impl<D: TenantDirectory, L: MessageLog, Q: InboundQueue> Ingest<D, L, Q> {
    /// A Meta notification: each receiving number routed to its own tenant, unknown numbers dropped.
    pub async fn meta(
        &self,
        batch: Vec<NumberUpdates>,
        now: i64,
    ) -> Result<IngestReport, IngestError> {
        let mut report = IngestReport::default();
        let mut work = Vec::new();
        for updates in batch {
            report.skipped += updates.skipped;
            if !updates.error_codes.is_empty() {
                tracing::warn!(codes = ?updates.error_codes, "webhook change carried errors");
            }
            match self
                .directory
                .by_meta_number(&updates.phone_number_id)
                .await?
            {
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
        let mut errors = Vec::new();
        for (tenant, messages, statuses) in work {
            match self.tenant_updates(&tenant, messages, statuses, now).await {
                Ok(r) => report.add(r),
                Err(e) => errors.push(e),
            }
        }
        match errors.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(report),
        }
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
        let message_results = futures::stream::iter(by_contact.into_values())
            .map(|group| self.contact_messages(tenant, group, now))
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
        first_error.map_or(Ok(report), Err)
    }

    async fn contact_messages(
        &self,
        tenant: &Tenant,
        mut group: Vec<InboundMessage>,
        now: i64,
    ) -> Result<IngestReport, IngestError> {
        group.sort_by_key(|m| m.sent_at);
        let mut report = IngestReport::default();
        for m in &group {
            report.add(self.message(tenant, m, now).await?);
        }
        Ok(report)
    }

    async fn message(
        &self,
        tenant: &Tenant,
        m: &InboundMessage,
        now: i64,
    ) -> Result<IngestReport, IngestError> {
        let contact_hash = self.pseudonyms.contact(&tenant.id, &m.contact);
        let expiry = Expiry::after_days(&tenant.id, now, tenant.retention.messages);
        let item = inbound_item(&tenant.id, m, &contact_hash, now, &expiry)?;
        let job = InboundJob {
            tenant_id: tenant.id.clone(),
            channel: m.channel,
            message_key: message_key(&tenant.id, m.channel, &m.id),
            received_at: now,
        };
        let group = message_group(&tenant.id, &contact_hash);
        let mut report = IngestReport::default();
        match self.log.record_inbound(item).await? {
            Recorded::New => {
                if let Err(e) = self.queue.enqueue(&job, &group).await {
                    // Undo the write so the provider's retry does both steps again.
                    if let Err(undo) = self.log.forget_unqueued(&job.message_key).await {
                        tracing::error!(error = %undo, "could not undo the write of an unqueued message");
                    }
                    return Err(e.into());
                }
                tracing::debug!(contact = %contact_hash, "message stored and queued");
                report.stored = 1;
            }
            Recorded::Duplicate { stage, received_at } => {
                let stranded = stage.as_deref() == Some(STAGE_RECEIVED)
                    && received_at.is_some_and(|at| now - at > ATTEMPT_WINDOW_SECS);
                if stranded {
                    self.queue.enqueue(&job, &group).await?;
                    report.requeued = 1;
                    tracing::info!(contact = %contact_hash, "stored message found unanswered after its attempt window; queued again");
                }
                report.duplicates = 1;
            }
        }
        Ok(report)
    }

    async fn status(
        &self,
        tenant: &Tenant,
        st: StatusUpdate,
        now: i64,
    ) -> Result<IngestReport, IngestError> {
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
