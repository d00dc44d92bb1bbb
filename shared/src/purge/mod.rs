//! The retention purge: for every tenant and retention category, deletes what is past the
//! tenant's *current* setting, through the day buckets of the sparse `expiry` index (never a
//! Scan), so its cost follows what expired plus a constant per tenant, category and day.
//!
//! A run stops cleanly before its deadline (or after a given number of delete batches) and the
//! next run goes on from the cursors: deletes are idempotent and a cursor only moves past a day
//! once every item of that day is gone, so a run interrupted anywhere, then run again, ends in
//! the state of an uninterrupted one.
//!
//! Each tenant's run ends with a `PurgeRun` audit entry (counts per category) and an anchor of
//! the chain's head in the Object Lock bucket; audit entries past their retention are removed
//! from the oldest on, after the entry before the first kept one is anchored.

pub mod cursor;
pub mod index;
pub mod plan;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use futures::StreamExt;
use serde::Serialize;

use self::index::{ExpiryIndex, Removed, Table};
use self::plan::{Cursor, Day, day_of};
use crate::domain::{Anchor, AuditAction, AuditEntry, TenantId};
use crate::privacy::retention::{Category, DAY, RetentionDays, audit_ttl};
use crate::store::audit::{AnchorStore, AuditLog, DynamoAuditLog};
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

/// The categories kept in expiry buckets, and the tables holding them. (`Audit` is trimmed from
/// the oldest end of the chain instead.)
pub fn tables(category: Category) -> &'static [Table] {
    match category {
        Category::Messages => &[Table::Messages, Table::Contacts],
        Category::Leads | Category::Appointments | Category::Exports => &[Table::Contacts],
        Category::Logs | Category::IdempotencyKeys => &[Table::Messages],
        Category::Audit => &[],
    }
}

pub struct Purger {
    pub index: ExpiryIndex,
    pub tenants_table: String,
    pub catalog: DynamoTenantCatalog,
    pub audit: DynamoAuditLog,
    pub anchors: AnchorStore,
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
        let first_day = day_of(profile.created_at.unwrap_or(profile.updated_at));
        let mut cursors = cursor::read_all(client, &self.tenants_table, tenant).await?;
        let mut complete = true;
        let mut failure = None;
        for category in Category::ALL.into_iter().filter(|c| !tables(*c).is_empty()) {
            let days = profile.retention.days(category);
            let (plan, mut cur) = plan::plan(cursors.remove(&category), first_day, days, now_secs);
            let before = cur;
            let outcome =
                self.category(tenant, category, &plan, &mut cur, now_secs, options.dry_run, budget, run).await;
            if !options.dry_run && cur != before {
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
        for day in plan.purge.clone().into_iter().flatten() {
            let (removed, done) = self.day(tenant, category, day, Work::Delete { dry_run }, budget).await?;
            add(&mut run.counts, category.as_str(), removed.items);
            add(&mut run.counts, "objects", removed.objects);
            if !done {
                return Ok(false);
            }
            cursor.purged_through(day);
        }
        if dry_run {
            return Ok(true);
        }
        let today = day_of(now_secs);
        for day in plan.restamp.clone().into_iter().flatten() {
            let ttl = plan::ttl_for(day, plan.restamp_to);
            let (removed, done) = self.day(tenant, category, day, Work::Restamp { ttl }, budget).await?;
            add(&mut run.counts, "restamped", removed.items);
            if !done {
                return Ok(false);
            }
            cursor.restamped_through(day, today);
        }
        Ok(true)
    }

    /// One day of one category: every table and shard (shards at once). `done`: nothing left.
    async fn day(
        &self,
        tenant: &TenantId,
        category: Category,
        day: Day,
        work: Work,
        budget: &Budget,
    ) -> Result<(Removed, bool), StoreError> {
        let date = crate::clock::utc_day(day * DAY);
        let mut total = Removed::default();
        let mut done = true;
        for table in tables(category) {
            let shards = (0..keys::SHARDS).map(|shard| {
                let bucket = keys::expiry_bucket(tenant, category, &date, shard);
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
            let (items, next) = self.index.page(table, bucket, start).await?;
            let mut items = items.into_iter().peekable();
            while items.peek().is_some() {
                if !budget.take() {
                    return Ok((total, false));
                }
                let batch: Vec<_> = items.by_ref().take(BATCH).collect();
                match work {
                    Work::Delete { dry_run: true } => {
                        total.items += batch.len() as u64;
                        total.objects += self.index.objects_of(tenant, table, &batch).await?.len() as u64;
                    }
                    Work::Delete { dry_run: false } => {
                        let removed = self.index.delete(tenant, table, bucket, batch).await?;
                        total.items += removed.items;
                        total.objects += removed.objects;
                    }
                    Work::Restamp { ttl } => total.items += self.index.restamp(table, batch, ttl).await?,
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
        let before_ms = (plan::last_expired_day(now_secs, days) + 1) * DAY * 1000;
        loop {
            let old = self.audit.older_than(tenant, before_ms, AUDIT_PAGE).await?;
            if old.is_empty() {
                return Ok(true);
            }
            if dry_run {
                add(&mut run.counts, Category::Audit.as_str(), old.len() as u64);
                return Ok(true);
            }
            if !budget.take() {
                return Ok(false);
            }
            let last = old.last().expect("not empty");
            self.anchors.put(tenant, &Anchor { seq: last.seq, hash: last.hash.clone() }, now_secs, days).await?;
            let seqs: Vec<u64> = old.iter().map(|r| r.seq).collect();
            let removed = self.audit.delete(tenant, &seqs).await?;
            add(&mut run.counts, Category::Audit.as_str(), removed as u64);
            if old.len() < AUDIT_PAGE {
                return Ok(true);
            }
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
        let anchor = Anchor { seq: head.seq, hash: head.hash };
        self.anchors.put(tenant, &anchor, now_secs, profile.retention.days(Category::Audit)).await
    }
}

#[derive(Debug, Clone, Copy)]
enum Work {
    Delete { dry_run: bool },
    Restamp { ttl: i64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bucketed_category_has_a_table_and_the_budget_counts_batches() {
        for c in Category::ALL {
            assert_eq!(tables(c).is_empty(), c == Category::Audit, "{c:?}");
        }
        let far = Instant::now() + std::time::Duration::from_secs(60);
        let budget = Budget { deadline: far, batches: Some(AtomicU64::new(2)) };
        assert!(budget.take() && budget.take());
        assert!(!budget.take(), "the third batch is refused");
        let over = Budget { deadline: Instant::now(), batches: None };
        assert!(!over.take(), "past the deadline");
    }
}
