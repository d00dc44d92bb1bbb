//! Configuration, read once at cold start from the environment (or, in the local runner, from
//! the template's resolved variables); anything missing fails the init, not a request.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {0}: {1}")]
    Invalid(&'static str, &'static str),
}

/// A secret value: usable, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Where the master key that wraps data keys lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterKeySource {
    /// Local stack: a file of 64 hex characters (`SECRETS_KEY_FILE`).
    File(PathBuf),
    /// AWS: a KMS key id or ARN (`KMS_KEY_ID`).
    Kms(String),
}

/// Reads variables through `get`, so the local runner can hand each function its own set.
pub struct Vars<F>(pub F);

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    pub fn optional(&self, name: &'static str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.optional(name).ok_or(ConfigError::Missing(name))
    }

    pub fn secret(&self, name: &'static str) -> Result<Secret, ConfigError> {
        let value = self.required(name)?;
        if value.starts_with("{{resolve:") {
            return Err(ConfigError::Invalid(name, "an unresolved secret reference"));
        }
        Ok(Secret(value))
    }

    pub fn master_key(&self) -> Result<MasterKeySource, ConfigError> {
        match (self.optional("SECRETS_KEY_FILE"), self.optional("KMS_KEY_ID")) {
            (Some(path), _) => Ok(MasterKeySource::File(path.into())),
            (None, Some(key)) => Ok(MasterKeySource::Kms(key)),
            (None, None) => Err(ConfigError::Missing("KMS_KEY_ID (or SECRETS_KEY_FILE locally)")),
        }
    }
}

pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// `webhook-ingest`.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub messages_table: String,
    pub tenants_table: String,
    pub routes_table: String,
    pub inbound_queue_url: String,
    pub meta_app_secret: Secret,
    pub meta_verify_token: Secret,
    pub contact_hash_key: Secret,
    /// What Twilio signed: the public base URL (custom domain, stage prefix). When unset, the
    /// API's own domain from the request is used.
    pub public_base_url: Option<String>,
    pub master_key: MasterKeySource,
}

impl IngestConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&Vars(process_env))
    }

    pub fn from_vars<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> Result<Self, ConfigError> {
        let public_base_url = vars.optional("PUBLIC_BASE_URL").map(|u| u.trim_end_matches('/').to_owned());
        if let Some(url) = &public_base_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(ConfigError::Invalid("PUBLIC_BASE_URL", "must start with https:// or http://"));
        }
        Ok(Self {
            messages_table: vars.required("MESSAGES_TABLE")?,
            tenants_table: vars.required("TENANTS_TABLE")?,
            routes_table: vars.required("ROUTES_TABLE")?,
            inbound_queue_url: vars.required("INBOUND_QUEUE_URL")?,
            meta_app_secret: vars.secret("META_APP_SECRET")?,
            meta_verify_token: vars.secret("META_VERIFY_TOKEN")?,
            contact_hash_key: vars.secret("CONTACT_HASH_KEY")?,
            public_base_url,
            master_key: vars.master_key()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> Vars<impl Fn(&str) -> Option<String>> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Vars(move |k: &str| map.get(k).cloned())
    }

    const FULL: [(&str, &str); 9] = [
        ("MESSAGES_TABLE", "m"),
        ("TENANTS_TABLE", "t"),
        ("ROUTES_TABLE", "r"),
        ("INBOUND_QUEUE_URL", "q"),
        ("META_APP_SECRET", "s"),
        ("META_VERIFY_TOKEN", "v"),
        ("CONTACT_HASH_KEY", "k"),
        ("KMS_KEY_ID", "key"),
        ("PUBLIC_BASE_URL", "https://hooks.example.com/"),
    ];

    #[test]
    fn reads_everything_and_hides_secrets() {
        let c = IngestConfig::from_vars(&vars(&FULL)).unwrap();
        assert_eq!(c.public_base_url.as_deref(), Some("https://hooks.example.com"));
        assert_eq!(c.master_key, MasterKeySource::Kms("key".into()));
        assert!(!format!("{c:?}").contains("\"s\""));
    }

    #[test]
    fn missing_or_unresolved_values_fail_at_init() {
        let missing: Vec<_> = FULL.iter().copied().filter(|(k, _)| *k != "ROUTES_TABLE").collect();
        assert!(matches!(IngestConfig::from_vars(&vars(&missing)), Err(ConfigError::Missing("ROUTES_TABLE"))));
        let mut unresolved = FULL.to_vec();
        unresolved[4] = ("META_APP_SECRET", "{{resolve:secretsmanager:x:SecretString:y}}");
        assert!(matches!(IngestConfig::from_vars(&vars(&unresolved)), Err(ConfigError::Invalid("META_APP_SECRET", _))));
    }
}
