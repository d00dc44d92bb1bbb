//! The list of tenants, for platform jobs (the sweeper, the purge) and for knowing a tenant id
//! without reading its profile: one Query on the `tenants` index of `TenantsTable`, never a Scan.

use std::future::Future;

use aws_sdk_dynamodb::Client;

use super::records::TENANTS_INDEX;
use crate::domain::TenantId;
use crate::store::{StoreError, get_s, keys, s};

/// The port: every tenant.
pub trait TenantCatalog: Send + Sync {
    fn tenant_ids(&self) -> impl Future<Output = Result<Vec<TenantId>, StoreError>> + Send;
}

#[derive(Debug, Clone)]
pub struct DynamoTenantCatalog {
    client: Client,
    table: String,
}

impl DynamoTenantCatalog {
    pub fn new(client: Client, tenants_table: String) -> Self {
        Self { client, table: tenants_table }
    }
}

impl TenantCatalog for DynamoTenantCatalog {
    async fn tenant_ids(&self) -> Result<Vec<TenantId>, StoreError> {
        let items = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(TENANTS_INDEX)
            .key_condition_expression("list_pk = :all")
            .expression_attribute_values(":all", s(keys::TENANT_LIST_PK))
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| StoreError::aws("Query tenants", e))?;
        Ok(items.iter().filter_map(|i| TenantId::parse(get_s(i, "list_sk")?).ok()).collect())
    }
}
