//! Writes a tenants file into DynamoDB: tokens sealed, routes claimed with a condition so a
//! number can never silently move from one tenant to another, stale routes and documents removed.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;

use super::file::{TenantSpec, TenantsFile};
use super::records::{self, KnowledgeItem, MetaChannel, ProfileItem, RouteItem, TwilioChannel};
use std::collections::BTreeMap;

use crate::crypto::MasterKey;
use crate::domain::TenantId;
use crate::domain::{AuditAction, AuditEntry};
use crate::privacy::retention::audit_ttl;
use crate::store::audit::{AuditLog, DynamoAuditLog};
use crate::store::{StoreError, keys, s, to_item};

pub struct TenantLoader<'a> {
    pub client: &'a Client,
    pub tenants_table: &'a str,
    pub routes_table: &'a str,
    pub master_key: &'a MasterKey,
    /// Where configuration changes are audited.
    pub audit: &'a DynamoAuditLog,
}

pub const ACTOR: &str = "tenants-loader";

/// What a load changes in a tenant's configuration (secrets are compared by where they lead, not
/// by their sealed bytes, which differ at every seal): the counts of its audit entry.
fn changes(previous: Option<&ProfileItem>, next: &ProfileItem) -> BTreeMap<String, u64> {
    let Some(p) = previous else { return BTreeMap::from([("created".to_owned(), 1)]) };
    let parts = [
        ("name", p.name != next.name),
        ("retention", p.retention != next.retention),
        ("settings", p.settings != next.settings),
        ("channels", p.routes() != next.routes() || twilio_account(p) != twilio_account(next)),
        ("knowledge_base", p.knowledge_version != next.knowledge_version),
    ];
    parts.into_iter().filter(|(_, changed)| *changed).map(|(part, _)| (part.to_owned(), 1)).collect()
}

fn twilio_account(p: &ProfileItem) -> Option<(&str, &str)> {
    p.twilio.as_ref().map(|t| (t.account_sid.as_str(), t.from.as_str()))
}

