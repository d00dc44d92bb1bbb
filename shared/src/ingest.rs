//! Ingestion: store each inbound message exactly once, queue it, record that it is queued, and
//! apply statuses monotonically. Shared by the Meta and Twilio webhooks.
//!
//! A delivery is answered 2xx only when each of its messages is stored *and* queued, by this
//! attempt or by one it saw finish. Each stored message names the attempt that wrote it and
//! until when that attempt may still be working (its invocation's deadline, the *lease*):
//!
//! - new: put, send (in order within the contact's FIFO group, batched), mark `queued`;
//! - stored and `queued` or later: a duplicate, one request;
//! - stored, still `received`, lease running: another attempt is on it; wait until it is
//!   marked queued (then a duplicate) or its lease runs out (then take over: send and mark);
//! - stored, still `received`, lease over: the attempt died or gave up; take over.
//!
//! A resend is harmless: SQS drops it within its deduplication window and the reply worker's
//! stage check after that. Every step retries until the invocation's deadline; then the
//! provider is asked to retry (500). The sweeper is the backstop for whatever slips through.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::time::Instant;

use crate::channels::meta::NumberUpdates;
use crate::clock::Clock;
use crate::domain::TenantId;
use crate::domain::{InboundMessage, Stage, StatusUpdate};
use crate::invocation;
use crate::privacy::retention::Category;
use crate::privacy::{Expiry, Pseudonymizer};
use crate::queue::{InboundJob, InboundQueue, MAX_BATCH, QueueError, Queued, message_group};
use crate::store::StoreError;
use crate::store::keys;
use crate::store::messages::{DeliveryLog, InboundLog, NewInbound, Recorded, StatusApplied};
use crate::tenants::{Tenant, TenantDirectory, TwilioCredentials};

/// The sweeper looks at a message still unanswered this long after it arrived.
pub const SWEEP_AFTER_MS: i64 = 5 * 60 * 1000;
/// Clocks of different instances may disagree by this much: a lease counts as over only after it.
pub const CLOCK_SKEW_MS: i64 = 1_000;
/// Without an invocation deadline (tools, tests), an attempt gives itself this long.
const DEFAULT_BUDGET: Duration = Duration::from_secs(9);
/// Requests in flight at once for one webhook (a Meta batch holds up to 1,000 updates).
const CONCURRENCY: usize = 16;

/// What one webhook did, for the summary log line and for tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IngestReport {
    pub stored: usize,
    /// Already stored and queued (by an earlier or a concurrent delivery).
    pub duplicates: usize,
    /// Stored by an attempt that did not finish; queued by this one.
    pub requeued: usize,
    pub statuses_applied: usize,
    pub statuses_stale: usize,
    pub unrouted: usize,
    pub skipped: usize,
    /// Queued, but the `queued` mark could not be written (a later delivery resends it).
    pub unmarked: usize,
}

impl IngestReport {
    /// One structured log line per webhook: counts only, and this webhook's AWS requests.
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
            unmarked = self.unmarked,
            aws_requests = invocation::current().map_or(0, |s| s.requests()),
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
        self.unmarked += other.unmarked;
    }
}

/// A failure worth a retry by the provider; what was done so far is safe to do again.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("another delivery of a message was still at work when this one ran out of time")]
    StillInProgress,
    #[error("the invocation ran out of time")]
    OutOfTime,
}

impl IngestError {
    /// Whether trying again within this invocation cannot help: a request AWS refuses as invalid
    /// (a bug or a misconfiguration) is refused again, and a route that disagrees with its
    /// tenant's profile (a number moving between tenants) settles only when the move is loaded.
    /// Answered at once, so the provider retries later.
    fn retry_is_pointless(&self) -> bool {
        matches!(self, Self::Store(StoreError::Invalid { .. } | StoreError::Conflict(_)))
    }
}

/// When work that began now must stop: the invocation's deadline, less a moment to answer.
fn give_up_at() -> Instant {
    Instant::now() + invocation::remaining().unwrap_or(DEFAULT_BUDGET).saturating_sub(crate::aws::ANSWER_RESERVE)
}

/// One webhook's attempt at one tenant's messages: what every message of it shares.
pub struct Attempt {
    /// Marks this attempt's own writes (an SDK retry of a put that committed is not a duplicate).
    pub id: String,
    /// Unix seconds.
    pub received_at: i64,
    /// Until when this attempt may still write (the invocation's deadline, unix ms).
    pub lease_until_ms: i64,
    /// When to stop trying and answer.
    pub give_up_at: Instant,
    pub message_expiry: Expiry,
}

impl Attempt {
    pub fn new(tenant: &Tenant, clock: &dyn Clock) -> Self {
        let now_ms = clock.now_ms();
        let left = invocation::remaining().unwrap_or(DEFAULT_BUDGET);
        let received_at = now_ms.div_euclid(1000);
        Self {
            id: crate::crypto::unique_id(),
            received_at,
            lease_until_ms: now_ms + left.as_millis() as i64,
            give_up_at: give_up_at(),
            message_expiry: Expiry::new(&tenant.id, Category::Messages, received_at, &tenant.retention),
        }
    }
}

/// One contact's messages in one webhook, in send order.
struct ContactMessages {
    group: String,
    messages: Vec<InboundMessage>,
}

