//! `AuditTable`: each tenant's hash-chained trail, one item per entry under `<tenant>#AUDIT`,
//! sorted by sequence number. An append is conditional on its sequence number being free, so
//! two writers cannot fork the chain: the loser reads the new head and appends after it.

pub mod dynamo;
pub mod memory;

use std::future::Future;

use crate::domain::{AuditEntry, AuditRecord, TenantId};
use crate::store::StoreError;

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
