//! The purge's reads and deletes: one month bucket of the sparse `expiry` index at a time
//! (KEYS_ONLY, plus `media_n` on messages), never a Scan. What a bucket's items leave behind in
//! the bucket (media copies, export objects) goes first: an item deleted before its objects
//! would leave them unreachable.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use futures::{StreamExt, TryStreamExt};

use crate::domain::TenantId;
use crate::store::{Item, StoreError, condition_failed, get_n, get_s, keys, n, s, s3_error};

pub const EXPIRY_INDEX: &str = "expiry";
/// Single conditional deletes in flight per bucket page.
const CONCURRENT_DELETES: usize = 16;

/// The tables that carry expiry buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Inbound and outbound messages, delivery stubs. Their bucket never changes once written,
    /// so they go in unconditional batches.
    Messages,
    /// Contacts, conversations, consent, leads, appointments, slots, export records. A contact
    /// or conversation moves to a later bucket when the customer writes again, so each delete
    /// is conditional on the item still being in the bucket the index showed.
    Contacts,
}

/// Which items of a bucket, by when their retention clock started (unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Starts {
    /// Past the retention: to delete.
    AtMost(i64),
    /// Still kept: to re-stamp.
    After(i64),
}

/// What deleting one page of a bucket removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    pub items: u64,
    pub objects: u64,
}

#[derive(Debug, Clone)]
pub struct ExpiryIndex {
    pub dynamodb: Client,
    pub s3: aws_sdk_s3::Client,
    pub messages_table: String,
    pub contacts_table: String,
    pub bucket: String,
}

impl ExpiryIndex {
    fn table(&self, table: Table) -> &str {
        match table {
            Table::Messages => &self.messages_table,
            Table::Contacts => &self.contacts_table,
        }
    }

    /// One page of a bucket's keys (from `start`) whose clocks started in `starts`, and where
    /// the next page starts.
    pub async fn page(
        &self,
        table: Table,
        bucket: &str,
        starts: Starts,
        start: Option<Item>,
    ) -> Result<(Vec<Item>, Option<Item>), StoreError> {
        let request = self
            .dynamodb
            .query()
            .table_name(self.table(table))
            .index_name(EXPIRY_INDEX)
            .expression_attribute_values(":b", s(bucket));
        let request = match starts {
            Starts::AtMost(cutoff) => request
                .key_condition_expression("exp_pk = :b AND exp_sk <= :c")
                .expression_attribute_values(":c", n(cutoff)),
            Starts::After(cutoff) => request
                .key_condition_expression("exp_pk = :b AND exp_sk > :c")
                .expression_attribute_values(":c", n(cutoff)),
        };
        let out =
            request.set_exclusive_start_key(start).send().await.map_err(|e| StoreError::aws("Query expiry", e))?;
        Ok((out.items.unwrap_or_default(), out.last_evaluated_key))
    }

