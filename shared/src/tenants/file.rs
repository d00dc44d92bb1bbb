//! The declarative tenants file (JSON or YAML) that the operator and the local runner load.
//! Tokens appear here in clear because this file is operator input; they are sealed on load.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use serde::Deserialize;

use crate::domain::{E164, TenantId};
use crate::privacy::RetentionDays;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantsFile {
    pub tenants: Vec<TenantSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSpec {
    pub id: TenantId,
    pub name: String,
    #[serde(default)]
    pub channels: ChannelsSpec,
    #[serde(default)]
    pub shopify: Option<ShopifySpec>,
    #[serde(default)]
    pub knowledge_base: Vec<KnowledgeDoc>,
    #[serde(default)]
    pub retention_days: RetentionDays,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelsSpec {
    pub meta: Option<MetaChannelSpec>,
    pub twilio: Option<TwilioChannelSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaChannelSpec {
    pub phone_number_id: String,
    #[serde(default)]
    pub waba_id: Option<String>,
    pub access_token: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioChannelSpec {
    pub account_sid: String,
    pub auth_token: String,
    /// The sender: `whatsapp:+1…` or `+1…`.
    pub from: String,
}

// Tokens never reach a Debug print.
impl fmt::Debug for MetaChannelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetaChannelSpec").field("phone_number_id", &self.phone_number_id).finish_non_exhaustive()
    }
}

impl fmt::Debug for TwilioChannelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioChannelSpec").field("account_sid", &self.account_sid).finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopifySpec {
    pub shop_domain: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnowledgeDoc {
    pub title: String,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TenantsFileError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} is not a valid tenants file: {reason}")]
    Parse { path: String, reason: String },
    #[error("tenant {tenant}: {reason}")]
    Invalid { tenant: String, reason: String },
}

impl TenantsFile {
    /// Reads `.json`, `.yaml` or `.yml` and validates it.
    pub fn load(path: &Path) -> Result<Self, TenantsFileError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| TenantsFileError::Read { path: path.display().to_string(), source })?;
        let is_json = path.extension().is_some_and(|e| e == "json");
        Self::parse(&text, is_json).map_err(|e| match e {
            TenantsFileError::Parse { reason, .. } => {
                TenantsFileError::Parse { path: path.display().to_string(), reason }
            }
            other => other,
        })
    }

    pub fn parse(text: &str, is_json: bool) -> Result<Self, TenantsFileError> {
        let parsed: Self = if is_json {
            serde_json::from_str(text)
                .map_err(|e| TenantsFileError::Parse { path: String::new(), reason: e.to_string() })?
        } else {
            serde_norway::from_str(text)
                .map_err(|e| TenantsFileError::Parse { path: String::new(), reason: e.to_string() })?
        };
        parsed.validate()?;
        Ok(parsed)
    }

    fn validate(&self) -> Result<(), TenantsFileError> {
        let mut ids = HashSet::new();
        let mut numbers = HashSet::new();
        let mut shops = HashSet::new();
        for t in &self.tenants {
            let invalid = |reason: &str| TenantsFileError::Invalid { tenant: t.id.to_string(), reason: reason.into() };
            if !ids.insert(&t.id) {
                return Err(invalid("duplicate tenant id"));
            }
            if t.name.trim().is_empty() {
                return Err(invalid("name is empty"));
            }
            t.retention_days.validate().map_err(invalid)?;
            if let Some(meta) = &t.channels.meta {
                if meta.phone_number_id.is_empty() || !meta.phone_number_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(invalid("channels.meta.phone_number_id must be alphanumeric"));
                }
                if !numbers.insert(meta.phone_number_id.as_str()) {
                    // Two tenants on one number would make routing ambiguous: refuse.
                    return Err(invalid("channels.meta.phone_number_id is already used by another tenant"));
                }
                if meta.access_token.is_empty() {
                    return Err(invalid("channels.meta.access_token is empty"));
                }
            }
            if let Some(twilio) = &t.channels.twilio {
                if !twilio.account_sid.starts_with("AC") || twilio.auth_token.is_empty() {
                    return Err(invalid("channels.twilio needs an AC… account_sid and an auth_token"));
                }
                E164::parse(&twilio.from).map_err(|_| invalid("channels.twilio.from must be a phone number"))?;
            }
            if let Some(shop) = &t.shopify {
                if !shop.shop_domain.ends_with(".myshopify.com") {
                    return Err(invalid("shopify.shop_domain must be <shop>.myshopify.com"));
                }
                if !shops.insert(shop.shop_domain.as_str()) {
                    return Err(invalid("shopify.shop_domain is already used by another tenant"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
tenants:
  - id: acme-dental
    name: Acme Dental
    channels:
      meta: { phone_number_id: "1111", access_token: "EAAG-secret" }
      twilio: { account_sid: AC123, auth_token: tok, from: "whatsapp:+14155550100" }
    shopify: { shop_domain: acme.myshopify.com }
    knowledge_base:
      - { title: Hours, text: "Mon-Fri 9-17" }
    retention_days: { messages: 365 }
"#;

    #[test]
    fn yaml_and_json_forms_parse_with_defaults() {
        let f = TenantsFile::parse(YAML, false).unwrap();
        let t = &f.tenants[0];
        assert_eq!(t.retention_days.messages, 365);
        assert_eq!(t.retention_days.leads, 730);
        assert_eq!(t.knowledge_base.len(), 1);
        let json =
            r#"{"tenants":[{"id":"b","name":"B","channels":{"meta":{"phone_number_id":"22","access_token":"x"}}}]}"#;
        assert_eq!(TenantsFile::parse(json, true).unwrap().tenants[0].id.as_str(), "b");
    }

    #[test]
    fn tokens_do_not_show_in_debug_output() {
        let f = TenantsFile::parse(YAML, false).unwrap();
        let printed = format!("{f:?}");
        assert!(!printed.contains("EAAG-secret") && !printed.contains("tok,"), "{printed}");
    }

    #[test]
    fn a_number_claimed_twice_or_a_bad_id_is_refused() {
        let twice = r#"{"tenants":[
            {"id":"a","name":"A","channels":{"meta":{"phone_number_id":"1","access_token":"x"}}},
            {"id":"b","name":"B","channels":{"meta":{"phone_number_id":"1","access_token":"y"}}}]}"#;
        assert!(matches!(TenantsFile::parse(twice, true), Err(TenantsFileError::Invalid { .. })));
        assert!(TenantsFile::parse(r#"{"tenants":[{"id":"A#B","name":"x"}]}"#, true).is_err());
        assert!(TenantsFile::parse(r#"{"tenants":[{"id":"a","name":"x","typo":1}]}"#, true).is_err());
    }
}
