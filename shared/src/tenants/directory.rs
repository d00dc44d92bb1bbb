//! Finding a tenant from a provider's address or its id, with the settings the functions need;
//! cached for the life of a warm function. The set of tenant ids is kept too (one Query lists
//! them), so a request naming a tenant that does not exist costs no read at all.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;

use super::cache::TtlCache;
use super::catalog::{DynamoTenantCatalog, TenantCatalog};
use super::records::{self, RouteItem, TwilioChannel};
use super::settings::TenantSettings;
use crate::crypto::{MasterKey, Sealed};
use crate::domain::TenantId;
use crate::privacy::RetentionDays;
use crate::store::{StoreError, keys, s};

/// A tenant as the functions see it.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: TenantId,
    /// The business's name, as its customers know it.
    pub name: String,
    pub retention: RetentionDays,
    pub meta_phone_number_id: Option<String>,
    /// The sealed Graph API token; opened only when a send needs it.
    pub meta_access_token: Option<Sealed>,
    /// Changes whenever the knowledge base does: its search index is built once per version.
    pub knowledge_version: Option<String>,
    /// Account and sealed token; the token is opened only when a Twilio request needs it.
    pub twilio: Option<TwilioChannel>,
    pub settings: TenantSettings,
    /// The Shopify shop this tenant is (lower case), if any.
    pub shopify_shop_domain: Option<String>,
    /// Suspended since (unix seconds): the assistant does not answer (Shopify `app/uninstalled`).
    pub suspended_at: Option<i64>,
}

impl Tenant {
    /// A tenant with default settings (tests, benchmarks).
    pub fn new(id: TenantId) -> Self {
        Self {
            name: id.to_string(),
            id,
            retention: RetentionDays::default(),
            meta_phone_number_id: None,
            meta_access_token: None,
            knowledge_version: None,
            twilio: None,
            settings: TenantSettings::default(),
            shopify_shop_domain: None,
            suspended_at: None,
        }
    }

    pub fn is_suspended(&self) -> bool {
        self.suspended_at.is_some()
    }
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
/// tenant is followed within that; unknown numbers for 30 s in a cache of their own, so made-up
/// numbers can neither cost a lookup each nor push real tenants out.
const KNOWN_TTL: Duration = Duration::from_secs(60);
const UNKNOWN_TTL: Duration = Duration::from_secs(30);
/// The tenant list is read again after a minute, or after a few seconds when an id is missing
/// from it (a tenant added just now): a flood of made-up ids costs at most one Query per this.
const LIST_MISS_REFRESH: Duration = Duration::from_secs(5);
const CACHE_CAPACITY: usize = 4096;

type KnownIds = (Instant, Arc<HashSet<TenantId>>);

pub struct DynamoTenantDirectory {
    client: Client,
    tenants_table: String,
    routes_table: String,
    master_key: MasterKey,
    catalog: DynamoTenantCatalog,
    routes: TtlCache<String, TenantId>,
    tenants: TtlCache<TenantId, Arc<Tenant>>,
    unknown_routes: TtlCache<String, ()>,
    known_ids: tokio::sync::Mutex<Option<KnownIds>>,
    /// Opened tokens, with the sealed value they came from: a rotated token is opened afresh.
    twilio: TtlCache<TenantId, (Sealed, Arc<TwilioCredentials>)>,
    meta_tokens: TtlCache<TenantId, (Sealed, Arc<str>)>,
}

impl DynamoTenantDirectory {
    pub fn new(client: Client, tenants_table: String, routes_table: String, master_key: MasterKey) -> Self {
        Self {
            catalog: DynamoTenantCatalog::new(client.clone(), tenants_table.clone()),
            client,
            tenants_table,
            routes_table,
            master_key,
            routes: TtlCache::new(CACHE_CAPACITY),
            tenants: TtlCache::new(CACHE_CAPACITY),
            unknown_routes: TtlCache::new(CACHE_CAPACITY),
            known_ids: tokio::sync::Mutex::new(None),
            twilio: TtlCache::new(CACHE_CAPACITY),
            meta_tokens: TtlCache::new(CACHE_CAPACITY),
        }
    }

    async fn route(&self, route: String) -> Result<Option<TenantId>, StoreError> {
        if let Some(hit) = self.routes.get(&route) {
            return Ok(Some(hit));
        }
        if self.unknown_routes.get(&route).is_some() {
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
                let route_item: RouteItem = crate::store::from_item("route", item)?;
                self.routes.insert(route, route_item.tenant_id.clone(), KNOWN_TTL);
                Ok(Some(route_item.tenant_id))
            }
            None => {
                self.unknown_routes.insert(route, (), UNKNOWN_TTL);
                Ok(None)
            }
        }
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn tenants_table(&self) -> &str {
        &self.tenants_table
    }

