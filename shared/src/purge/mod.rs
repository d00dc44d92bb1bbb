//! The retention purge: for every tenant and retention category, deletes what is past the
//! tenant's *current* setting, through the month buckets of the sparse `expiry` index, sorted by
//! when each item's retention clock started (never a Scan), so its cost follows what expired plus
//! a constant per tenant, category and month read.
//!
//! A run stops cleanly before its deadline (or after a given number of delete batches) and the
//! next run goes on from the cursors: deletes are idempotent and a cursor only moves past a month
//! once every item of that month is gone, so a run interrupted anywhere, then run again, ends in
//! the state of an uninterrupted one.
//!
//! Each tenant's run ends with a `PurgeRun` audit entry (counts per category) and an anchor of
//! the chain's head in the Object Lock bucket; audit entries past their retention are removed
//! from the oldest on, after the entry before the first kept one is anchored. Being the one job
//! that visits every tenant daily, it also sends again the jobs of privacy requests left stuck
//! (`privacy::intake::resend_stuck`).

pub mod cursor;
pub mod index;
pub mod plan;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use futures::StreamExt;
use serde::Serialize;

use self::index::{ExpiryIndex, Removed, Starts, Table};
use self::plan::{Cursor, Month};
use crate::clock::utc_month;
use crate::domain::RecordId;
use crate::domain::{Anchor, AnchorKind, AuditAction, AuditEntry, TenantId};
use crate::privacy::intake;
use crate::privacy::queue::SqsPrivacyQueue;
use crate::privacy::requests::{PrivacyRequest, RequestKind, RequestSource, RequestState};
use crate::privacy::retention::{
    CANCELLED_TENANT_DAYS, Category, DAY, MAX_RETENTION_DAYS, RetentionDays, TTL_GRACE_DAYS, audit_ttl,
};
use crate::store::audit::{AnchorStore, AuditLog, DynamoAuditLog};
use crate::store::requests::{DynamoPrivacyRequests, PrivacyRequests};
use crate::store::{StoreError, keys};
use crate::tenants::records::{self, ProfileItem};
use crate::tenants::{DynamoTenantCatalog, TenantCatalog};

pub const ACTOR: &str = "retention-purge";
/// Tenants purged at the same time.
const CONCURRENT_TENANTS: usize = 4;
/// Items per delete batch (one `BatchWriteItem`).
const BATCH: usize = crate::store::batch::BATCH;
/// Audit entries looked at per round of trimming.
const AUDIT_PAGE: usize = 500;

/// The categories kept in expiry buckets, and the tables holding them. (`Audit` in `AuditTable`
/// is trimmed from the oldest end of the chain; in ContactsTable it holds erasure tombstones.)
pub fn tables(category: Category) -> &'static [Table] {
    match category {
        Category::Messages => &[Table::Messages, Table::Contacts],
        Category::Leads | Category::Appointments | Category::Exports | Category::Audit => &[Table::Contacts],
        Category::Logs | Category::IdempotencyKeys => &[Table::Messages],
    }
}

pub struct Purger {
    pub index: ExpiryIndex,
    pub tenants_table: String,
    pub catalog: DynamoTenantCatalog,
    pub audit: DynamoAuditLog,
    pub anchors: AnchorStore,
    /// Where the wipe of a tenant cancelled long enough ago is requested.
    pub requests: DynamoPrivacyRequests,
    pub queue: SqsPrivacyQueue,
}

/// Where a purge works: the names the template gives its resources.
#[derive(Debug, Clone)]
pub struct PurgeResources {
    pub messages_table: String,
    pub contacts_table: String,
    pub tenants_table: String,
    pub audit_table: String,
    pub data_bucket: String,
    pub anchor_bucket: String,
    pub privacy_queue_url: String,
}