/// The writes for one inbound message, computed without I/O.
pub struct Prepared<'a> {
    pub new: NewInbound<'a>,
    pub queued: Queued,
}

/// The CPU part of ingesting one message (benchmarked in `benches/ingest.rs`).
pub fn prepare<'a>(
    tenant: &'a Tenant,
    m: &'a InboundMessage,
    key: &'a str,
    contact: &'a str,
    group: &str,
    attempt: &'a Attempt,
) -> Prepared<'a> {
    let new = NewInbound {
        tenant: &tenant.id,
        message: m,
        key,
        contact,
        received_at: attempt.received_at,
        expiry: &attempt.message_expiry,
        attempt: &attempt.id,
        lease_until_ms: attempt.lease_until_ms,
        sweep_at_ms: attempt.received_at * 1000 + SWEEP_AFTER_MS,
    };
    let job = InboundJob {
        tenant_id: tenant.id.clone(),
        channel: m.channel,
        message_key: key.to_owned(),
        received_at: attempt.received_at,
    };
    Prepared { new, queued: Queued { job, group: group.to_owned() } }
}

/// What the store step decided for one message.
enum Next {
    Send,
    /// Stored at `received_at` by an attempt that is over: this one queues it.
    TakeOver {
        received_at: i64,
    },
    /// Another attempt is at work until its lease ends.
    Wait {
        lease_until_ms: i64,
        received_at: i64,
    },
    Done,
}

pub struct Ingest<D, L, Q> {
    pub directory: D,
    pub log: L,
    pub queue: Q,
    pub pseudonyms: Pseudonymizer,
    pub clock: Arc<dyn Clock>,
}

