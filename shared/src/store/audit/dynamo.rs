//! The DynamoDB adapter of `AuditTable`.

use aws_sdk_dynamodb::Client;
use serde::{Deserialize, Serialize};

use super::{APPEND_ATTEMPTS, AuditLog};
use crate::domain::{AuditEntry, AuditRecord, TenantId};
use crate::store::{StoreError, condition_failed, from_item, keys, n, s, to_item};

#[derive(Debug, Clone)]
pub struct DynamoAuditLog {
    client: Client,
    table: String,
}

impl DynamoAuditLog {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    async fn head(&self, tenant: &TenantId) -> Result<Option<AuditRecord>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(keys::audit_pk(tenant)))
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::aws("Query audit head", e))?;
        out.items.unwrap_or_default().into_iter().next().map(record_of).transpose()
    }

    /// The oldest entries, in order, as long as they were written before `before_ms` (the
    /// retention's reach); at most `limit`.
    pub async fn older_than(
        &self,
        tenant: &TenantId,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let Some(head) = self.head(tenant).await? else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for record in self.read(tenant, 0, limit).await? {
            // The head stays, whatever its age: a chain emptied would start again at 1.
            if record.entry.at_ms >= before_ms || record.seq >= head.seq {
                break;
            }
            out.push(record);
        }
        Ok(out)
    }

    /// Deletes the entries with these sequence numbers (the retention's oldest ones).
    pub async fn delete(&self, tenant: &TenantId, seqs: &[u64]) -> Result<usize, StoreError> {
        let keys = seqs
            .iter()
            .map(|seq| {
                crate::store::Item::from([("pk".to_owned(), s(keys::audit_pk(tenant))), ("seq".to_owned(), n(*seq))])
            })
            .collect();
        crate::store::batch::delete_keys(&self.client, &self.table, keys).await
    }
}

impl DynamoAuditLog {
    /// The next record after the current head and the conditional put that appends it, for a
    /// `TransactWriteItems` that must append exactly when its other writes happen (a privacy
    /// request's completion). A cancelled transaction whose put lost the race for the sequence
    /// number is retried with a fresh call.
    pub async fn prepare_append(
        &self,
        tenant: &TenantId,
        entry: AuditEntry,
        ttl: i64,
    ) -> Result<(AuditRecord, aws_sdk_dynamodb::types::Put), StoreError> {
        let record = AuditRecord::next(self.head(tenant).await?.as_ref(), entry);
        let item = AuditItem {
            pk: keys::audit_pk(tenant),
            seq: record.seq,
            entry: record.entry.clone(),
            prev_hash: record.prev_hash.clone(),
            hash: record.hash.clone(),
            expires_at: ttl,
        };
        let put = aws_sdk_dynamodb::types::Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(&item)?))
            .condition_expression("attribute_not_exists(seq)")
            .build()
            .map_err(|e| StoreError::corrupt("audit put", e))?;
        Ok((record, put))
    }
}

#[derive(Serialize, Deserialize)]
struct AuditItem {
    pk: String,
    seq: u64,
    #[serde(flatten)]
    entry: AuditEntry,
    prev_hash: String,
    hash: String,
    expires_at: i64,
}

fn record_of(item: crate::store::Item) -> Result<AuditRecord, StoreError> {
    let i: AuditItem = from_item("audit entry", item)?;
    Ok(AuditRecord { seq: i.seq, entry: i.entry, prev_hash: i.prev_hash, hash: i.hash })
}

impl AuditLog for DynamoAuditLog {
    async fn append(&self, tenant: &TenantId, entry: AuditEntry, ttl: i64) -> Result<AuditRecord, StoreError> {
        for _ in 0..APPEND_ATTEMPTS {
            let (record, put) = self.prepare_append(tenant, entry.clone(), ttl).await?;
            let result = self
                .client
                .put_item()
                .table_name(put.table_name())
                .set_item(Some(put.item().clone()))
                .condition_expression("attribute_not_exists(seq)")
                .send()
                .await;
            match result {
                Ok(_) => return Ok(record),
                // Another writer took this sequence number: read the new head and go again.
                Err(e) if condition_failed(&e) => continue,
                Err(e) => return Err(StoreError::aws("PutItem audit", e)),
            }
        }
        Err(StoreError::Conflict("audit append kept losing the race for the next sequence number".into()))
    }

    async fn read(&self, tenant: &TenantId, after_seq: u64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND seq > :after")
            .expression_attribute_values(":pk", s(keys::audit_pk(tenant)))
            .expression_attribute_values(":after", n(after_seq))
            .limit(limit.clamp(1, 1000) as i32)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::aws("Query audit", e))?;
        out.items.unwrap_or_default().into_iter().map(record_of).collect()
    }
}