impl TenantLoader<'_> {
    /// Loads every tenant of the file; running it twice changes nothing.
    pub async fn load(&self, file: &TenantsFile, now: i64) -> Result<usize, StoreError> {
        for spec in &file.tenants {
            self.load_one(spec, now).await?;
        }
        Ok(file.tenants.len())
    }

    async fn load_one(&self, spec: &TenantSpec, now: i64) -> Result<(), StoreError> {
        let id = &spec.id;
        let previous = records::read_profile(self.client, self.tenants_table, id).await?;
        let meta = match &spec.channels.meta {
            Some(m) => Some(MetaChannel {
                phone_number_id: m.phone_number_id.clone(),
                waba_id: m.waba_id.clone(),
                display_phone_number: m.display_e164().map(String::from),
                access_token: self
                    .master_key
                    .seal(m.access_token.as_bytes(), &records::seal_context(id, records::META_TOKEN_FIELD))
                    .await?,
            }),
            None => None,
        };
        let twilio = match &spec.channels.twilio {
            Some(t) => Some(TwilioChannel {
                account_sid: t.account_sid.clone(),
                from: t.from.clone(),
                auth_token: self
                    .master_key
                    .seal(t.auth_token.as_bytes(), &records::seal_context(id, records::TWILIO_TOKEN_FIELD))
                    .await?,
            }),
            None => None,
        };
        let profile = ProfileItem {
            pk: id.clone(),
            sk: keys::PROFILE_SK.into(),
            list_pk: keys::TENANT_LIST_PK.into(),
            list_sk: id.to_string(),
            name: spec.name.clone(),
            retention: spec.retention_days,
            meta,
            twilio,
            shopify_shop_domain: spec.shopify.as_ref().map(|s| s.shop_domain.to_ascii_lowercase()),
            settings: spec.settings(),
            knowledge_version: Some(crate::assistant::knowledge::version(&spec.knowledge_base)),
            updated_at: now,
            // A profile from before `created_at` was recorded keeps it unknown: the purge and the
            // wipe then walk back the longest retention allowed instead of trusting a late date.
            created_at: previous.as_ref().map_or(Some(now), |p| p.created_at),
            // Set by the platform (an uninstall), not by the file: a reload keeps it.
            suspended_at: previous.as_ref().and_then(|p| p.suspended_at),
        };
        // Documents before the profile that names their version: a reader that sees the new
        // version must find the new documents, or it would index old ones under the new name.
        self.replace_knowledge(spec).await?;
        let changed = changes(previous.as_ref(), &profile);
        if !changed.is_empty() {
            // Before the write: a crash in between repeats the entry at the next load rather
            // than losing it.
            let entry = AuditEntry {
                at_ms: now * 1000,
                action: AuditAction::TenantConfigChange,
                actor: ACTOR.into(),
                subject: None,
                counts: changed,
            };
            self.audit.append(id, entry, audit_ttl(now)).await?;
        }
        let routes = profile.routes();
        for route in &routes {
            self.claim_route(route, id).await?;
        }
        self.client
            .put_item()
            .table_name(self.tenants_table)
            .set_item(Some(to_item(&profile)?))
            .send()
            .await
            .map_err(|e| StoreError::aws("PutItem tenant", e))?;

        let previous = previous.map(|p| p.routes()).unwrap_or_default();
        for stale in previous.iter().filter(|r| !routes.contains(r)) {
            self.client
                .delete_item()
                .table_name(self.routes_table)
                .key("pk", s(stale.as_str()))
                .condition_expression("tenant_id = :t")
                .expression_attribute_values(":t", s(id.as_str()))
                .send()
                .await
                .map_err(|e| StoreError::aws("DeleteItem route", e))?;
        }
        Ok(())
    }

    async fn claim_route(&self, route: &str, id: &TenantId) -> Result<(), StoreError> {
        let item = RouteItem { pk: route.to_owned(), tenant_id: id.clone() };
        let result = self
            .client
            .put_item()
            .table_name(self.routes_table)
            .set_item(Some(to_item(&item)?))
            .condition_expression("attribute_not_exists(pk) OR tenant_id = :t")
            .expression_attribute_values(":t", s(id.as_str()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if matches!(e.err(), PutItemError::ConditionalCheckFailedException(_)) => {
                Err(StoreError::Conflict(format!("{route} already belongs to another tenant; remove it there first")))
            }
            Err(e) => Err(StoreError::aws("PutItem route", e)),
        }
    }

    async fn replace_knowledge(&self, spec: &TenantSpec) -> Result<(), StoreError> {
        let id = &spec.id;
        for (i, doc) in spec.knowledge_base.iter().enumerate() {
            let item = KnowledgeItem {
                pk: id.clone(),
                sk: keys::knowledge_sk(i),
                title: doc.title.clone(),
                text: doc.text.clone(),
            };
            self.client
                .put_item()
                .table_name(self.tenants_table)
                .set_item(Some(to_item(&item)?))
                .send()
                .await
                .map_err(|e| StoreError::aws("PutItem knowledge", e))?;
        }
        // Documents beyond the new count were removed from the file: delete them too.
        let existing = records::knowledge_items(self.client, self.tenants_table, id, Some("sk")).await?;
        for item in existing {
            let Some(sk) = item.get("sk").and_then(|v| v.as_s().ok()) else {
                continue;
            };
            let index: Option<usize> = sk.strip_prefix(keys::KB_PREFIX).and_then(|n| n.parse().ok());
            if index.is_none_or(|i| i >= spec.knowledge_base.len()) {
                self.client
                    .delete_item()
                    .table_name(self.tenants_table)
                    .key("pk", s(id.as_str()))
                    .key("sk", s(sk.as_str()))
                    .send()
                    .await
                    .map_err(|e| StoreError::aws("DeleteItem knowledge", e))?;
            }
        }
        Ok(())
    }
}
