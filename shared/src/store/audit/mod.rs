//! `AuditTable`: each tenant's hash-chained trail, one item per entry under `<tenant>#AUDIT`,
//! sorted by sequence number. An append is conditional on its sequence number being free, so
//! two writers cannot fork the chain: the loser reads the new head and appends after it.

pub mod anchor;
pub mod dynamo;
pub mod memory;

use std::future::Future;

use crate::domain::{AuditEntry, AuditRecord, TenantId};
use crate::store::StoreError;

pub use anchor::AnchorStore;
pub use dynamo::DynamoAuditLog;
pub use memory::MemoryAuditLog;

/// How often an append retries after losing the race for a sequence number.
pub const APPEND_ATTEMPTS: usize = 16;

pub trait AuditLog: Send + Sync {
    /// Appends `entry` after the current head; `ttl` is the item's TTL backstop (unix seconds).
    fn append(
        &self,
        tenant: &TenantId,
        entry: AuditEntry,
        ttl: i64,
    ) -> impl Future<Output = Result<AuditRecord, StoreError>> + Send;
    /// Entries after `after_seq`, in order, at most `limit`.
    fn read(
        &self,
        tenant: &TenantId,
        after_seq: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<AuditRecord>, StoreError>> + Send;
}

/// A tenant's whole stored chain, in order.
pub async fn read_chain(log: &impl AuditLog, tenant: &TenantId) -> Result<Vec<AuditRecord>, StoreError> {
    const PAGE: usize = 1000;
    let mut out: Vec<AuditRecord> = Vec::new();
    loop {
        let after = out.last().map_or(0, |r| r.seq);
        let page = log.read(tenant, after, PAGE).await?;
        let full = page.len() == PAGE;
        out.extend(page);
        if !full {
            return Ok(out);
        }
    }
}

/// Recomputes a tenant's stored chain and checks it against its anchors: `Ok(Ok(entries))`
/// when intact, `Ok(Err(break))` naming the first bad entry, `Err` when it cannot be read.
pub async fn verify_tenant(
    log: &impl AuditLog,
    anchors: &AnchorStore,
    tenant: &TenantId,
) -> Result<Result<u64, crate::domain::audit::ChainBreak>, StoreError> {
    let chain = read_chain(log, tenant).await?;
    let anchors = anchors.list(tenant).await?;
    Ok(crate::domain::audit::verify_anchored(&chain, &anchors))
}