impl Purger {
    pub fn new(aws: &crate::aws::AwsClients, names: PurgeResources) -> Self {
        let (dynamodb, s3) = (aws.dynamodb.clone(), aws.s3());
        Self {
            index: ExpiryIndex {
                dynamodb: dynamodb.clone(),
                s3: s3.clone(),
                messages_table: names.messages_table,
                contacts_table: names.contacts_table,
                bucket: names.data_bucket,
            },
            catalog: DynamoTenantCatalog::new(dynamodb.clone(), names.tenants_table.clone()),
            audit: DynamoAuditLog::new(dynamodb.clone(), names.audit_table),
            anchors: AnchorStore::new(s3, names.anchor_bucket),
            requests: DynamoPrivacyRequests::new(dynamodb, names.tenants_table.clone()),
            queue: SqsPrivacyQueue::new(aws.sqs.clone(), names.privacy_queue_url),
            tenants_table: names.tenants_table,
        }
    }
}

#[derive(Debug, Clone)]
pub struct PurgeOptions {
    /// The run's "now" (the scheduled event's time), unix ms.
    pub now_ms: i64,
    /// When to stop starting new work.
    pub deadline: Instant,
    /// Stop after this many delete batches (operators; tests that interrupt a run).
    pub max_batches: Option<u64>,
    /// Count what would go, change nothing.
    pub dry_run: bool,
}

/// One tenant's run: what went (or would go), per category.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TenantPurge {
    pub tenant: String,
    pub counts: BTreeMap<String, u64>,
    /// Every bucket due was reached (false: the next run goes on).
    pub complete: bool,
    /// Why the tenant's run failed (no personal data: store errors name operations).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PurgeReport {
    pub dry_run: bool,
    pub tenants: Vec<TenantPurge>,
}

impl PurgeReport {
    pub fn complete(&self) -> bool {
        self.tenants.iter().all(|t| t.complete)
    }

    pub fn failed(&self) -> usize {
        self.tenants.iter().filter(|t| t.error.is_some()).count()
    }

    pub fn total(&self, key: &str) -> u64 {
        self.tenants.iter().filter_map(|t| t.counts.get(key)).sum()
    }
}

/// The stopping rule shared by every task of a run.
struct Budget {
    deadline: Instant,
    batches: Option<AtomicU64>,
}

impl Budget {
    /// Whether one more batch may start (and counts it).
    fn take(&self) -> bool {
        if Instant::now() >= self.deadline {
            return false;
        }
        self.batches
            .as_ref()
            .is_none_or(|b| b.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok())
    }
}

fn add(counts: &mut BTreeMap<String, u64>, key: &str, n: u64) {
    if n > 0 {
        *counts.entry(key.to_owned()).or_default() += n;
    }
}

impl Purger {
    pub async fn run(&self, options: &PurgeOptions) -> Result<PurgeReport, StoreError> {
        let budget = Budget { deadline: options.deadline, batches: options.max_batches.map(AtomicU64::new) };
        let tenants = self.catalog.tenant_ids().await?;
        // Collected first: a lazily mapped stream of borrowing futures is not provably `Send`.
        let runs: Vec<_> = tenants.iter().map(|t| self.purge_tenant(t, options, &budget)).collect();
        let tenants = futures::stream::iter(runs).buffer_unordered(CONCURRENT_TENANTS).collect::<Vec<_>>().await;
        let mut report = PurgeReport { dry_run: options.dry_run, tenants };
        report.tenants.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        Ok(report)
    }

    async fn purge_tenant(&self, tenant: &TenantId, options: &PurgeOptions, budget: &Budget) -> TenantPurge {
        let mut run = TenantPurge { tenant: tenant.to_string(), ..TenantPurge::default() };
        if Instant::now() >= options.deadline {
            // Out of time before this tenant began: not even its profile is read.
            return run;
        }
        match self.purge_tenant_inner(tenant, options, budget, &mut run).await {
            Ok(complete) => run.complete = complete,
            Err(e) => {
                tracing::error!(tenant = %tenant, error = %e, "purge of a tenant failed; the next run goes on");
                run.error = Some(e.to_string());
            }
        }
        run
    }