impl<D: TenantDirectory, L: InboundLog + DeliveryLog, Q: InboundQueue> Ingest<D, L, Q> {
    /// A Meta notification: each receiving number routed to its own tenant, unknown numbers dropped.
    /// Numbers (tenants) are handled concurrently and apart: one that fails or waits does not
    /// hold up or sink the others; any failure is answered 500 once all are done.
    pub async fn meta(&self, batch: Vec<NumberUpdates>) -> Result<IngestReport, IngestError> {
        let numbers: Vec<_> = batch.into_iter().map(|updates| self.number_updates(updates)).collect();
        let mut report = IngestReport::default();
        let mut first_error = None;
        for result in futures::future::join_all(numbers).await {
            match result {
                Ok(r) => report.add(r),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(report), Err)
    }

    /// A tenant by id (Twilio's URLs name it), retried within the invocation like every step.
    pub async fn tenant(&self, id: &TenantId) -> Result<Option<Arc<Tenant>>, IngestError> {
        retry(give_up_at(), "tenant lookup", || self.directory.by_id(id)).await
    }

    /// A tenant's Twilio account with its token opened, retried within the invocation.
    pub async fn twilio_credentials(&self, tenant: &Tenant) -> Result<Option<Arc<TwilioCredentials>>, IngestError> {
        retry(give_up_at(), "tenant lookup", || self.directory.twilio_credentials(tenant)).await
    }

    /// Everything one notification said to one of our numbers.
    async fn number_updates(&self, updates: NumberUpdates) -> Result<IngestReport, IngestError> {
        let mut report = IngestReport { skipped: updates.skipped, ..IngestReport::default() };
        if !updates.error_codes.is_empty() {
            tracing::warn!(codes = ?updates.error_codes, "webhook change carried errors");
        }
        let number = &updates.phone_number_id;
        let lookup = retry(give_up_at(), "tenant lookup", || self.directory.by_meta_number(number)).await;
        let tenant = match lookup {
            Ok(Some(tenant)) => tenant,
            Ok(None) => {
                // A 2xx all the same: an error would only make Meta retry for 7 days.
                report.unrouted += updates.messages.len() + updates.statuses.len();
                tracing::warn!(
                    number = %self.pseudonyms.opaque(number),
                    updates = updates.messages.len() + updates.statuses.len(),
                    "no tenant serves this phone number id; updates dropped"
                );
                return Ok(report);
            }
            Err(e) => {
                tracing::error!(number = %self.pseudonyms.opaque(number), error = %e, "tenant lookup failed; asking the provider to retry");
                return Err(e);
            }
        };
        report.add(self.tenant_updates(&tenant, updates.messages, updates.statuses).await?);
        Ok(report)
    }

    /// Messages and statuses for one tenant. Everything runs to completion (or to the deadline)
    /// before an error is returned, so a retry finds the successes already done.
    pub async fn tenant_updates(
        &self,
        tenant: &Arc<Tenant>,
        messages: Vec<InboundMessage>,
        statuses: Vec<StatusUpdate>,
    ) -> Result<IngestReport, IngestError> {
        let attempt = Attempt::new(tenant, &*self.clock);
        let contacts = self.by_contact(tenant, messages);
        let (messages, statuses) =
            futures::join!(self.messages(tenant, &contacts, &attempt), self.statuses(tenant, statuses, &attempt));
        let mut report = IngestReport::default();
        let mut first_error = None;
        for r in [messages, statuses] {
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

    /// Groups messages by contact (one keyed hash per contact), each group in send order, the
    /// same message twice in one notification kept once.
    fn by_contact(&self, tenant: &Tenant, messages: Vec<InboundMessage>) -> Vec<ContactMessages> {
        let mut by_contact: BTreeMap<String, Vec<InboundMessage>> = BTreeMap::new();
        for m in messages {
            by_contact.entry(m.contact.key()).or_default().push(m);
        }
        by_contact
            .into_iter()
            .map(|(contact, mut messages)| {
                messages.sort_by(|a, b| (a.sent_at, a.id.as_str()).cmp(&(b.sent_at, b.id.as_str())));
                messages.dedup_by(|a, b| a.id == b.id);
                let group = message_group(&tenant.id, &self.pseudonyms.contact_key(&tenant.id, &contact));
                ContactMessages { group, messages }
            })
            .collect()
    }

    async fn messages(
        &self,
        tenant: &Tenant,
        contacts: &[ContactMessages],
        attempt: &Attempt,
    ) -> Result<IngestReport, IngestError> {
        let keys: Vec<Vec<(String, String)>> = contacts
            .iter()
            .map(|c| {
                c.messages
                    .iter()
                    .map(|m| {
                        let message_ref = self.pseudonyms.message_ref(m.channel, m.id.as_str());
                        (keys::message_key(&tenant.id, m.channel, &message_ref), m.contact.key())
                    })
                    .collect()
            })
            .collect();
        let prepared: Vec<Vec<Prepared<'_>>> = contacts
            .iter()
            .zip(&keys)
            .map(|(c, keys)| {
                c.messages
                    .iter()
                    .zip(keys)
                    .map(|(m, (key, contact))| prepare(tenant, m, key, contact, &c.group, attempt))
                    .collect()
            })
            .collect();

        // 1. Store every message (order does not matter for storing). The futures are collected
        // before they are polled: a stream of closures would not be `Send` for every lifetime.
        let mut stores = Vec::new();
        for (g, ps) in prepared.iter().enumerate() {
            for (i, p) in ps.iter().enumerate() {
                stores.push(self.store_at((g, i), p, attempt));
            }
        }
        let decisions = concurrently(stores).await;
        let mut next: Vec<Vec<Option<Next>>> = prepared.iter().map(|ps| ps.iter().map(|_| None).collect()).collect();
        let mut report = IngestReport::default();
        let mut first_error: Option<IngestError> = None;
        for ((g, i), decision) in decisions {
            match decision {
                Ok(d) => next[g][i] = Some(d),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }

        // 2. Queue, one contact's messages in order; 3. mark them queued.
        let queueing: Vec<_> =
            prepared.iter().zip(&next).map(|(ps, next)| self.queue_contact(ps, next, attempt)).collect();
        let outcomes = concurrently(queueing).await;
        for outcome in outcomes {
            match outcome {
                Ok(r) => report.add(r),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(report), Err)
    }

    async fn store_at(
        &self,
        at: (usize, usize),
        p: &Prepared<'_>,
        attempt: &Attempt,
    ) -> ((usize, usize), Result<Next, IngestError>) {
        (at, self.store(p, attempt).await)
    }

    /// The conditional put, and what it means for this message.
    async fn store(&self, p: &Prepared<'_>, attempt: &Attempt) -> Result<Next, IngestError> {
        let recorded = retry(attempt.give_up_at, "store", || self.log.record_inbound(&p.new)).await?;
        Ok(match recorded {
            // Ours, or our own write that the SDK retried after it had committed.
            Recorded::New => Next::Send,
            Recorded::Existing(state) if state.attempt.as_deref() == Some(attempt.id.as_str()) => Next::Send,
            Recorded::Existing(state) if state.stage >= Stage::Queued => Next::Done,
            Recorded::Existing(state) if self.clock.now_ms() > state.lease_until_ms + CLOCK_SKEW_MS => {
                Next::TakeOver { received_at: state.received_at }
            }
            Recorded::Existing(state) => {
                Next::Wait { lease_until_ms: state.lease_until_ms, received_at: state.received_at }
            }
        })
    }

    /// Queues one contact's messages in send order. Runs of its own messages go out in batches,
    /// each marked queued while the next is sent. Before a message another attempt is queueing,
    /// it sends what it has, then waits: that attempt may itself be waiting for an earlier message
    /// of this one, and the earliest message not yet queued always belongs to someone not
    /// waiting, so deliveries that each won part of a notification never wait on each other.
    /// A message whose attempt ran out of time is taken over, in its place.
    async fn queue_contact(
        &self,
        prepared: &[Prepared<'_>],
        next: &[Option<Next>],
        attempt: &Attempt,
    ) -> Result<IngestReport, IngestError> {
        let mut report = IngestReport::default();
        let mut batch: Vec<(Queued, &str)> = Vec::new();
        let mut i = 0;
        while i < prepared.len() {
            let p = &prepared[i];
            match &next[i] {
                Some(Next::Send) => {
                    report.stored += 1;
                    batch.push((p.queued.clone(), p.new.key));
                }
                Some(Next::TakeOver { received_at }) => {
                    report.requeued += 1;
                    batch.push((taken_over(p, *received_at), p.new.key));
                }
                Some(Next::Done) => report.duplicates += 1,
                // Its store step failed (the error is reported): nothing after it may overtake
                // it. What came before goes out; the rest waits for the provider's retry.
                None => break,
                Some(Next::Wait { .. }) => {
                    let end = (i..prepared.len())
                        .find(|&j| !matches!(next[j], Some(Next::Wait { .. })))
                        .unwrap_or(prepared.len());
                    report.unmarked += self.send_and_mark(&batch, attempt).await?;
                    batch.clear();
                    let waited = self.wait_for_run(&prepared[i..end], &next[i..end], attempt).await?;
                    for (p, orphaned) in prepared[i..end].iter().zip(waited) {
                        match orphaned {
                            None => report.duplicates += 1,
                            Some(received_at) => {
                                report.requeued += 1;
                                batch.push((taken_over(p, received_at), p.new.key));
                            }
                        }
                    }
                    i = end;
                    continue;
                }
            }
            i += 1;
        }
        report.unmarked += self.send_and_mark(&batch, attempt).await?;
        if report.unmarked > 0 {
            tracing::warn!(
                unmarked = report.unmarked,
                "messages queued but not marked; a later delivery sends them again"
            );
        }
        Ok(report)
    }

    /// Waits for a run of consecutive messages other attempts are queueing: first for the last
    /// one alone (they queue in order, so until it is queued the others need no reads), then
    /// reads the rest. `None` for each message queued meanwhile, its stored receive time for
    /// each whose attempt ran out of time (to take over).
    async fn wait_for_run(
        &self,
        run: &[Prepared<'_>],
        next: &[Option<Next>],
        attempt: &Attempt,
    ) -> Result<Vec<Option<i64>>, IngestError> {
        let leases: Vec<(i64, i64)> = next
            .iter()
            .map(|n| match n {
                Some(Next::Wait { lease_until_ms, received_at }) => (*lease_until_ms, *received_at),
                _ => unreachable!("a run holds only waits"),
            })
            .collect();
        let last = run.len() - 1;
        let last_queued = self.wait_for(run[last].new.key, leases[last].0, false, attempt).await?;
        let checks: Vec<_> = run[..last]
            .iter()
            .zip(&leases)
            .map(|(p, (lease, _))| self.wait_for(p.new.key, *lease, true, attempt))
            .collect();
        let mut queued = concurrently_in_order(checks).await.into_iter().collect::<Result<Vec<bool>, _>>()?;
        queued.push(last_queued);
        Ok(queued.into_iter().zip(&leases).map(|(q, (_, received_at))| (!q).then_some(*received_at)).collect())
    }

    /// Sends jobs in order, in batches, each batch marked queued while the next one is sent:
    /// what is queued says so at once, so a delivery cut short by its deadline leaves its
    /// progress for the retry to build on. Returns how many could not be marked.
    async fn send_and_mark(&self, jobs: &[(Queued, &str)], attempt: &Attempt) -> Result<usize, IngestError> {
        let mut unmarked = 0;
        let mut sent_before: Vec<&str> = Vec::new();
        for chunk in jobs.chunks(MAX_BATCH) {
            let queued: Vec<Queued> = chunk.iter().map(|(q, _)| q.clone()).collect();
            let (sent, not_marked) =
                futures::join!(self.send_in_order(&queued, attempt), self.mark_queued(&sent_before, attempt));
            unmarked += not_marked;
            sent?;
            sent_before = chunk.iter().map(|(_, key)| *key).collect();
        }
        Ok(unmarked + self.mark_queued(&sent_before, attempt).await)
    }

    /// Marks messages queued; returns how many could not be marked (they are queued all the
    /// same: a later delivery sends them again, which the queue and the reply worker absorb).
    async fn mark_queued(&self, keys: &[&str], attempt: &Attempt) -> usize {
        let marks: Vec<_> = keys
            .iter()
            .map(|key| retry(attempt.give_up_at, "mark queued", move || self.log.mark_queued(key)))
            .collect();
        concurrently(marks).await.iter().filter(|r| r.is_err()).count()
    }

    /// Sends up to `MAX_BATCH` jobs; what the queue did not accept is sent again, in order.
    async fn send_in_order(&self, chunk: &[Queued], attempt: &Attempt) -> Result<(), IngestError> {
        let mut pending: Vec<Queued> = chunk.to_vec();
        let mut pause = Duration::from_millis(50);
        loop {
            // Nothing starts after the attempt must stop: what is marked stays for the retry.
            if Instant::now() >= attempt.give_up_at {
                return Err(IngestError::OutOfTime);
            }
            let result = self.queue.send_batch(&pending).await;
            let failed = match result {
                Ok(failed) if failed.is_empty() => return Ok(()),
                Ok(failed) => {
                    // A FIFO batch keeps order only up to its first failure: resend from there.
                    let first = failed[0];
                    pending.drain(..first);
                    None
                }
                Err(e) => Some(e),
            };
            if Instant::now() + pause >= attempt.give_up_at {
                return Err(failed.unwrap_or_else(|| QueueError("messages not accepted by the queue".into())).into());
            }
            if let Some(e) = failed {
                tracing::warn!(error = %e, "enqueue failed; retrying within the invocation");
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    /// Waits for another attempt that is queueing `key`: `true` once it is queued, `false` when
    /// that attempt's lease ran out first (this one then takes over). `look_first`: read the state
    /// before the first pause.
    async fn wait_for(
        &self,
        key: &str,
        mut lease_until_ms: i64,
        look_first: bool,
        attempt: &Attempt,
    ) -> Result<bool, IngestError> {
        let mut pause = Duration::from_millis(50);
        let mut look = look_first;
        loop {
            if look {
                match retry(attempt.give_up_at, "read state", || self.log.inbound_state(key)).await? {
                    Some(state) if state.stage >= Stage::Queued => return Ok(true),
                    Some(state) => lease_until_ms = state.lease_until_ms,
                    None => return Ok(false),
                }
            }
            if self.clock.now_ms() > lease_until_ms + CLOCK_SKEW_MS {
                return Ok(false);
            }
            if Instant::now() + pause >= attempt.give_up_at {
                return Err(IngestError::StillInProgress);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
            look = true;
        }
    }

    async fn statuses(
        &self,
        tenant: &Tenant,
        statuses: Vec<StatusUpdate>,
        attempt: &Attempt,
    ) -> Result<IngestReport, IngestError> {
        let stub_expiry = Expiry::new(&tenant.id, Category::IdempotencyKeys, attempt.received_at, &tenant.retention);
        let applying: Vec<_> = statuses
            .iter()
            .map(|st| retry(attempt.give_up_at, "status", || self.log.apply_status(&tenant.id, st, &stub_expiry)))
            .collect();
        let results = futures::stream::iter(applying).buffered(CONCURRENCY).collect::<Vec<_>>().await;
        let mut report = IngestReport::default();
        for (st, r) in statuses.iter().zip(results) {
            match r? {
                StatusApplied::Applied => report.statuses_applied += 1,
                StatusApplied::Stale => report.statuses_stale += 1,
            }
            if let Some(code) = st.error_code {
                tracing::info!(status = st.status.as_str(), code, "delivery failed");
            }
        }
        Ok(report)
    }
}

/// The job of a message taken over from an attempt that is over: it keeps the receive time it
/// was stored with.
fn taken_over(p: &Prepared<'_>, received_at: i64) -> Queued {
    let mut queued = p.queued.clone();
    queued.job.received_at = received_at;
    queued
}

/// Runs futures, at most `CONCURRENCY` at a time, results in their order.
async fn concurrently_in_order<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    futures::stream::iter(futures).buffered(CONCURRENCY).collect().await
}

/// Runs futures, at most `CONCURRENCY` at a time, in any order.
async fn concurrently<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    futures::stream::iter(futures).buffer_unordered(CONCURRENCY).collect().await
}

/// Runs `op` until it succeeds or the attempt must give up (the SDK retries each call too;
/// this outlasts longer outages within the invocation).
async fn retry<T, E, F, Fut>(give_up_at: Instant, what: &'static str, mut op: F) -> Result<T, IngestError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: Into<IngestError>,
{
    let mut pause = Duration::from_millis(50);
    loop {
        if Instant::now() >= give_up_at {
            return Err(IngestError::OutOfTime);
        }
        match op().await.map_err(Into::into) {
            Ok(v) => return Ok(v),
            Err(e) if e.retry_is_pointless() || Instant::now() + pause >= give_up_at => return Err(e),
            Err(e) => {
                tracing::warn!(step = what, error = %e, "AWS call failed; retrying within the invocation");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::TokioClock;
    use crate::domain::{Channel, ContactId, Content, ProviderMessageId, TenantId};
    use crate::queue::MemoryQueue;
    use crate::store::messages::faulty::Faulty;
    use crate::store::messages::{InboundState, MemoryMessageLog};
    use crate::tenants::TwilioCredentials;

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

    const START_MS: i64 = 1_767_225_600_000;

    fn ingest() -> Ingest<NoDirectory, MemoryMessageLog, MemoryQueue> {
        ingest_with(NoDirectory, MemoryMessageLog::default(), MemoryQueue::default())
    }

    fn ingest_with<D, L, Q>(directory: D, log: L, queue: Q) -> Ingest<D, L, Q> {
        Ingest {
            directory,
            log,
            queue,
            pseudonyms: Pseudonymizer::new(b"k"),
            clock: Arc::new(TokioClock::starting_at(START_MS)),
        }
    }

    fn tenant() -> Arc<Tenant> {
        Arc::new(Tenant::new(TenantId::parse("acme").unwrap()))
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

    /// The key a message of tenant `acme` is stored under (with the test hash key).
    fn key(id: &str) -> String {
        keys::message_key(
            &TenantId::parse("acme").unwrap(),
            Channel::Meta,
            &Pseudonymizer::new(b"k").message_ref(Channel::Meta, id),
        )
    }

    fn keys_sent(queue: &MemoryQueue) -> Vec<String> {
        queue.sent().into_iter().map(|q| q.job.message_key).collect()
    }

    /// Stores `id` as an attempt that is still working (or not) would have left it.
    async fn stored_by_another_attempt(
        i: &Ingest<NoDirectory, MemoryMessageLog, MemoryQueue>,
        id: &str,
        lease_until_ms: i64,
    ) {
        let t = tenant();
        let m = message(id, 1);
        let key = key(id);
        let attempt = Attempt { id: "other".into(), lease_until_ms, ..Attempt::new(&t, &*i.clock) };
        let p = prepare(&t, &m, &key, "+4915112345678", "g", &attempt);
        assert_eq!(i.log.record_inbound(&p.new).await.unwrap(), Recorded::New);
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_message_is_stored_queued_and_marked_and_a_redelivery_then_costs_one_read() {
        let i = ingest();
        let report = i.tenant_updates(&tenant(), vec![message("wamid.1", 1)], vec![]).await.unwrap();
        assert_eq!(report.stored, 1);
        assert_eq!(keys_sent(&i.queue), [key("wamid.1")]);
        let state = i.log.inbound_state(&key("wamid.1")).await.unwrap().unwrap();
        assert_eq!(state.stage, Stage::Queued);

        let again = i.tenant_updates(&tenant(), vec![message("wamid.1", 1)], vec![]).await.unwrap();
        assert_eq!((again.duplicates, again.stored, again.requeued), (1, 0, 0));
        assert_eq!(i.queue.calls(), 1, "a queued message is not sent again");
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_while_the_first_delivery_is_still_at_work_waits_and_takes_over_when_its_lease_ends() {
        // GIVEN a message another attempt stored and has not queued, with 3 s of lease left
        let i = ingest();
        stored_by_another_attempt(&i, "wamid.1", START_MS + 3_000).await;
        // WHEN the provider's retry arrives (the other attempt never finishes)
        let report = i.tenant_updates(&tenant(), vec![message("wamid.1", 1)], vec![]).await.unwrap();
        // THEN it is not answered as done: it waits out the lease, then queues the message itself
        assert_eq!((report.requeued, report.duplicates), (1, 0));
        assert_eq!(keys_sent(&i.queue), [key("wamid.1")]);
        assert!(i.clock.now_ms() > START_MS + 3_000 + CLOCK_SKEW_MS, "it waited for the lease");
        assert_eq!(i.log.inbound_state(&key("wamid.1")).await.unwrap().unwrap().stage, Stage::Queued);
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_that_sees_the_first_delivery_finish_answers_without_sending() {
        let i = Arc::new(ingest());
        stored_by_another_attempt(&i, "wamid.1", START_MS + 3_000).await;
        let other = i.clone();
        // The other attempt marks it queued a second later.
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            other.log.mark_queued(&key("wamid.1")).await.unwrap();
        });
        let report = i.tenant_updates(&tenant(), vec![message("wamid.1", 1)], vec![]).await.unwrap();
        assert_eq!((report.duplicates, report.requeued), (1, 0));
        assert!(i.queue.sent().is_empty());
    }

    /// Two deliveries of one notification, each of which stored one of its messages, must not
    /// wait for each other: each sends its own first.
    #[tokio::test(start_paused = true)]
    async fn a_delivery_sends_what_it_stored_before_waiting_for_what_another_delivery_stored() {
        let i = Arc::new(ingest());
        stored_by_another_attempt(&i, "wamid.2", START_MS + 5_000).await;
        let delivery = {
            let i = i.clone();
            tokio::spawn(async move {
                i.tenant_updates(&tenant(), vec![message("wamid.1", 1), message("wamid.2", 2)], vec![]).await
            })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(keys_sent(&i.queue), [key("wamid.1")], "its own message is queued while it waits");
        // The other delivery queues its message.
        i.log.mark_queued(&key("wamid.2")).await.unwrap();
        let report = delivery.await.unwrap().unwrap();
        assert_eq!((report.stored, report.duplicates, report.requeued), (1, 1, 0));
        assert!(i.clock.now_ms() < START_MS + 5_000, "it did not wait out the other's lease");
    }

    /// FIFO order holds across a wait: a message taken over from an attempt that ran out of time
    /// is queued in its place, before the contact's later messages.
    #[tokio::test(start_paused = true)]
    async fn a_message_taken_over_after_a_wait_is_queued_before_the_later_ones() {
        let i = ingest();
        stored_by_another_attempt(&i, "wamid.1", START_MS + 2_000).await;
        let messages = vec![message("wamid.1", 1), message("wamid.2", 2), message("wamid.3", 3)];
        let report = i.tenant_updates(&tenant(), messages, vec![]).await.unwrap();
        assert_eq!((report.requeued, report.stored), (1, 2));
        assert_eq!(keys_sent(&i.queue), [key("wamid.1"), key("wamid.2"), key("wamid.3")]);
    }

    /// Two deliveries of one notification, each of which won every other message, queue all of
    /// them in send order without waiting out each other's leases.
    #[tokio::test(start_paused = true)]
    async fn deliveries_that_each_won_part_of_a_notification_queue_it_in_order_together() {
        let i = Arc::new(ingest());
        let messages: Vec<InboundMessage> = (0..6).map(|n| message(&format!("wamid.{n}"), n)).collect();
        // The other delivery stored the odd ones; it is alive and follows the same protocol.
        for n in [1, 3, 5] {
            stored_by_another_attempt(&i, &format!("wamid.{n}"), START_MS + 9_000).await;
        }
        let other = {
            let i = i.clone();
            let messages = messages.clone();
            tokio::spawn(async move {
                // It waits for each even message in turn, then queues its own.
                for n in [1, 3, 5] {
                    let before = key(&format!("wamid.{}", n - 1));
                    while i.log.inbound_state(&before).await.unwrap().is_none_or(|s| s.stage < Stage::Queued) {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    let mine = Queued {
                        job: InboundJob {
                            tenant_id: tenant().id.clone(),
                            channel: Channel::Meta,
                            message_key: key(&format!("wamid.{n}")),
                            received_at: 1,
                        },
                        group: "g".into(),
                    };
                    i.queue.send_batch(&[mine]).await.unwrap();
                    i.log.mark_queued(&key(&format!("wamid.{n}"))).await.unwrap();
                }
                drop(messages);
            })
        };
        let report = i.tenant_updates(&tenant(), messages, vec![]).await.unwrap();
        other.await.unwrap();
        assert_eq!((report.stored, report.duplicates, report.requeued), (3, 3, 0));
        let expected: Vec<String> = (0..6).map(|n| key(&format!("wamid.{n}"))).collect();
        assert_eq!(keys_sent(&i.queue), expected);
        assert!(i.clock.now_ms() < START_MS + 5_000, "nobody waited out a lease");
    }

    /// A message that could not be stored holds back the contact's later ones: none overtakes it.
    #[tokio::test(start_paused = true)]
    async fn a_contacts_later_messages_never_overtake_one_that_could_not_be_stored() {
        let i = ingest_with(
            NoDirectory,
            Faulty::failing_on(MemoryMessageLog::default(), key("wamid.1")),
            MemoryQueue::default(),
        );
        let messages = vec![message("wamid.0", 0), message("wamid.1", 1), message("wamid.2", 2)];
        assert!(i.tenant_updates(&tenant(), messages.clone(), vec![]).await.is_err());
        let sent = keys_sent(&i.queue);
        assert_eq!(sent, [key("wamid.0")], "nothing after the message that failed");
        // The provider retries once the store works again, after this attempt's lease.
        i.log.failing.store(false, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let report = i.tenant_updates(&tenant(), messages, vec![]).await.unwrap();
        assert_eq!((report.duplicates, report.stored, report.requeued), (1, 1, 1));
        let sent = keys_sent(&i.queue);
        assert_eq!(sent, [key("wamid.0"), key("wamid.1"), key("wamid.2")]);
    }

    /// Nothing starts after the attempt must stop: a take-over that comes late in the
    /// invocation stops sending at the deadline instead of running past it.
    #[tokio::test(start_paused = true)]
    async fn work_never_starts_after_the_attempt_must_stop() {
        let i =
            ingest_with(NoDirectory, Faulty::slow(MemoryMessageLog::default()), Faulty::slow(MemoryQueue::default()));
        // The first message is held by an attempt whose lease ends at 8 s.
        let t = tenant();
        let first = message("wamid.0000", 0);
        let first_key = key("wamid.0000");
        let other = Attempt { id: "other".into(), lease_until_ms: START_MS + 7_000, ..Attempt::new(&t, &*i.clock) };
        i.log.inner.record_inbound(&prepare(&t, &first, &first_key, "+4915112345678", "g", &other).new).await.unwrap();
        let messages: Vec<InboundMessage> = (0..1000).map(|n| message(&format!("wamid.{n:04}"), n)).collect();
        let started = Instant::now();
        let result = i.tenant_updates(&tenant(), messages, vec![]).await;
        assert!(result.is_err(), "it cannot finish in time");
        assert!(started.elapsed() <= DEFAULT_BUDGET - crate::aws::ANSWER_RESERVE + LATENCY, "{:?}", started.elapsed());
    }

    /// A message another attempt queued while this one waited for a later one is a duplicate,
    /// even if the lease it was stored with has run out by then.
    #[tokio::test(start_paused = true)]
    async fn a_message_queued_meanwhile_is_never_taken_over_for_an_old_lease() {
        let i = Arc::new(ingest());
        stored_by_another_attempt(&i, "wamid.1", START_MS + 1_000).await;
        stored_by_another_attempt(&i, "wamid.2", START_MS + 6_000).await;
        let other = i.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            other.log.mark_queued(&key("wamid.1")).await.unwrap();
            tokio::time::sleep(Duration::from_millis(2_500)).await;
            other.log.mark_queued(&key("wamid.2")).await.unwrap();
        });
        let report =
            i.tenant_updates(&tenant(), vec![message("wamid.1", 1), message("wamid.2", 2)], vec![]).await.unwrap();
        assert_eq!((report.duplicates, report.requeued), (2, 0));
        assert_eq!(i.queue.calls(), 0);
    }

    /// Routes `PN-A` to tenant `acme` and fails every lookup of any other number.
    struct OneGoodNumber;

    impl TenantDirectory for OneGoodNumber {
        async fn by_meta_number(&self, number: &str) -> Result<Option<Arc<Tenant>>, StoreError> {
            match number {
                "PN-A" => Ok(Some(tenant())),
                _ => Err(StoreError::Aws { operation: "GetItem route", message: "unavailable".into() }),
            }
        }
        async fn by_id(&self, _: &TenantId) -> Result<Option<Arc<Tenant>>, StoreError> {
            Ok(None)
        }
        async fn twilio_credentials(&self, _: &Tenant) -> Result<Option<Arc<TwilioCredentials>>, StoreError> {
            Ok(None)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_number_whose_lookup_fails_neither_blocks_nor_sinks_the_others_and_is_retried() {
        let i = ingest_with(OneGoodNumber, MemoryMessageLog::default(), MemoryQueue::default());
        let updates = |number: &str, id: &str| NumberUpdates {
            phone_number_id: number.into(),
            messages: vec![message(id, 1)],
            ..Default::default()
        };
        let result = i.meta(vec![updates("PN-B", "wamid.b"), updates("PN-A", "wamid.a")]).await;
        assert!(matches!(result, Err(IngestError::Store(_))), "the failing number asks for a retry");
        let sent = keys_sent(&i.queue);
        assert_eq!(sent, [key("wamid.a")], "the other number's message is stored and queued all the same");
        assert!(i.clock.now_ms() > START_MS + 5_000, "the lookup was retried within the invocation");
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_left_received_by_a_dead_attempt_is_queued_by_the_next_delivery() {
        let i = ingest();
        stored_by_another_attempt(&i, "wamid.1", START_MS - 60_000).await;
        let report = i.tenant_updates(&tenant(), vec![message("wamid.1", 1)], vec![]).await.unwrap();
        assert_eq!(report.requeued, 1);
        assert_eq!(keys_sent(&i.queue), [key("wamid.1")]);
    }

    #[tokio::test(start_paused = true)]
    async fn when_the_queue_fails_past_the_deadline_the_delivery_fails_and_the_message_stays_received() {
        let i = ingest();
        i.queue.fail_next(usize::MAX);
        let result = i.tenant_updates(&tenant(), vec![message("wamid.1", 1)], vec![]).await;
        assert!(matches!(result, Err(IngestError::Queue(_))));
        let state: InboundState = i.log.inbound_state(&key("wamid.1")).await.unwrap().unwrap();
        assert_eq!(state.stage, Stage::Received, "never marked queued without a send");
        // It kept trying until the attempt's deadline, not just once.
        assert!(i.queue.calls() > 3, "{} calls", i.queue.calls());
    }

    #[tokio::test(start_paused = true)]
    async fn a_passing_queue_failure_is_retried_within_the_attempt() {
        let i = ingest();
        i.queue.fail_next(2);
        let report = i.tenant_updates(&tenant(), vec![message("wamid.1", 1)], vec![]).await.unwrap();
        assert_eq!(report.stored, 1);
        assert_eq!(keys_sent(&i.queue).len(), 1);
    }

    const LATENCY: Duration = Duration::from_millis(10);

    impl<T: InboundQueue> InboundQueue for Faulty<T> {
        async fn send_batch(&self, jobs: &[Queued]) -> Result<Vec<usize>, QueueError> {
            self.delay().await;
            self.inner.send_batch(jobs).await
        }
    }

    /// The request pattern at AWS-like latency (10 ms a call, unlimited parallelism, virtual
    /// time): a 1,000-update notification from one contact is stored, queued in order and marked
    /// well inside the function's timeout, and its redelivery costs one round of puts.
    #[tokio::test(start_paused = true)]
    async fn a_thousand_updates_from_one_contact_fit_in_the_function_timeout_at_aws_latency() {
        let i =
            ingest_with(NoDirectory, Faulty::slow(MemoryMessageLog::default()), Faulty::slow(MemoryQueue::default()));
        let messages: Vec<InboundMessage> = (0..1000).map(|n| message(&format!("wamid.{n:04}"), n)).collect();
        let started = Instant::now();
        let report = i.tenant_updates(&tenant(), messages.clone(), vec![]).await.unwrap();
        let first = started.elapsed();
        assert_eq!(report.stored, 1000);
        let sent = keys_sent(&i.queue.inner);
        let expected: Vec<String> = (0..1000).map(|n| key(&format!("wamid.{n:04}"))).collect();
        assert_eq!(sent, expected);
        // 63 rounds of 16 puts, 100 sends one after the other, 63 rounds of marks: about 2.3 s.
        assert!(first < Duration::from_secs(3), "{first:?}");

        let started = Instant::now();
        let again = i.tenant_updates(&tenant(), messages, vec![]).await.unwrap();
        assert_eq!(again.duplicates, 1000);
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
        assert_eq!(i.queue.inner.calls(), 100, "nothing sent again");
    }

    #[tokio::test(start_paused = true)]
    async fn one_contacts_messages_are_sent_in_send_order_in_batches_and_duplicates_in_a_notification_once() {
        let i = ingest();
        let mut messages: Vec<InboundMessage> = (0..25).rev().map(|n| message(&format!("wamid.{n:02}"), n)).collect();
        messages.push(message("wamid.03", 3));
        let report = i.tenant_updates(&tenant(), messages, vec![]).await.unwrap();
        assert_eq!(report.stored, 25);
        let sent = keys_sent(&i.queue);
        let expected: Vec<String> = (0..25).map(|n| key(&format!("wamid.{n:02}"))).collect();
        assert_eq!(sent, expected);
        assert_eq!(i.queue.calls(), 3, "25 messages in batches of 10");
    }
}
