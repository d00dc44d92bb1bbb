//! How tenants live in DynamoDB. `TenantsTable`: `pk = <tenant>`, `sk = PROFILE | KB#nnnn`;
//! GSI `tenants` (`list_pk = TENANTS`, `list_sk = <tenant>`) lists every profile with one Query.
//! `RoutesTable`: `pk = meta#<phone_number_id>` (or `shopify#<domain>`) → `tenant_id`; the one
//! lookup that has to find a tenant from a provider's address, and it holds no personal data.

use aws_sdk_dynamodb::Client;
use serde::{Deserialize, Serialize};

use super::settings::TenantSettings;
use crate::crypto::Sealed;
use crate::domain::TenantId;
use crate::privacy::RetentionDays;
use crate::store::{StoreError, keys, s};

pub const TENANTS_INDEX: &str = "tenants";

/// What a sealed token is bound to: its tenant and field.
pub fn seal_context(tenant: &TenantId, field: &str) -> String {
    format!("{tenant}#{field}")
}

pub const META_TOKEN_FIELD: &str = "meta.access_token";
pub const TWILIO_TOKEN_FIELD: &str = "twilio.auth_token";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProfileItem {
    pub pk: TenantId,
    pub sk: String,
    /// The tenant list index: every profile carries it.
    pub list_pk: String,
    pub list_sk: String,
    pub name: String,
    pub retention: RetentionDays,
    #[serde(default)]
    pub meta: Option<MetaChannel>,
    #[serde(default)]
    pub twilio: Option<TwilioChannel>,
    #[serde(default)]
    pub shopify_shop_domain: Option<String>,
    #[serde(default)]
    pub settings: TenantSettings,
    /// A hash of the knowledge base's documents (`assistant::knowledge::version`).
    #[serde(default)]
    pub knowledge_version: Option<String>,
    pub updated_at: i64,
    /// When the tenant was first loaded (unix seconds): where the retention purge starts.
    #[serde(default)]
    pub created_at: Option<i64>,
    /// When the tenant was suspended (Shopify `app/uninstalled`; unix seconds): the assistant
    /// stops answering, the data stays until `shop/redact` or the cancellation retention.
    /// Written by `shopify-gdpr`, kept by the loader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended_at: Option<i64>,
}

impl ProfileItem {
    /// The provider addresses this tenant claims in `RoutesTable`.
    pub fn routes(&self) -> Vec<String> {
        let meta = self.meta.as_ref().map(|m| keys::meta_route(&m.phone_number_id));
        let shop = self.shopify_shop_domain.as_deref().map(keys::shopify_route);
        meta.into_iter().chain(shop).collect()
    }
}

/// Reads a tenant's profile (the directory and the loader both start here).
pub async fn read_profile(client: &Client, table: &str, id: &TenantId) -> Result<Option<ProfileItem>, StoreError> {
    let out = client
        .get_item()
        .table_name(table)
        .key("pk", s(id.as_str()))
        .key("sk", s(keys::PROFILE_SK))
        .send()
        .await
        .map_err(|e| StoreError::aws("GetItem tenant", e))?;
    out.item.map(|item| crate::store::from_item("tenant profile", item)).transpose()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetaChannel {
    pub phone_number_id: String,
    #[serde(default)]
    pub waba_id: Option<String>,
    /// E.164.
    #[serde(default)]
    pub display_phone_number: Option<String>,
    pub access_token: Sealed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TwilioChannel {
    pub account_sid: String,
    pub from: String,
    pub auth_token: Sealed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RouteItem {
    pub pk: String,
    pub tenant_id: TenantId,
}

/// A tenant's knowledge-base items (`KB#nnnn`), in order, read consistently; `projection`
/// limits the attributes read (e.g. `"sk"`).
pub async fn knowledge_items(
    client: &Client,
    table: &str,
    id: &TenantId,
    projection: Option<&str>,
) -> Result<Vec<crate::store::Item>, StoreError> {
    crate::store::query_partition(client, table, id.as_str(), Some(keys::KB_PREFIX), projection, "Query knowledge")
        .await
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KnowledgeItem {
    pub pk: TenantId,
    pub sk: String,
    pub title: String,
    pub text: String,
}