    async fn purge_tenant_inner(
        &self,
        tenant: &TenantId,
        options: &PurgeOptions,
        budget: &Budget,
        run: &mut TenantPurge,
    ) -> Result<bool, StoreError> {
        let client = &self.index.dynamodb;
        let Some(profile) = records::read_profile(client, &self.tenants_table, tenant).await? else {
            return Ok(true);
        };
        let now_secs = options.now_ms.div_euclid(1000);
        if let Some(since) = profile.suspended_at
            && now_secs >= since + CANCELLED_TENANT_DAYS * DAY
        {
            // Not the tenant's purge failing if the queue is down: the next run asks again.
            let requested = options.dry_run || self.request_wipe(tenant, since, options.now_ms).await.is_ok();
            add(&mut run.counts, if requested { "wipe_requested" } else { "wipe_request_failed" }, 1);
        }
        self.resend_stuck_requests(tenant, options, run).await;
        // Unknown for a profile older than the field: as far back as any retention reaches.
        let first_month =
            utc_month(profile.created_at.unwrap_or(now_secs - (MAX_RETENTION_DAYS + TTL_GRACE_DAYS + 1) * DAY));
        let mut cursors = cursor::read_all(client, &self.tenants_table, tenant).await?;
        let mut complete = true;
        let mut failure = None;
        for category in Category::ALL {
            let days = profile.retention.days(category);
            let stored = cursors.remove(&category);
            let (plan, mut cur) = plan::plan(stored, first_month, days, now_secs);
            let outcome =
                self.category(tenant, category, &plan, &mut cur, now_secs, options.dry_run, budget, run).await;
            // A first cursor is written even when nothing moved: it remembers the setting the
            // TTL stamps assume, so a later lengthening is noticed.
            if !options.dry_run && stored != Some(cur) {
                cursor::write(client, &self.tenants_table, tenant, category, &cur).await?;
            }
            match outcome {
                Ok(true) => {}
                Ok(false) => {
                    complete = false;
                    break;
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        if complete {
            complete = self.trim_audit(tenant, &profile.retention, now_secs, options.dry_run, budget, run).await?;
        }
        if !options.dry_run {
            self.record_run(tenant, &profile, options.now_ms, complete, run).await?;
        }
        Ok(complete)
    }

    /// One category's due buckets, then its re-stamps. `Ok(false)`: stopped by the budget.
    #[allow(clippy::too_many_arguments)]
    async fn category(
        &self,
        tenant: &TenantId,
        category: Category,
        plan: &plan::Plan,
        cursor: &mut Cursor,
        now_secs: i64,
        dry_run: bool,
        budget: &Budget,
        run: &mut TenantPurge,
    ) -> Result<bool, StoreError> {
        for month in plan.purge.clone().into_iter().flatten() {
            let work = Work::Delete { dry_run, starts: Starts::AtMost(plan.cutoff) };
            let (removed, done) = self.month(tenant, category, month, work, budget).await?;
            add(&mut run.counts, category.as_str(), removed.items);
            add(&mut run.counts, "objects", removed.objects);
            if !done {
                return Ok(false);
            }
            cursor.purged_through(month, plan.cutoff);
        }
        if dry_run {
            return Ok(true);
        }
        for month in plan.restamp.clone().into_iter().flatten() {
            let work = Work::Restamp { starts: Starts::After(plan.cutoff), to_days: plan.restamp_to };
            let (removed, done) = self.month(tenant, category, month, work, budget).await?;
            add(&mut run.counts, "restamped", removed.items);
            if !done {
                return Ok(false);
            }
            cursor.restamped_through(month, now_secs);
        }
        Ok(true)
    }

    /// One month of one category: every table and shard (shards at once). `done`: nothing left.
    async fn month(
        &self,
        tenant: &TenantId,
        category: Category,
        month: Month,
        work: Work,
        budget: &Budget,
    ) -> Result<(Removed, bool), StoreError> {
        let mut total = Removed::default();
        let mut done = true;
        for table in tables(category) {
            let shards = (0..keys::SHARDS).map(|shard| {
                let bucket = keys::expiry_bucket(tenant, category, month, shard);
                async move { self.bucket(tenant, *table, &bucket, work, budget).await }
            });
            for result in futures::future::join_all(shards).await {
                let (removed, finished) = result?;
                total.items += removed.items;
                total.objects += removed.objects;
                done &= finished;
            }
        }
        Ok((total, done))
    }

    /// Every page of one bucket. `done`: the bucket was read to its end.
    async fn bucket(
        &self,
        tenant: &TenantId,
        table: Table,
        bucket: &str,
        work: Work,
        budget: &Budget,
    ) -> Result<(Removed, bool), StoreError> {
        let mut total = Removed::default();
        let mut start = None;
        loop {
            let starts = match work {
                Work::Delete { starts, .. } | Work::Restamp { starts, .. } => starts,
            };
            let (items, next) = self.index.page(table, bucket, starts, start).await?;
            let mut items = items.into_iter().peekable();
            while items.peek().is_some() {
                if !budget.take() {
                    return Ok((total, false));
                }
                let batch: Vec<_> = items.by_ref().take(BATCH).collect();
                match work {
                    Work::Delete { dry_run: true, .. } => {
                        total.items += batch.len() as u64;
                        total.objects += self.index.objects_of(tenant, table, &batch).await?.len() as u64;
                    }
                    Work::Delete { dry_run: false, .. } => {
                        let removed = self.index.delete(tenant, table, bucket, batch).await?;
                        total.items += removed.items;
                        total.objects += removed.objects;
                    }
                    Work::Restamp { to_days, .. } => total.items += self.index.restamp(table, batch, to_days).await?,
                }
            }
            match next {
                Some(key) => start = Some(key),
                None => return Ok((total, true)),
            }
        }
    }

    /// Removes audit entries past the audit retention, oldest first, never the head; the entry
    /// before the first kept one is anchored first, so the shortened chain still verifies.
    async fn trim_audit(
        &self,
        tenant: &TenantId,
        retention: &RetentionDays,
        now_secs: i64,
        dry_run: bool,
        budget: &Budget,
        run: &mut TenantPurge,
    ) -> Result<bool, StoreError> {
        let days = retention.days(Category::Audit);
        let before_ms = plan::cutoff(now_secs, days) * 1000;
        loop {
            let old = self.audit.older_than(tenant, before_ms, AUDIT_PAGE).await?;
            if old.is_empty() {
                return Ok(true);
            }
            if dry_run {
                add(&mut run.counts, "audit_entries", old.len() as u64);
                return Ok(true);
            }
            if !budget.take() {
                return Ok(false);
            }
            let last = old.last().expect("not empty");
            let start = Anchor { seq: last.seq, hash: last.hash.clone(), kind: AnchorKind::Start };
            self.anchors.put(tenant, &start, now_secs, days).await?;
            let seqs: Vec<u64> = old.iter().map(|r| r.seq).collect();
            let removed = self.audit.delete(tenant, &seqs).await?;
            add(&mut run.counts, "audit_entries", removed as u64);
            if old.len() < AUDIT_PAGE {
                return Ok(true);
            }
        }
    }

    /// A tenant cancelled `CANCELLED_TENANT_DAYS` ago: its wipe, requested once per cancellation
    /// (the request id names it), queued again by the next run if the queue refused it.
    async fn request_wipe(&self, tenant: &TenantId, since: i64, now_ms: i64) -> Result<(), StoreError> {
        let id = RecordId::parse(&format!("cancel-{since}")).map_err(|e| StoreError::corrupt("cancellation", e))?;
        let source = RequestSource::Operator { actor: ACTOR.into() };
        let record = PrivacyRequest::received(tenant.clone(), id, RequestKind::Wipe, source, now_ms, None);
        let submitted = intake::submit(&self.requests, &self.queue, &record).await.map_err(|e| {
            tracing::warn!(tenant = %tenant, error = %e, "cancelled tenant's wipe not requested; the next run asks again");
            StoreError::Aws { operation: "request wipe", message: e.to_string() }
        })?;
        if submitted.queued_now {
            tracing::info!(tenant = %tenant, "cancelled tenant's wipe requested");
        }
        Ok(())
    }

    /// Privacy requests whose job was lost (`intake::resend_stuck`) get it again, so a request
    /// never waits on an operator to notice a dead letter; those that wait for an operator
    /// (`failed`) are counted and logged as errors every day until someone acts. A failure
    /// here is logged, not the tenant's purge failing: the next run tries again.
    async fn resend_stuck_requests(&self, tenant: &TenantId, options: &PurgeOptions, run: &mut TenantPurge) {
        let sweep = if options.dry_run {
            let before = options.now_ms - intake::STUCK_AFTER_MS;
            self.requests.list(tenant).await.map(|all| intake::Sweep {
                resent: all.iter().filter(|r| r.is_stuck(before)).count() as u64,
                resend_failed: 0,
                failed: all.iter().filter(|r| r.state == RequestState::Failed).count() as u64,
            })
        } else {
            intake::resend_stuck(&self.requests, &self.queue, tenant, options.now_ms)
                .await
                .map_err(|e| StoreError::Aws { operation: "resend stuck privacy requests", message: e.to_string() })
        };
        match sweep {
            Ok(sweep) => {
                add(&mut run.counts, "requests_resent", sweep.resent);
                add(&mut run.counts, "requests_failed", sweep.failed);
                add(&mut run.counts, "requests_resend_failed", sweep.resend_failed);
                if sweep.failed > 0 {
                    tracing::error!(tenant = %tenant, failed = sweep.failed, "privacy requests wait for an operator");
                }
            }
            Err(e) => tracing::warn!(tenant = %tenant, error = %e, "stuck privacy requests not sent again"),
        }
    }

    /// The run's audit entry, then an anchor of the chain's head.
    async fn record_run(
        &self,
        tenant: &TenantId,
        profile: &ProfileItem,
        now_ms: i64,
        complete: bool,
        run: &mut TenantPurge,
    ) -> Result<(), StoreError> {
        let mut counts = run.counts.clone();
        if !complete {
            counts.insert("incomplete".into(), 1);
        }
        let entry =
            AuditEntry { at_ms: now_ms, action: AuditAction::PurgeRun, actor: ACTOR.into(), subject: None, counts };
        let now_secs = now_ms.div_euclid(1000);
        let head = self.audit.append(tenant, entry, audit_ttl(now_secs)).await?;
        let anchor = Anchor { seq: head.seq, hash: head.hash, kind: AnchorKind::Head };
        self.anchors.put(tenant, &anchor, now_secs, profile.retention.days(Category::Audit)).await
    }
}

#[derive(Debug, Clone, Copy)]
enum Work {
    Delete { dry_run: bool, starts: Starts },
    Restamp { starts: Starts, to_days: u32 },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bucketed_category_has_a_table_and_the_budget_counts_batches() {
        for c in Category::ALL {
            assert!(!tables(c).is_empty(), "{c:?}");
        }
        let far = Instant::now() + std::time::Duration::from_secs(60);
        let budget = Budget { deadline: far, batches: Some(AtomicU64::new(2)) };
        assert!(budget.take() && budget.take());
        assert!(!budget.take(), "the third batch is refused");
        let over = Budget { deadline: Instant::now(), batches: None };
        assert!(!over.take(), "past the deadline");
    }
}
