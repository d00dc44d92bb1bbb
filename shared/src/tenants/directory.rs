//! Finding a tenant from a provider's address, with the settings ingestion needs; cached for
//! the life of a warm function.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::Client;

use super::cache::TtlCache;
use super::records::{self, RouteItem, TwilioChannel};
use crate::crypto::{MasterKey, Sealed};
use crate::domain::TenantId;
use crate::privacy::RetentionDays;
use crate::store::{StoreError, s};

/// A tenant as the ingest path sees it.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: TenantId,
    pub retention: RetentionDays,
    pub meta_phone_number_id: Option<String>,
    /// Account and sealed token; the token is opened only when a Twilio request needs it.
    pub twilio: Option<TwilioChannel>,
}

/// A tenant's Twilio account, token opened.
#[derive(Clone)]
pub struct TwilioCredentials {
    pub account_sid: String,
    pub auth_token: String,
}

impl fmt::Debug for TwilioCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioCredentials").field("account_sid", &self.account_sid).finish_non_exhaustive()
    }
}

/// The port: where tenants are found.
pub trait TenantDirectory: Send + Sync {
    fn by_meta_number(
        &self,
        phone_number_id: &str,
    ) -> impl Future<Output = Result<Option<Arc<Tenant>>, StoreError>> + Send;
    fn by_id(&self, id: &TenantId) -> impl Future<Output = Result<Option<Arc<Tenant>>, StoreError>> + Send;
    fn twilio_credentials(
        &self,
        tenant: &Tenant,
    ) -> impl Future<Output = Result<Option<Arc<TwilioCredentials>>, StoreError>> + Send;
}

/// Known answers are kept for a minute, routes and profiles alike, so a number moved to another
/// tenant is followed within that; unknown ones for 30 s in a cache of their own, so requests
/// naming made-up tenants or numbers can neither cost a lookup each nor push real tenants out.
const KNOWN_TTL: Duration = Duration::from_secs(60);
const UNKNOWN_TTL: Duration = Duration::from_secs(30);
const CACHE_CAPACITY: usize = 4096;

pub struct DynamoTenantDirectory {
    client: Client,
    tenants_table: String,
    routes_table: String,
    master_key: MasterKey,
    routes: TtlCache<String, TenantId>,
    tenants: TtlCache<TenantId, Arc<Tenant>>,
    unknown: TtlCache<String, ()>,
    /// Opened tokens, with the sealed value they came from: a rotated token is opened afresh.
    twilio: TtlCache<TenantId, (Sealed, Arc<TwilioCredentials>)>,
}

impl DynamoTenantDirectory {
    pub fn new(client: Client, tenants_table: String, routes_table: String, master_key: MasterKey) -> Self {
        Self {
            client,
            tenants_table,
            routes_table,
            master_key,
            routes: TtlCache::new(CACHE_CAPACITY),
            tenants: TtlCache::new(CACHE_CAPACITY),
            unknown: TtlCache::new(CACHE_CAPACITY),
            twilio: TtlCache::new(CACHE_CAPACITY),
        }
    }

    async fn route(&self, route: String) -> Result<Option<TenantId>, StoreError> {
        if let Some(hit) = self.routes.get(&route) {
            return Ok(Some(hit));
        }
        if self.unknown.get(&route).is_some() {
            return Ok(None);
        }
        let out = self
            .client
            .get_item()
            .table_name(&self.routes_table)
            .key("pk", s(route.as_str()))
            .send()
            .await
            .map_err(|e| StoreError::aws("GetItem route", e))?;
        match out.item {
            Some(item) => {
                let route_item: RouteItem =
                    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(format!("route: {e}")))?;
                self.routes.insert(route, route_item.tenant_id.clone(), KNOWN_TTL);
                Ok(Some(route_item.tenant_id))
            }
            None => {
                self.unknown.insert(route, (), UNKNOWN_TTL);
                Ok(None)
            }
        }
    }
}

impl TenantDirectory for DynamoTenantDirectory {
    async fn by_meta_number(&self, phone_number_id: &str) -> Result<Option<Arc<Tenant>>, StoreError> {
        let route = records::meta_route(phone_number_id);
        let Some(id) = self.route(route.clone()).await? else {
            return Ok(None);
        };
        let serves = |t: &Arc<Tenant>| t.meta_phone_number_id.as_deref() == Some(phone_number_id);
        let tenant = self.by_id(&id).await?;
        if tenant.as_ref().is_some_and(serves) {
            return Ok(tenant);
        }
        // Route and profile disagree: a number is moving. Read both again past the cache; if
        // they still disagree, fail so the provider retries once the move is complete, rather
        // than dropping the message or storing it under the tenant it is leaving.
        self.routes.remove(&route);
        self.tenants.remove(&id);
        let Some(id) = self.route(route).await? else {
            return Ok(None);
        };
        match self.by_id(&id).await? {
            Some(tenant) if serves(&tenant) => Ok(Some(tenant)),
            _ => Err(StoreError::Conflict("route and tenant profile disagree about a number".into())),
        }
    }

    async fn by_id(&self, id: &TenantId) -> Result<Option<Arc<Tenant>>, StoreError> {
        if let Some(hit) = self.tenants.get(id) {
            return Ok(Some(hit));
        }
        let unknown_key = format!("tenant#{id}");
        if self.unknown.get(&unknown_key).is_some() {
            return Ok(None);
        }
        let Some(profile) = records::read_profile(&self.client, &self.tenants_table, id).await? else {
            self.unknown.insert(unknown_key, (), UNKNOWN_TTL);
            return Ok(None);
        };
        let tenant = Arc::new(Tenant {
            id: profile.pk,
            retention: profile.retention,
            meta_phone_number_id: profile.meta.map(|m| m.phone_number_id),
            twilio: profile.twilio,
        });
        self.tenants.insert(id.clone(), tenant.clone(), KNOWN_TTL);
        Ok(Some(tenant))
    }

    async fn twilio_credentials(&self, tenant: &Tenant) -> Result<Option<Arc<TwilioCredentials>>, StoreError> {
        let Some(twilio) = &tenant.twilio else { return Ok(None) };
        if let Some((sealed, hit)) = self.twilio.get(&tenant.id)
            && sealed == twilio.auth_token
        {
            return Ok(Some(hit));
        }
        let context = records::seal_context(&tenant.id, records::TWILIO_TOKEN_FIELD);
        let token = self.master_key.open(&twilio.auth_token, &context).await?;
        let auth_token =
            String::from_utf8(token).map_err(|_| StoreError::Corrupt("twilio token is not UTF-8".into()))?;
        let credentials = Arc::new(TwilioCredentials { account_sid: twilio.account_sid.clone(), auth_token });
        self.twilio.insert(tenant.id.clone(), (twilio.auth_token.clone(), credentials.clone()), KNOWN_TTL);
        Ok(Some(credentials))
    }
}
