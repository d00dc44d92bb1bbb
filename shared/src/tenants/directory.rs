//! Finding a tenant from a provider's address, with the settings ingestion needs; cached for
//! the life of a warm function.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::Client;

use super::cache::TtlCache;
use super::records::{self, ProfileItem, RouteItem};
use crate::crypto::MasterKey;
use crate::domain::TenantId;
use crate::privacy::RetentionDays;
use crate::store::{StoreError, s};

/// A tenant as the ingest path sees it.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: TenantId,
    pub retention: RetentionDays,
    pub twilio_account_sid: Option<String>,
}

/// A tenant's Twilio account, token opened.
#[derive(Clone)]
pub struct TwilioCredentials {
    pub account_sid: String,
    pub auth_token: String,
}

impl fmt::Debug for TwilioCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioCredentials")
            .field("account_sid", &self.account_sid)
            .finish_non_exhaustive()
    }
}

/// The port: where tenants are found.
pub trait TenantDirectory: Send + Sync {
    fn by_meta_number(
        &self,
        phone_number_id: &str,
    ) -> impl Future<Output = Result<Option<Arc<Tenant>>, StoreError>> + Send;
    fn by_id(
        &self,
        id: &TenantId,
    ) -> impl Future<Output = Result<Option<Arc<Tenant>>, StoreError>> + Send;
    fn twilio_credentials(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<Option<Arc<TwilioCredentials>>, StoreError>> + Send;
}

/// Known answers are kept for minutes; unknown ones briefly, so a retry storm for a number we
/// do not serve costs one lookup, yet a newly added tenant is found soon.
const KNOWN_TTL: Duration = Duration::from_secs(300);
const UNKNOWN_TTL: Duration = Duration::from_secs(30);
const CACHE_CAPACITY: usize = 4096;

pub struct DynamoTenantDirectory {
    client: Client,
    tenants_table: String,
    routes_table: String,
    master_key: MasterKey,
    routes: TtlCache<String, Option<TenantId>>,
    tenants: TtlCache<TenantId, Option<Arc<Tenant>>>,
    twilio: TtlCache<TenantId, Option<Arc<TwilioCredentials>>>,
}

impl DynamoTenantDirectory {
    pub fn new(
        client: Client,
        tenants_table: String,
        routes_table: String,
        master_key: MasterKey,
    ) -> Self {
        Self {
            client,
            tenants_table,
            routes_table,
            master_key,
            routes: TtlCache::new(CACHE_CAPACITY),
            tenants: TtlCache::new(CACHE_CAPACITY),
            twilio: TtlCache::new(CACHE_CAPACITY),
        }
    }

    fn ttl<T>(found: &Option<T>) -> Duration {
        if found.is_some() {
            KNOWN_TTL
        } else {
            UNKNOWN_TTL
        }
    }

    async fn profile(&self, id: &TenantId) -> Result<Option<ProfileItem>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tenants_table)
            .key("pk", s(id.as_str()))
            .key("sk", s(records::PROFILE_SK))
            .send()
            .await
            .map_err(|e| StoreError::aws("GetItem tenant", e))?;
        out.item
            .map(|item| {
                serde_dynamo::from_item(item)
                    .map_err(|e| StoreError::Corrupt(format!("tenant profile: {e}")))
            })
            .transpose()
    }

    async fn route(&self, route: String) -> Result<Option<TenantId>, StoreError> {
        if let Some(hit) = self.routes.get(&route) {
            return Ok(hit);
        }
        let out = self
            .client
            .get_item()
            .table_name(&self.routes_table)
            .key("pk", s(route.as_str()))
            .send()
            .await
            .map_err(|e| StoreError::aws("GetItem route", e))?;
        let tenant = out
            .item
            .map(|item| {
                serde_dynamo::from_item::<_, RouteItem>(item)
                    .map_err(|e| StoreError::Corrupt(format!("route: {e}")))
            })
            .transpose()?
            .map(|r| r.tenant_id);
        self.routes
            .insert(route, tenant.clone(), Self::ttl(&tenant));
        Ok(tenant)
    }
}

impl TenantDirectory for DynamoTenantDirectory {
    async fn by_meta_number(
        &self,
        phone_number_id: &str,
    ) -> Result<Option<Arc<Tenant>>, StoreError> {
        match self.route(records::meta_route(phone_number_id)).await? {
            Some(id) => self.by_id(&id).await,
            None => Ok(None),
        }
    }

    async fn by_id(&self, id: &TenantId) -> Result<Option<Arc<Tenant>>, StoreError> {
        if let Some(hit) = self.tenants.get(id) {
            return Ok(hit);
        }
        let tenant = self.profile(id).await?.map(|p| {
            Arc::new(Tenant {
                id: p.pk,
                retention: p.retention,
                twilio_account_sid: p.twilio.map(|t| t.account_sid),
            })
        });
        self.tenants
            .insert(id.clone(), tenant.clone(), Self::ttl(&tenant));
        Ok(tenant)
    }

    async fn twilio_credentials(
        &self,
        id: &TenantId,
    ) -> Result<Option<Arc<TwilioCredentials>>, StoreError> {
        if let Some(hit) = self.twilio.get(id) {
            return Ok(hit);
        }
        let credentials = match self.profile(id).await?.and_then(|p| p.twilio) {
            Some(twilio) => {
                let context = records::seal_context(id, records::TWILIO_TOKEN_FIELD);
                let token = self.master_key.open(&twilio.auth_token, &context).await?;
                let auth_token = String::from_utf8(token)
                    .map_err(|_| StoreError::Corrupt("twilio token is not UTF-8".into()))?;
                Some(Arc::new(TwilioCredentials {
                    account_sid: twilio.account_sid,
                    auth_token,
                }))
            }
            None => None,
        };
        self.twilio
            .insert(id.clone(), credentials.clone(), Self::ttl(&credentials));
        Ok(credentials)
    }
}
