//! The purge cursors (`TenantsTable`, `pk = <tenant>`, `sk = PURGE#<category>`): one Query per
//! tenant reads them all; a cursor is written when its run moved it.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::Client;
use serde::{Deserialize, Serialize};

use super::plan::Cursor;
use crate::domain::TenantId;
use crate::privacy::retention::Category;
use crate::store::{StoreError, from_item, keys, to_item};

#[derive(Serialize, Deserialize)]
struct CursorItem {
    pk: String,
    sk: String,
    category: Category,
    #[serde(flatten)]
    cursor: Cursor,
}

pub async fn read_all(
    client: &Client,
    table: &str,
    tenant: &TenantId,
) -> Result<BTreeMap<Category, Cursor>, StoreError> {
    let items = crate::store::query_partition(
        client,
        table,
        tenant.as_str(),
        Some(keys::PURGE_CURSOR_PREFIX),
        None,
        "Query purge cursors",
    )
    .await?;
    items
        .into_iter()
        .map(|item| from_item::<CursorItem>("purge cursor", item).map(|c| (c.category, c.cursor)))
        .collect()
}

pub async fn write(
    client: &Client,
    table: &str,
    tenant: &TenantId,
    category: Category,
    cursor: &Cursor,
) -> Result<(), StoreError> {
    let item = CursorItem { pk: tenant.to_string(), sk: keys::purge_cursor_sk(category), category, cursor: *cursor };
    client
        .put_item()
        .table_name(table)
        .set_item(Some(to_item(&item)?))
        .send()
        .await
        .map_err(|e| StoreError::aws("PutItem purge cursor", e))?;
    Ok(())
}
