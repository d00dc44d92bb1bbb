//! Suspending a tenant (Shopify `app/uninstalled`): `suspended_at` on its profile, after which
//! the assistant acknowledges its customers' messages without answering. The data stays until
//! `shop/redact` or the cancellation retention (the purge wipes a tenant 30 days after it).
//!
//! The audit entry is appended *before* the profile is marked, and only while the profile is
//! not marked yet: a crash in between makes the retry append it again (at least once), but a
//! suspension never exists without its entry, and a redelivery after both steps writes nothing.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;

use aws_sdk_dynamodb::Client;

use super::directory::Tenant;
use crate::domain::{AuditAction, AuditEntry, TenantId};
use crate::privacy::retention::audit_ttl;
use crate::store::audit::AuditLog;
use crate::store::{StoreError, condition_failed, get_n, keys, n, s};

pub const ACTOR: &str = "shopify-gdpr";

/// What `suspend` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suspended {
    /// Suspended now, at this time (unix seconds).
    Now(i64),
    /// It already was, since then.
    Already(i64),
    /// No such tenant profile (removed meanwhile).
    NoTenant,
}

/// The port: where suspensions are written.
pub trait Suspensions: Send + Sync {
    fn suspend(&self, tenant: &Tenant, now_ms: i64) -> impl Future<Output = Result<Suspended, StoreError>> + Send;
    /// Since when the tenant is suspended (unix seconds), read past any cache; `None` when it
    /// is not (or its profile is gone).
    fn suspended_since(&self, tenant: &TenantId) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;
}

/// The audit entry of a suspension.
pub fn audit_entry(now_ms: i64) -> AuditEntry {
    AuditEntry {
        at_ms: now_ms,
        action: AuditAction::Suspension,
        actor: ACTOR.into(),
        subject: None,
        counts: BTreeMap::new(),
    }
}

/// Suspensions on `TenantsTable` profiles, audited through `AuditTable`.
#[derive(Debug, Clone)]
pub struct DynamoSuspensions<A> {
    client: Client,
    table: String,
    audit: A,
}

impl<A: AuditLog> DynamoSuspensions<A> {
    pub fn new(client: Client, tenants_table: String, audit: A) -> Self {
        Self { client, table: tenants_table, audit }
    }

    /// `None` when the profile is gone, else its `suspended_at`. Read consistently: a cached
    /// profile may be a minute old.
    async fn current(&self, tenant: &TenantId) -> Result<Option<Option<i64>>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(tenant.as_str()))
            .key("sk", s(keys::PROFILE_SK))
            .projection_expression("pk, suspended_at")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::aws("GetItem tenant suspension", e))?;
        Ok(out.item.map(|item| get_n::<i64>(&item, "suspended_at")))
    }
}

impl<A: AuditLog> Suspensions for DynamoSuspensions<A> {
    async fn suspend(&self, tenant: &Tenant, now_ms: i64) -> Result<Suspended, StoreError> {
        match self.current(&tenant.id).await? {
            None => return Ok(Suspended::NoTenant),
            Some(Some(since)) => return Ok(Suspended::Already(since)),
            Some(None) => {}
        }
        self.audit.append(&tenant.id, audit_entry(now_ms), audit_ttl(now_ms.div_euclid(1000))).await?;
        let at = now_ms / 1000;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(tenant.id.as_str()))
            .key("sk", s(keys::PROFILE_SK))
            .update_expression("SET suspended_at = :at")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(suspended_at)")
            .expression_attribute_values(":at", n(at))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Suspended::Now(at)),
            // A concurrent delivery was first, or the profile went away meanwhile.
            Err(e) if condition_failed(&e) => Ok(match self.current(&tenant.id).await? {
                Some(Some(since)) => Suspended::Already(since),
                _ => Suspended::NoTenant,
            }),
            Err(e) => Err(StoreError::aws("UpdateItem tenant suspended", e)),
        }
    }

    async fn suspended_since(&self, tenant: &TenantId) -> Result<Option<i64>, StoreError> {
        Ok(self.current(tenant).await?.flatten())
    }
}

/// Suspensions in memory (unit tests), audited like the table.
#[derive(Debug, Default)]
pub struct MemorySuspensions<A> {
    pub suspended: Mutex<BTreeMap<TenantId, i64>>,
    pub audit: A,
}

impl<A: AuditLog> Suspensions for MemorySuspensions<A> {
    async fn suspend(&self, tenant: &Tenant, now_ms: i64) -> Result<Suspended, StoreError> {
        if let Some(since) = self.suspended.lock().unwrap_or_else(|p| p.into_inner()).get(&tenant.id) {
            return Ok(Suspended::Already(*since));
        }
        self.audit.append(&tenant.id, audit_entry(now_ms), audit_ttl(now_ms.div_euclid(1000))).await?;
        let mut suspended = self.suspended.lock().unwrap_or_else(|p| p.into_inner());
        Ok(match suspended.get(&tenant.id) {
            Some(since) => Suspended::Already(*since),
            None => {
                suspended.insert(tenant.id.clone(), now_ms / 1000);
                Suspended::Now(now_ms / 1000)
            }
        })
    }

    async fn suspended_since(&self, tenant: &TenantId) -> Result<Option<i64>, StoreError> {
        Ok(self.suspended.lock().unwrap_or_else(|p| p.into_inner()).get(tenant).copied())
    }
}
