//! Tenant wipe (`shop/redact`, a cancelled tenant): every item and object of one tenant.
//!
//! - Objects: everything under `<tenant>/` in the data bucket (listed 1,000 at a time).
//! - `RoutesTable`: the routes the profile claims (deleted only while they still name the tenant).
//! - `MessagesTable` and `ContactsTable`: their keys are hashes on `pk` (no prefix Query), so
//!   the items are found through the `expiry` month buckets every personal-data item carries:
//!   each month from the tenant's first (`created_at` on its profile, a day early for clock
//!   skew) to this one, each retention category in the tables that hold it, each shard. The
//!   cost is the tenant's items (Query pages of keys, batch deletes of 25) plus a constant per
//!   month of the tenant's life (the categories' tables × `SHARDS` small Queries, run
//!   concurrently). A profile written before `created_at` was recorded walks back the longest
//!   retention the settings allow.
//! - `TenantsTable`: the tenant's partition (profile, knowledge base, privacy requests), except
//!   the sort keys the caller keeps (the profile and the running request, which the worker
//!   removes when it completes the request, so a retry still knows where to start).
//! - `AuditTable` is kept: its entries hold hashed subject ids only.
//!
//! Deleting is idempotent, so a wipe that stops anywhere and runs again finishes the job.

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};

use super::retention::{Category, DAY, MAX_RETENTION_DAYS, TTL_GRACE_DAYS};
use crate::clock::utc_month;
use crate::domain::TenantId;
use crate::purge::index::{EXPIRY_INDEX, Table};
use crate::store::batch::delete_keys;
use crate::store::objects::delete_prefix;
use crate::store::{Item, StoreError, condition_failed, get_s, keys, query_partition, s, table_key};
use crate::tenants::records::read_profile;

/// Bucket Queries in flight at once.
const CONCURRENCY: usize = 8;

#[derive(Debug, Clone)]
pub struct Wiper {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub messages_table: String,
    pub contacts_table: String,
    pub tenants_table: String,
    pub routes_table: String,
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
}

impl Wiper {
    /// Deletes everything of `tenant` but the audit trail and the `keep` sort keys of its
    /// `TenantsTable` partition; returns what went.
    pub async fn wipe(
        &self,
        tenant: &TenantId,
        now_secs: i64,
        keep: &[&str],
    ) -> Result<BTreeMap<String, u64>, StoreError> {
        let mut counts = BTreeMap::new();
        let profile = read_profile(&self.dynamodb, &self.tenants_table, tenant).await?;
        let since = match profile.as_ref().and_then(|p| p.created_at) {
            Some(created) => created - DAY,
            None => now_secs - (MAX_RETENTION_DAYS + TTL_GRACE_DAYS + 1) * DAY,
        };

        let mut routes = 0;
        for route in profile.as_ref().map(|p| p.routes()).unwrap_or_default() {
            let result = self
                .dynamodb
                .delete_item()
                .table_name(&self.routes_table)
                .key("pk", s(route.as_str()))
                .condition_expression("tenant_id = :t")
                .expression_attribute_values(":t", s(tenant.as_str()))
                .send()
                .await;
            match result {
                Ok(_) => routes += 1,
                // Gone already, or claimed by another tenant since: not ours to delete.
                Err(e) if condition_failed(&e) => {}
                Err(e) => return Err(StoreError::aws("DeleteItem route", e)),
            }
        }
        counts.insert("routes".to_owned(), routes);

        let objects = delete_prefix(&self.s3, &self.bucket, &keys::tenant_objects_prefix(tenant)).await?;
        counts.insert("objects".to_owned(), objects as u64);

        let months = utc_month(since)..=utc_month(now_secs + DAY);
        counts.insert("months".to_owned(), months.clone().count() as u64);
        for (table, kind, name) in [
            (&self.messages_table, Table::Messages, "message_items"),
            (&self.contacts_table, Table::Contacts, "contact_items"),
        ] {
            let held_here: Vec<Category> =
                Category::ALL.into_iter().filter(|c| crate::purge::tables(*c).contains(&kind)).collect();
            let mut buckets = Vec::new();
            for month in months.clone() {
                for category in &held_here {
                    buckets.extend((0..keys::SHARDS).map(|shard| keys::expiry_bucket(tenant, *category, month, shard)));
                }
            }
            let sort_key = kind == Table::Contacts;
            let deleted: Vec<usize> = futures::stream::iter(buckets)
                .map(|bucket| self.empty_bucket(table, bucket, sort_key))
                .buffer_unordered(CONCURRENCY)
                .try_collect()
                .await?;
            counts.insert(name.to_owned(), deleted.iter().sum::<usize>() as u64);
        }

        let items =
            query_partition(&self.dynamodb, &self.tenants_table, tenant.as_str(), None, Some("pk, sk"), "Query tenant")
                .await?;
        let doomed: Vec<Item> = items
            .iter()
            .filter_map(|i| get_s(i, "sk"))
            .filter(|sk| !keep.contains(sk))
            .map(|sk| table_key(tenant.as_str(), Some(sk)))
            .collect();
        counts
            .insert("tenant_items".to_owned(), delete_keys(&self.dynamodb, &self.tenants_table, doomed).await? as u64);
        Ok(counts)
    }

    /// Deletes every item of one month bucket, a page of keys at a time.
    async fn empty_bucket(&self, table: &str, bucket: String, sort_key: bool) -> Result<usize, StoreError> {
        let mut pages = self
            .dynamodb
            .query()
            .table_name(table)
            .index_name(EXPIRY_INDEX)
            .key_condition_expression("exp_pk = :b")
            .expression_attribute_values(":b", s(bucket))
            .into_paginator()
            .send();
        let mut deleted = 0;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| StoreError::aws("Query expiry bucket", e))?;
            let doomed: Vec<Item> = page
                .items()
                .iter()
                .filter_map(|i| Some(table_key(get_s(i, "pk")?, if sort_key { Some(get_s(i, "sk")?) } else { None })))
                .collect();
            if !doomed.is_empty() {
                deleted += delete_keys(&self.dynamodb, table, doomed).await?;
            }
        }
        Ok(deleted)
    }
}
