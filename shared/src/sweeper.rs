//! The backstop of ingestion: inbound messages still waiting for an answer some minutes after
//! they arrived (stored but never queued, or queued but never answered) are queued again. They
//! are found through the `pending` index (per tenant and shard, by when they are due), never a
//! Scan, so a sweep costs a constant per tenant and shard plus what is due. Each message is
//! looked at again later and later; after `MAX_REQUEUES` it is given up on, loudly.

use std::time::Duration;

use futures::StreamExt;
use tokio::time::Instant;

use crate::domain::TenantId;
use crate::ingest::SWEEP_AFTER_MS;
use crate::privacy::Pseudonymizer;
use crate::queue::{InboundJob, InboundQueue, MAX_BATCH, QueueError, Queued, message_group};
use crate::store::StoreError;
use crate::store::keys::SHARDS;
use crate::store::messages::{PendingInbound, PendingLog};
use crate::tenants::TenantCatalog;

/// A message queued this often without being answered is given up on (and logged as an error).
pub const MAX_REQUEUES: u32 = 5;
/// Due messages read per query.
const PAGE: usize = 100;
/// Tenants swept at once (each with its shards at once: 64 queries in flight).
const CONCURRENCY: usize = 8;

/// When a message queued again for the `requeues`-th time is next looked at: 5, 10, 20 … minutes.
pub fn next_due_ms(now_ms: i64, requeues: u32) -> i64 {
    now_ms + SWEEP_AFTER_MS * (1_i64 << requeues.min(10))
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    pub tenants: usize,
    pub requeued: usize,
    pub abandoned: usize,
    /// Answered between the query and the reschedule: nothing to do.
    pub answered_meanwhile: usize,
    pub failed: usize,
    /// Stopped at the deadline; the next run continues (what is left is still due).
    pub incomplete: bool,
}