    /// The tenant's Graph API token, opened (cached while the sealed value stays the same).
    pub async fn meta_token(&self, tenant: &Tenant) -> Result<Option<Arc<str>>, StoreError> {
        let Some(sealed) = &tenant.meta_access_token else { return Ok(None) };
        if let Some((cached, hit)) = self.meta_tokens.get(&tenant.id)
            && &cached == sealed
        {
            return Ok(Some(hit));
        }
        let context = records::seal_context(&tenant.id, records::META_TOKEN_FIELD);
        let token = self.master_key.open(sealed, &context).await?;
        let token: Arc<str> =
            String::from_utf8(token).map_err(|_| StoreError::Corrupt("meta token is not UTF-8".into()))?.into();
        self.meta_tokens.insert(tenant.id.clone(), (sealed.clone(), token.clone()), KNOWN_TTL);
        Ok(Some(token))
    }

    /// The tenant a Shopify shop belongs to (its `shopify#<domain>` route), when route and
    /// profile agree. A disagreement is read again past the cache, and if it persists is an
    /// error (the shop is moving: Shopify retries), never a request dropped or filed under the
    /// tenant it is leaving.
    pub async fn by_shop_domain(&self, shop_domain: &str) -> Result<Option<Arc<Tenant>>, StoreError> {
        let domain = shop_domain.to_ascii_lowercase();
        let serves = |t: &Tenant| t.shopify_shop_domain.as_deref() == Some(domain.as_str());
        self.by_route(keys::shopify_route(&domain), serves, "a shop").await
    }

    /// The tenant a route names, if its profile agrees that it serves that address. When route
    /// and profile disagree (an address is moving), both are read again past the cache; if they
    /// still disagree this fails, so the provider retries once the move is complete, rather than
    /// the event being dropped or handled for the tenant it is leaving.
    async fn by_route(
        &self,
        route: String,
        serves: impl Fn(&Tenant) -> bool,
        what: &str,
    ) -> Result<Option<Arc<Tenant>>, StoreError> {
        let Some(id) = self.route(route.clone()).await? else {
            return Ok(None);
        };
        let tenant = self.by_id(&id).await?;
        if tenant.as_deref().is_some_and(&serves) {
            return Ok(tenant);
        }
        self.routes.remove(&route);
        self.tenants.remove(&id);
        let Some(id) = self.route(route).await? else {
            return Ok(None);
        };
        match self.by_id(&id).await? {
            Some(tenant) if serves(&tenant) => Ok(Some(tenant)),
            _ => Err(StoreError::Conflict(format!("route and tenant profile disagree about {what}"))),
        }
    }

    /// Whether `id` names a tenant, from the cached list (read again when stale).
    async fn is_known(&self, id: &TenantId) -> Result<bool, StoreError> {
        let mut known = self.known_ids.lock().await;
        let age = known.as_ref().map(|(at, _)| at.elapsed());
        let listed = known.as_ref().is_some_and(|(_, ids)| ids.contains(id));
        let refresh = match age {
            None => true,
            Some(age) if listed => age > KNOWN_TTL,
            Some(age) => age > LIST_MISS_REFRESH,
        };
        if refresh {
            let ids: HashSet<TenantId> = self.catalog.tenant_ids().await?.into_iter().collect();
            *known = Some((Instant::now(), Arc::new(ids)));
        }
        Ok(known.as_ref().is_some_and(|(_, ids)| ids.contains(id)))
    }
}

impl TenantDirectory for DynamoTenantDirectory {
    async fn by_meta_number(&self, phone_number_id: &str) -> Result<Option<Arc<Tenant>>, StoreError> {
        let serves = |t: &Tenant| t.meta_phone_number_id.as_deref() == Some(phone_number_id);
        self.by_route(keys::meta_route(phone_number_id), serves, "a number").await
    }

    async fn by_id(&self, id: &TenantId) -> Result<Option<Arc<Tenant>>, StoreError> {
        if let Some(hit) = self.tenants.get(id) {
            return Ok(Some(hit));
        }
        if !self.is_known(id).await? {
            return Ok(None);
        }
        let Some(profile) = records::read_profile(&self.client, &self.tenants_table, id).await? else {
            return Ok(None);
        };
        let (meta_phone_number_id, meta_access_token) =
            profile.meta.map(|m| (m.phone_number_id, m.access_token)).unzip();
        let tenant = Arc::new(Tenant {
            id: profile.pk,
            name: profile.name,
            retention: profile.retention,
            meta_phone_number_id,
            meta_access_token,
            knowledge_version: profile.knowledge_version,
            twilio: profile.twilio,
            settings: profile.settings,
            shopify_shop_domain: profile.shopify_shop_domain,
            suspended_at: profile.suspended_at,
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
