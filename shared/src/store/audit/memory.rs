//! An in-memory `AuditTable`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::AuditLog;
use crate::domain::{AuditEntry, AuditRecord, TenantId};
use crate::store::StoreError;

#[derive(Debug, Default)]
pub struct MemoryAuditLog {
    chains: Mutex<BTreeMap<TenantId, Vec<AuditRecord>>>,
}

impl AuditLog for MemoryAuditLog {
    async fn append(&self, tenant: &TenantId, entry: AuditEntry, _ttl: i64) -> Result<AuditRecord, StoreError> {
        let mut chains = self.chains.lock().unwrap_or_else(|p| p.into_inner());
        let chain = chains.entry(tenant.clone()).or_default();
        let record = AuditRecord::next(chain.last(), entry);
        chain.push(record.clone());
        Ok(record)
    }

    async fn read(&self, tenant: &TenantId, after_seq: u64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        let chains = self.chains.lock().unwrap_or_else(|p| p.into_inner());
        Ok(chains
            .get(tenant)
            .map_or_else(Vec::new, |c| c.iter().filter(|r| r.seq > after_seq).take(limit).cloned().collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn behaves_like_the_table() {
        let log = std::sync::Arc::new(MemoryAuditLog::default());
        crate::store::conformance::audit(log, &TenantId::parse("acme").unwrap()).await;
    }
}