impl SweepReport {
    fn add(&mut self, other: Self) {
        self.tenants += other.tenants;
        self.requeued += other.requeued;
        self.abandoned += other.abandoned;
        self.answered_meanwhile += other.answered_meanwhile;
        self.failed += other.failed;
        self.incomplete |= other.incomplete;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

pub struct Sweeper<C, L, Q> {
    pub catalog: C,
    pub log: L,
    pub queue: Q,
    pub pseudonyms: Pseudonymizer,
}

impl<C: TenantCatalog, L: PendingLog, Q: InboundQueue> Sweeper<C, L, Q> {
    /// Sweeps every tenant as of `now_ms`, stopping at `give_up_at`. A run that cannot reach
    /// every tenant in time leaves the rest for the next one, which starts elsewhere in the list
    /// (where depends on the run's minute), so no tenant waits behind the same others every time.
    pub async fn sweep(&self, now_ms: i64, give_up_at: Instant) -> Result<SweepReport, StoreError> {
        let mut tenants = self.catalog.tenant_ids().await?;
        if !tenants.is_empty() {
            let minute = now_ms.div_euclid(60_000) as u64;
            let start = (minute.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize % tenants.len();
            tenants.rotate_left(start);
        }
        let sweeps: Vec<_> = tenants.iter().map(|t| self.sweep_tenant(t, now_ms, give_up_at)).collect();
        let reports = futures::stream::iter(sweeps).buffer_unordered(CONCURRENCY).collect::<Vec<_>>().await;
        let mut total = SweepReport::default();
        for r in reports {
            total.add(r);
        }
        Ok(total)
    }

    async fn sweep_tenant(&self, tenant: &TenantId, now_ms: i64, give_up_at: Instant) -> SweepReport {
        if Instant::now() >= give_up_at {
            return SweepReport { incomplete: true, ..SweepReport::default() };
        }
        let shards: Vec<_> = (0..SHARDS).map(|shard| self.sweep_shard(tenant, shard, now_ms, give_up_at)).collect();
        let mut report = SweepReport { tenants: 1, ..SweepReport::default() };
        for r in futures::future::join_all(shards).await {
            report.add(r);
        }
        report
    }

    async fn sweep_shard(&self, tenant: &TenantId, shard: u8, now_ms: i64, give_up_at: Instant) -> SweepReport {
        let mut report = SweepReport::default();
        loop {
            if Instant::now() >= give_up_at {
                report.incomplete = true;
                return report;
            }
            let due = match self.log.due(tenant, shard, now_ms, PAGE).await {
                Ok(due) => due,
                Err(e) => {
                    tracing::error!(tenant = %tenant, shard, error = %e, "reading pending messages failed");
                    report.failed += 1;
                    break;
                }
            };
            if due.is_empty() {
                break;
            }
            let page = due.len();
            match self.handle(tenant, due, now_ms).await {
                Ok(r) => report.add(r),
                Err(e) => {
                    tracing::error!(tenant = %tenant, shard, error = %e, "re-queueing pending messages failed");
                    report.failed += 1;
                    break;
                }
            }
            if page < PAGE {
                break;
            }
        }
        report
    }

    /// Queues one page of due messages again (or gives up on them), then reschedules them.
    async fn handle(
        &self,
        tenant: &TenantId,
        due: Vec<PendingInbound>,
        now_ms: i64,
    ) -> Result<SweepReport, SweepError> {
        let mut report = SweepReport::default();
        let (give_up, requeue): (Vec<_>, Vec<_>) = due.into_iter().partition(|p| p.requeues >= MAX_REQUEUES);
        for p in &give_up {
            self.log.abandon(&p.key, now_ms).await?;
            report.abandoned += 1;
            tracing::error!(
                tenant = %tenant,
                contact = %self.pseudonyms.contact_key(tenant, &p.contact),
                requeues = p.requeues,
                "inbound message still unanswered after every re-queue; given up"
            );
        }
        let jobs: Vec<Queued> = requeue
            .iter()
            .map(|p| Queued {
                job: InboundJob {
                    tenant_id: tenant.clone(),
                    channel: p.channel,
                    message_key: p.key.clone(),
                    received_at: p.received_at,
                },
                group: message_group(tenant, &self.pseudonyms.contact_key(tenant, &p.contact)),
            })
            .collect();
        for chunk in jobs.chunks(MAX_BATCH) {
            let failed = self.queue.send_batch(chunk).await?;
            if !failed.is_empty() {
                return Err(QueueError(format!("{} jobs not accepted", failed.len())).into());
            }
        }
        let reschedules: Vec<_> = requeue
            .iter()
            .map(|p| self.log.reschedule(&p.key, next_due_ms(now_ms, p.requeues + 1), p.requeues + 1))
            .collect();
        for still_pending in futures::future::join_all(reschedules).await {
            if still_pending? {
                report.requeued += 1;
            } else {
                report.answered_meanwhile += 1;
            }
        }
        Ok(report)
    }
}

/// The deadline of a sweep run inside an invocation (or a minute without one).
pub fn give_up_at() -> Instant {
    let left = crate::invocation::remaining().unwrap_or(Duration::from_secs(60));
    Instant::now() + left.saturating_sub(Duration::from_secs(2))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;
    use crate::domain::{Channel, ContactId, Content, InboundMessage, ProviderMessageId};
    use crate::ingest::{Attempt, prepare};
    use crate::queue::MemoryQueue;
    use crate::store::keys;
    use crate::store::messages::{InboundLog, MemoryMessageLog};
    use crate::tenants::Tenant;

    struct Tenants(Vec<TenantId>);

    impl TenantCatalog for Tenants {
        async fn tenant_ids(&self) -> Result<Vec<TenantId>, StoreError> {
            Ok(self.0.clone())
        }
    }

    const T0: i64 = 1_767_225_600_000;

    async fn store(log: &MemoryMessageLog, tenant: &Tenant, id: &str, at_ms: i64) -> String {
        let m = InboundMessage {
            channel: Channel::Meta,
            id: ProviderMessageId::parse(id).unwrap(),
            contact: ContactId::parse_key("+4915112345678").unwrap(),
            profile_name: None,
            sent_at: at_ms / 1000,
            reply_to: None,
            content: Content::Text { body: "x".into() },
        };
        let key =
            keys::message_key(&tenant.id, Channel::Meta, &Pseudonymizer::new(b"k").message_ref(Channel::Meta, id));
        let attempt = Attempt::new(tenant, &ManualClock::at(at_ms));
        let p = prepare(tenant, &m, &key, "+4915112345678", "g", &attempt);
        log.record_inbound(&p.new).await.unwrap();
        key
    }

    fn sweeper(tenants: &[&Tenant]) -> Sweeper<Tenants, MemoryMessageLog, MemoryQueue> {
        Sweeper {
            catalog: Tenants(tenants.iter().map(|t| t.id.clone()).collect()),
            log: MemoryMessageLog::default(),
            queue: MemoryQueue::default(),
            pseudonyms: Pseudonymizer::new(b"k"),
        }
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(600)
    }

    #[tokio::test]
    async fn only_messages_waiting_longer_than_the_sweep_delay_are_queued_again() {
        let a = Tenant::new(TenantId::parse("acme").unwrap());
        let b = Tenant::new(TenantId::parse("bella").unwrap());
        let s = sweeper(&[&a, &b]);
        let old = store(&s.log, &a, "wamid.old", T0).await;
        let answered = store(&s.log, &a, "wamid.answered", T0).await;
        s.log.complete(&answered).await.unwrap();
        let fresh = store(&s.log, &b, "wamid.fresh", T0 + 4 * 60_000).await;

        let report = s.sweep(T0 + SWEEP_AFTER_MS + 1, far()).await.unwrap();
        assert_eq!((report.tenants, report.requeued), (2, 1));
        let sent: Vec<String> = s.queue.sent().into_iter().map(|q| q.job.message_key).collect();
        assert_eq!(sent, std::slice::from_ref(&old));
        assert!(s.log.pending_due(&fresh).is_some());
        // Looked at again later, not at the next sweep.
        assert_eq!(s.log.pending_due(&old), Some(next_due_ms(T0 + SWEEP_AFTER_MS + 1, 1)));
        let again = s.sweep(T0 + SWEEP_AFTER_MS + 2, far()).await.unwrap();
        assert_eq!(again.requeued, 0);
    }

    #[tokio::test]
    async fn a_message_requeued_too_often_is_given_up_and_leaves_the_index() {
        let a = Tenant::new(TenantId::parse("acme").unwrap());
        let s = Arc::new(sweeper(&[&a]));
        let key = store(&s.log, &a, "wamid.stuck", T0).await;
        let mut now = T0;
        let mut requeued = 0;
        for _ in 0..=MAX_REQUEUES {
            now = s.log.pending_due(&key).unwrap();
            requeued += s.sweep(now, far()).await.unwrap().requeued;
        }
        assert_eq!(requeued, MAX_REQUEUES as usize);
        assert_eq!(s.log.pending_due(&key), None, "given up");
        assert_eq!(s.sweep(now + 86_400_000, far()).await.unwrap(), SweepReport { tenants: 1, ..Default::default() });
    }

    /// Every call takes 10 ms, as DynamoDB's do.
    struct Slow(MemoryMessageLog);

    impl PendingLog for Slow {
        async fn due(
            &self,
            t: &TenantId,
            shard: u8,
            now: i64,
            limit: usize,
        ) -> Result<Vec<PendingInbound>, StoreError> {
            tokio::time::sleep(Duration::from_millis(10)).await;
            self.0.due(t, shard, now, limit).await
        }
        async fn reschedule(&self, key: &str, due: i64, requeues: u32) -> Result<bool, StoreError> {
            tokio::time::sleep(Duration::from_millis(10)).await;
            self.0.reschedule(key, due, requeues).await
        }
        async fn abandon(&self, key: &str, at: i64) -> Result<(), StoreError> {
            self.0.abandon(key, at).await
        }
    }

    /// Tenants late in the list are reached: shards of a tenant and several tenants are swept at
    /// once, so 200 tenants at DynamoDB latency take a fraction of a second, not minutes.
    #[tokio::test(start_paused = true)]
    async fn two_hundred_tenants_at_dynamodb_latency_are_all_swept_in_one_second() {
        let tenants: Vec<Tenant> =
            (0..200).map(|n| Tenant::new(TenantId::parse(&format!("t{n:03}")).unwrap())).collect();
        let log = MemoryMessageLog::default();
        for t in &tenants {
            store(&log, t, "wamid.1", T0).await;
        }
        let s = Sweeper {
            catalog: Tenants(tenants.iter().map(|t| t.id.clone()).collect()),
            log: Slow(log),
            queue: MemoryQueue::default(),
            pseudonyms: Pseudonymizer::new(b"k"),
        };
        let report = s.sweep(T0 + SWEEP_AFTER_MS, Instant::now() + Duration::from_secs(1)).await.unwrap();
        assert_eq!((report.tenants, report.requeued, report.incomplete), (200, 200, false));
    }

    /// A run that cannot reach every tenant leaves the rest due, and the next run (a few
    /// minutes on) starts elsewhere in the list.
    #[tokio::test(start_paused = true)]
    async fn a_run_cut_short_leaves_the_rest_to_runs_that_start_elsewhere() {
        let tenants: Vec<Tenant> =
            (0..100).map(|n| Tenant::new(TenantId::parse(&format!("t{n:03}")).unwrap())).collect();
        let log = MemoryMessageLog::default();
        let mut keys = Vec::new();
        for t in &tenants {
            keys.push(store(&log, t, "wamid.1", T0).await);
        }
        let s = Sweeper {
            catalog: Tenants(tenants.iter().map(|t| t.id.clone()).collect()),
            log: Slow(log),
            queue: MemoryQueue::default(),
            pseudonyms: Pseudonymizer::new(b"k"),
        };
        let mut runs = 0;
        let mut now = T0 + SWEEP_AFTER_MS;
        while keys.iter().any(|k| s.log.0.pending_due(k) == Some(T0 + SWEEP_AFTER_MS)) {
            // Each run has time for about a fifth of the tenants.
            let report = s.sweep(now, Instant::now() + Duration::from_millis(45)).await.unwrap();
            assert!(report.incomplete && report.requeued > 0 && report.requeued < 100, "{report:?}");
            runs += 1;
            now += SWEEP_AFTER_MS;
            assert!(runs < 40, "the last tenants were never reached");
        }
    }

    #[tokio::test]
    async fn a_queue_failure_leaves_the_message_due_for_the_next_run() {
        let a = Tenant::new(TenantId::parse("acme").unwrap());
        let s = sweeper(&[&a]);
        let key = store(&s.log, &a, "wamid.1", T0).await;
        s.queue.fail_next(1);
        let report = s.sweep(T0 + SWEEP_AFTER_MS, far()).await.unwrap();
        assert_eq!((report.requeued, report.failed), (0, 1));
        assert_eq!(s.log.pending_due(&key), Some(T0 + SWEEP_AFTER_MS));
        assert_eq!(s.sweep(T0 + SWEEP_AFTER_MS, far()).await.unwrap().requeued, 1);
    }
}
