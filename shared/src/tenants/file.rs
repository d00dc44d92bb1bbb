//! The declarative tenants file (JSON or YAML) that the operator and the local runner load.
//! Tokens appear here in clear because this file is operator input; they are sealed on load.
//! Every error names the file and where in it the problem is.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::Path;

use serde::Deserialize;

use super::settings::{self, BookingSettings, BurstSettings, KeywordSet, TemplateRef, TenantSettings};
use crate::domain::{E164, TenantId};
use crate::privacy::RetentionDays;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantsFile {
    pub tenants: Vec<TenantSpec>,
}

/// One tenant. The assistant's settings (time zone, hours, booking, keywords …) are optional;
/// see `TenantSettings` for their defaults.
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
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub default_country: Option<String>,
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub persona: Option<String>,
    #[serde(default)]
    pub opening_hours: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub booking: Option<BookingSettings>,
    #[serde(default)]
    pub keywords: BTreeMap<String, KeywordSet>,
    #[serde(default)]
    pub burst: Option<BurstSettings>,
    #[serde(default)]
    pub outside_window_template: Option<TemplateRef>,
}

impl TenantSpec {
    /// The settings as stored: what the file says, defaults for the rest. The default country
    /// is the one of the tenant's own WhatsApp number.
    pub fn settings(&self) -> TenantSettings {
        let defaults = TenantSettings::default();
        let own_number = self
            .channels
            .meta
            .as_ref()
            .and_then(MetaChannelSpec::display_e164)
            .or_else(|| self.channels.twilio.as_ref().and_then(|t| E164::parse(&t.from).ok()));
        TenantSettings {
            timezone: self.timezone.clone().unwrap_or(defaults.timezone),
            default_country: self
                .default_country
                .clone()
                .or_else(|| own_number.and_then(|n| settings::country_of(n.as_str()))),
            language: self.language.clone().unwrap_or(defaults.language),
            persona: self.persona.clone(),
            opening_hours: self.opening_hours.clone(),
            booking: self.booking.clone().unwrap_or(defaults.booking),
            keywords: self.keywords.clone(),
            burst: self.burst.clone().unwrap_or(defaults.burst),
            outside_window_template: self.outside_window_template.clone(),
        }
    }
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
    /// The number customers write to, as Meta shows it (`15550001111` or `+1 555 000 1111`).
    #[serde(default)]
    pub display_phone_number: Option<String>,
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

pub use crate::assistant::knowledge::KnowledgeDoc;

#[derive(Debug, thiserror::Error)]
pub enum TenantsFileError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {reason}")]
    Parse { path: String, reason: String },
    #[error("{path}: tenant {tenant}: {reason}")]
    Invalid { path: String, tenant: String, reason: String },
}

/// Where an ignored field is (`tenants[0].booking`, as serde_path_to_error writes it) and its name.
fn ignored_field(path: &serde_ignored::Path<'_>) -> (String, String) {
    use serde_ignored::Path;
    match path {
        Path::Map { parent, key } => (location(parent), key.clone()),
        Path::Seq { parent, index } => (location(parent), format!("[{index}]")),
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => {
            ignored_field(parent)
        }
        Path::Root => (String::new(), String::new()),
    }
}

fn location(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", location(parent)),
        Path::Map { parent, key } => match location(parent) {
            at if at.is_empty() => key.clone(),
            at => format!("{at}.{key}"),
        },
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => location(parent),
    }
}

/// Digits of a display number as Meta shows it: `+1 555-000 1111` → `15550001111`.
fn display_digits(number: &str) -> String {
    number.chars().filter(char::is_ascii_digit).collect()
}