    /// The objects that go with these items: media copies of messages, files of exports.
    pub async fn objects_of(&self, tenant: &TenantId, table: Table, items: &[Item]) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for item in items {
            let Some(pk) = get_s(item, "pk") else { continue };
            match table {
                Table::Messages => {
                    let media: usize = get_n(item, "media_n").unwrap_or(0);
                    if media > 0
                        && let Some((_, _, message_ref)) = keys::parse_message_key(pk)
                    {
                        out.extend((0..media).map(|i| crate::media::media_key(tenant, message_ref, i)));
                    }
                }
                Table::Contacts => {
                    if let Some(request) = get_s(item, "sk").and_then(|sk| sk.strip_prefix(keys::EXPORT_SK_PREFIX)) {
                        out.extend(self.list(&keys::export_prefix(tenant, request)).await?);
                    }
                }
            }
        }
        Ok(out)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let pages = self.s3.list_objects_v2().bucket(&self.bucket).prefix(prefix).into_paginator().send();
        let pages: Vec<_> = pages.try_collect().await.map_err(|e| s3_error("ListObjectsV2", e))?;
        Ok(pages.iter().flat_map(|p| p.contents()).filter_map(|o| o.key().map(str::to_owned)).collect())
    }

    /// Deletes one page of a bucket's items (after their objects).
    pub async fn delete(
        &self,
        tenant: &TenantId,
        table: Table,
        bucket: &str,
        items: Vec<Item>,
    ) -> Result<Removed, StoreError> {
        let doomed = self.objects_of(tenant, table, &items).await?;
        let objects = crate::store::objects::delete_objects(&self.s3, &self.bucket, doomed).await? as u64;
        let items = match table {
            Table::Messages => {
                let keys = items.into_iter().filter_map(|i| Some(Item::from([("pk".into(), i.get("pk")?.clone())])));
                crate::store::batch::delete_keys(&self.dynamodb, &self.messages_table, keys.collect()).await? as u64
            }
            Table::Contacts => {
                let deletes: Vec<_> = items
                    .iter()
                    .filter_map(|i| Some((base_key(i)?, i.get("exp_sk")?.clone())))
                    .map(|(key, start)| self.delete_if_in(key, bucket, start))
                    .collect();
                futures::stream::iter(deletes)
                    .buffer_unordered(CONCURRENT_DELETES)
                    .try_fold(0, |n, gone| async move { Ok(n + u64::from(gone)) })
                    .await?
            }
        };
        Ok(Removed { items, objects })
    }

    /// Deletes a ContactsTable item only if its retention clock has not restarted since the
    /// index showed it (same bucket, same start).
    async fn delete_if_in(&self, key: Item, bucket: &str, start: AttributeValue) -> Result<bool, StoreError> {
        let result = self
            .dynamodb
            .delete_item()
            .table_name(&self.contacts_table)
            .set_key(Some(key))
            .condition_expression("exp_pk = :b AND exp_sk = :s")
            .expression_attribute_values(":b", s(bucket))
            .expression_attribute_values(":s", start)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(StoreError::aws("DeleteItem expired", e)),
        }
    }

    /// Moves the TTL stamps of one page out to `retention_days` past each item's start (never
    /// earlier than they are).
    pub async fn restamp(&self, table: Table, items: Vec<Item>, retention_days: u32) -> Result<u64, StoreError> {
        let name = self.table(table).to_owned();
        let keys: Vec<(Item, i64)> = items
            .iter()
            .filter_map(|i| {
                let key = match table {
                    Table::Messages => Item::from([("pk".into(), i.get("pk")?.clone())]),
                    Table::Contacts => base_key(i)?,
                };
                Some((key, super::plan::ttl_for(get_n(i, "exp_sk")?, retention_days)))
            })
            .collect();
        let updates: Vec<_> = keys
            .into_iter()
            .map(|(key, ttl)| {
                let name = name.clone();
                async move {
                    let result = self
                        .dynamodb
                        .update_item()
                        .table_name(name)
                        .set_key(Some(key))
                        .update_expression("SET expires_at = :t")
                        .condition_expression("attribute_exists(exp_pk) AND expires_at < :t")
                        .expression_attribute_values(":t", n(ttl))
                        .send()
                        .await;
                    match result {
                        Ok(_) => Ok(1),
                        Err(e) if condition_failed(&e) => Ok(0),
                        Err(e) => Err(StoreError::aws("UpdateItem TTL", e)),
                    }
                }
            })
            .collect();
        futures::stream::iter(updates)
            .buffer_unordered(CONCURRENT_DELETES)
            .try_fold(0, |n, done| async move { Ok(n + done) })
            .await
    }
}

/// The table key (`pk`, `sk`) of a ContactsTable index entry.
fn base_key(item: &Item) -> Option<Item> {
    Some(Item::from([("pk".into(), item.get("pk")?.clone()), ("sk".into(), item.get("sk")?.clone())]))
}