impl TenantsFile {
    /// Reads `.json`, `.yaml` or `.yml` and validates it.
    pub fn load(path: &Path) -> Result<Self, TenantsFileError> {
        let name = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|source| TenantsFileError::Read { path: name.clone(), source })?;
        let is_json = path.extension().is_some_and(|e| e == "json");
        Self::parse(&text, is_json, &name)
    }

    /// Parses and validates; `source` names the file in errors.
    pub fn parse(text: &str, is_json: bool, source: &str) -> Result<Self, TenantsFileError> {
        let parse_error = |at: String, reason: String| TenantsFileError::Parse {
            path: source.to_owned(),
            reason: if at.is_empty() || at == "." { reason } else { format!("at {at}: {reason}") },
        };
        // serde_path_to_error names where in the file a field is wrong; serde_ignored finds the
        // fields nothing read (the settings types accept unknown fields, for stored profiles).
        let mut unknown = Vec::new();
        let mut note = |path: serde_ignored::Path<'_>| unknown.push(ignored_field(&path));
        let parsed: Self = if is_json {
            let mut de = serde_json::Deserializer::from_str(text);
            serde_path_to_error::deserialize(serde_ignored::Deserializer::new(&mut de, &mut note))
                .map_err(|e| parse_error(e.path().to_string(), e.inner().to_string()))?
        } else {
            let de = serde_norway::Deserializer::from_str(text);
            serde_path_to_error::deserialize(serde_ignored::Deserializer::new(de, &mut note))
                .map_err(|e| parse_error(e.path().to_string(), e.inner().to_string()))?
        };
        if let Some((at, field)) = unknown.into_iter().next() {
            return Err(parse_error(at, format!("unknown field `{field}`")));
        }
        parsed.validate(source)?;
        Ok(parsed)
    }

    fn validate(&self, source: &str) -> Result<(), TenantsFileError> {
        let mut ids = HashSet::new();
        let mut numbers = HashSet::new();
        let mut shops = HashSet::new();
        for t in &self.tenants {
            let invalid = |reason: String| TenantsFileError::Invalid {
                path: source.to_owned(),
                tenant: t.id.to_string(),
                reason,
            };
            if !ids.insert(&t.id) {
                return Err(invalid("duplicate tenant id".into()));
            }
            if t.name.trim().is_empty() {
                return Err(invalid("name is empty".into()));
            }
            t.retention_days.validate().map_err(|r| invalid(r.into()))?;
            if let Some(meta) = &t.channels.meta {
                if meta.phone_number_id.is_empty() || !meta.phone_number_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(invalid("channels.meta.phone_number_id must be alphanumeric".into()));
                }
                if !numbers.insert(meta.phone_number_id.as_str()) {
                    // Two tenants on one number would make routing ambiguous: refuse.
                    return Err(invalid("channels.meta.phone_number_id is already used by another tenant".into()));
                }
                if meta.access_token.is_empty() {
                    return Err(invalid("channels.meta.access_token is empty".into()));
                }
                if meta.waba_id.as_ref().is_some_and(|w| w.is_empty() || !w.bytes().all(|b| b.is_ascii_digit())) {
                    return Err(invalid("channels.meta.waba_id must be digits".into()));
                }
                if let Some(display) = &meta.display_phone_number
                    && E164::parse(&display_digits(display)).is_err()
                {
                    return Err(invalid("channels.meta.display_phone_number must be a phone number".into()));
                }
            }
            if let Some(twilio) = &t.channels.twilio {
                if !twilio.account_sid.starts_with("AC") || twilio.auth_token.is_empty() {
                    return Err(invalid("channels.twilio needs an AC… account_sid and an auth_token".into()));
                }
                E164::parse(&twilio.from).map_err(|_| invalid("channels.twilio.from must be a phone number".into()))?;
            }
            if let Some(shop) = &t.shopify {
                // Stored lower-cased (domains are case-insensitive): compare them so too.
                let domain = shop.shop_domain.to_ascii_lowercase();
                if !domain.ends_with(".myshopify.com") {
                    return Err(invalid("shopify.shop_domain must be <shop>.myshopify.com".into()));
                }
                if !shops.insert(domain) {
                    return Err(invalid("shopify.shop_domain is already used by another tenant".into()));
                }
            }
            t.settings().validate().map_err(invalid)?;
        }
        Ok(())
    }
}

impl MetaChannelSpec {
    /// The display number in E.164, when given.
    pub fn display_e164(&self) -> Option<E164> {
        self.display_phone_number.as_deref().and_then(|d| E164::parse(&display_digits(d)).ok())
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
      meta: { phone_number_id: "1111", waba_id: "2222", display_phone_number: "+34 600 111 222", access_token: "EAAG-secret" }
      twilio: { account_sid: AC123, auth_token: twilio-tok-secret, from: "whatsapp:+14155550100" }
    shopify: { shop_domain: acme.myshopify.com }
    knowledge_base:
      - { title: Hours, text: "Mon-Fri 9-17" }
    retention_days: { messages: 365 }
    timezone: Europe/Madrid
    language: es
    persona: "Eres el asistente de Acme Dental."
    opening_hours: { mon: ["09:00-14:00", "16:00-19:00"], sat: ["10:00-13:00"] }
    booking: { slot_minutes: 15, horizon_days: 60, services: [{ name: Limpieza, minutes: 45 }] }
    keywords: { es: { opt_out: [BAJA], opt_in: [ALTA], handoff: [persona] } }
    burst: { quiet_window_ms: 3000 }
    outside_window_template: { name: reengage, language: es }
"#;

    #[test]
    fn yaml_and_json_forms_parse_with_defaults() {
        let f = TenantsFile::parse(YAML, false, "t.yaml").unwrap();
        let t = &f.tenants[0];
        assert_eq!(t.retention_days.messages, 365);
        assert_eq!(t.retention_days.leads, 730);
        assert_eq!(t.knowledge_base.len(), 1);
        let s = t.settings();
        assert_eq!((s.timezone.as_str(), s.language.as_str()), ("Europe/Madrid", "es"));
        assert_eq!(s.default_country.as_deref(), Some("ES"), "from the tenant's own number");
        assert_eq!(s.booking.services[0].minutes, 45);
        assert_eq!(s.burst.quiet_window_ms, 3000);
        assert_eq!(t.channels.meta.as_ref().unwrap().display_e164().unwrap().as_str(), "+34600111222");

        let json =
            r#"{"tenants":[{"id":"b","name":"B","channels":{"meta":{"phone_number_id":"22","access_token":"x"}}}]}"#;
        let f = TenantsFile::parse(json, true, "t.json").unwrap();
        assert_eq!(f.tenants[0].settings(), TenantSettings::default());
    }

    #[test]
    fn tokens_do_not_show_in_debug_output() {
        let f = TenantsFile::parse(YAML, false, "t.yaml").unwrap();
        let printed = format!("{f:?}");
        assert!(printed.contains("acme-dental"), "{printed}");
        assert!(!printed.contains("EAAG-secret") && !printed.contains("twilio-tok-secret"), "{printed}");
    }

    #[test]
    fn one_shop_in_two_spellings_is_refused() {
        let twice = r#"{"tenants":[
            {"id":"a","name":"A","shopify":{"shop_domain":"Acme.myshopify.com"}},
            {"id":"b","name":"B","shopify":{"shop_domain":"acme.MyShopify.com"}}]}"#;
        let err = TenantsFile::parse(twice, true, "f").unwrap_err().to_string();
        assert!(err.contains("already used by another tenant"), "{err}");
    }

    #[test]
    fn a_number_claimed_twice_or_a_bad_id_is_refused() {
        let twice = r#"{"tenants":[
            {"id":"a","name":"A","channels":{"meta":{"phone_number_id":"1","access_token":"x"}}},
            {"id":"b","name":"B","channels":{"meta":{"phone_number_id":"1","access_token":"y"}}}]}"#;
        assert!(matches!(TenantsFile::parse(twice, true, "f"), Err(TenantsFileError::Invalid { .. })));
        assert!(TenantsFile::parse(r#"{"tenants":[{"id":"A#B","name":"x"}]}"#, true, "f").is_err());
    }

    #[test]
    fn an_unknown_field_is_named_with_its_place_and_the_file() {
        let typo = "tenants:\n  - id: a\n    name: A\n    booking: { slot_minute: 30 }\n";
        let err = TenantsFile::parse(typo, false, "my-tenants.yaml").unwrap_err().to_string();
        assert!(err.starts_with("my-tenants.yaml: at tenants[0].booking"), "{err}");
        assert!(err.contains("unknown field `slot_minute`"), "{err}");
        let top = r#"{"tenants":[{"id":"a","name":"x","typo":1}]}"#;
        let err = TenantsFile::parse(top, true, "t.json").unwrap_err().to_string();
        assert!(err.contains("t.json") && err.contains("tenants[0]") && err.contains("`typo`"), "{err}");
    }

    #[test]
    fn an_unknown_field_in_the_settings_or_retention_is_named_too() {
        let typo = "tenants:\n  - id: a\n    name: A\n    keywords: { en: { opt_outs: [STOP] } }\n";
        let err = TenantsFile::parse(typo, false, "t.yaml").unwrap_err().to_string();
        assert_eq!(err, "t.yaml: at tenants[0].keywords.en: unknown field `opt_outs`");
        let typo = r#"{"tenants":[{"id":"a","name":"A","retention_days":{"mesages":30}}]}"#;
        let err = TenantsFile::parse(typo, true, "t.json").unwrap_err().to_string();
        assert_eq!(err, "t.json: at tenants[0].retention_days: unknown field `mesages`");
        // Dotted or numeric names stay whole.
        let typo = r#"{"tenants":[{"id":"a","name":"A","keywords":{"en-US":{"opt.out":["STOP"]}}}]}"#;
        let err = TenantsFile::parse(typo, true, "t.json").unwrap_err().to_string();
        assert_eq!(err, "t.json: at tenants[0].keywords.en-US: unknown field `opt.out`");
    }

    #[test]
    fn a_profile_stored_by_a_newer_loader_is_still_read() {
        let stored = serde_json::json!({"timezone": "Europe/Madrid", "booking": {"slot_minutes": 15, "buffer_minutes": 5}, "new_setting": true});
        let settings: TenantSettings = serde_json::from_value(stored).unwrap();
        assert_eq!((settings.timezone.as_str(), settings.booking.slot_minutes), ("Europe/Madrid", 15));
        let retention: RetentionDays =
            serde_json::from_value(serde_json::json!({"messages": 30, "future": 1})).unwrap();
        assert_eq!(retention.messages, 30);
    }

    #[test]
    fn a_bad_setting_is_named_with_the_tenant_and_the_file() {
        let bad = "tenants:\n  - id: a\n    name: A\n    timezone: Europe/Atlantis\n";
        let err = TenantsFile::parse(bad, false, "t.yaml").unwrap_err().to_string();
        assert!(err.starts_with("t.yaml: tenant a: timezone"), "{err}");
    }
}
