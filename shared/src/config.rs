//! Configuration, read once at cold start from the function's environment (in the local
//! runner, the template's resolved variables, then the env-vars file, then the shell); anything
//! missing fails the init, not a request. Platform secrets are read from Secrets Manager at init
//! and kept for the warm life of the function, never from variables CloudFormation resolved
//! (which `lambda:GetFunctionConfiguration` would show); locally the variables carry them.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {0}: {1}")]
    Invalid(&'static str, &'static str),
    #[error(
        "secret {0} is neither set as a variable nor found in the Secrets Manager secret named by PLATFORM_SECRET_ID"
    )]
    MissingSecret(&'static str),
    #[error("reading the platform secret failed: {0}")]
    SecretsManager(String),
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

/// Variables every function may be given from outside the template (DESIGN.md, Configuration):
/// locally, the shell's value of these wins over the template and the env-vars file.
pub const NAMED_VARIABLES: [&str; 12] = [
    "META_GRAPH_BASE_URL",
    "META_GRAPH_VERSION",
    "TWILIO_API_BASE_URL",
    "PUBLIC_BASE_URL",
    "LLM_PROVIDER",
    "LLM_BASE_URL",
    "LLM_MODEL",
    "LLM_API_KEY",
    "META_APP_SECRET",
    "META_VERIFY_TOKEN",
    "SHOPIFY_CLIENT_SECRET",
    "CONTACT_HASH_KEY",
];

/// A function's environment.
#[derive(Clone, Default)]
pub struct Env(BTreeMap<String, String>);

impl fmt::Debug for Env {
    // Values may be secrets: names only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Env {
    pub fn from_process() -> Self {
        Self(std::env::vars().collect())
    }

    pub fn from_map(vars: BTreeMap<String, String>) -> Self {
        Self(vars)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn optional(&self, name: &'static str) -> Option<String> {
        self.get(name).filter(|v| !v.trim().is_empty()).map(str::to_owned)
    }

    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.optional(name).ok_or(ConfigError::Missing(name))
    }

    pub fn master_key(&self) -> Result<MasterKeySource, ConfigError> {
        match (self.optional("SECRETS_KEY_FILE"), self.optional("KMS_KEY_ID")) {
            (Some(path), _) => Ok(MasterKeySource::File(path.into())),
            (None, Some(key)) => Ok(MasterKeySource::Kms(key)),
            (None, None) => Err(ConfigError::Missing("KMS_KEY_ID (or SECRETS_KEY_FILE locally)")),
        }
    }

    /// `PUBLIC_BASE_URL` without its trailing slash; must be an http(s) URL when set.
    pub fn public_base_url(&self) -> Result<Option<String>, ConfigError> {
        let url = self.optional("PUBLIC_BASE_URL").map(|u| u.trim_end_matches('/').to_owned());
        match url {
            Some(u) if !(u.starts_with("https://") || u.starts_with("http://")) => {
                Err(ConfigError::Invalid("PUBLIC_BASE_URL", "must start with https:// or http://"))
            }
            other => Ok(other),
        }
    }
}

/// A platform secret: its variable name and its key in the Secrets Manager secret's JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretName {
    pub variable: &'static str,
    pub json_key: &'static str,
}

pub const META_APP_SECRET: SecretName = SecretName { variable: "META_APP_SECRET", json_key: "meta_app_secret" };
pub const META_VERIFY_TOKEN: SecretName = SecretName { variable: "META_VERIFY_TOKEN", json_key: "meta_verify_token" };
pub const SHOPIFY_CLIENT_SECRET: SecretName =
    SecretName { variable: "SHOPIFY_CLIENT_SECRET", json_key: "shopify_client_secret" };
/// The model provider's API key (`LLM_PROVIDER` openai or anthropic).
pub const LLM_API_KEY: SecretName = SecretName { variable: "LLM_API_KEY", json_key: "llm_api_key" };
pub const CONTACT_HASH_KEY: SecretName = SecretName { variable: "CONTACT_HASH_KEY", json_key: "contact_hash_key" };

/// The platform secrets a function asked for, read once.
#[derive(Clone)]
pub struct PlatformSecrets(HashMap<&'static str, Secret>);

impl fmt::Debug for PlatformSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl PlatformSecrets {
    /// Each secret from its variable if set (locally), else from the JSON of the Secrets Manager
    /// secret named by `PLATFORM_SECRET_ID`, fetched once for all of them.
    pub async fn load(
        env: &Env,
        client: &aws_sdk_secretsmanager::Client,
        names: &[SecretName],
    ) -> Result<Self, ConfigError> {
        Self::load_with(env, client, names, &[]).await
    }

    /// The same, plus secrets that may be absent (e.g. a model API key that only some
    /// providers need): those are left out instead of failing the init.
    pub async fn load_with(
        env: &Env,
        client: &aws_sdk_secretsmanager::Client,
        names: &[SecretName],
        optional: &[SecretName],
    ) -> Result<Self, ConfigError> {
        let mut out = HashMap::new();
        let mut stored: Option<serde_json::Map<String, serde_json::Value>> = None;
        for name in names.iter().chain(optional) {
            let required = names.contains(name);
            if let Some(value) = env.optional(name.variable) {
                if value.starts_with("{{resolve:") {
                    return Err(ConfigError::Invalid(name.variable, "an unresolved secret reference"));
                }
                out.insert(name.variable, Secret(value));
                continue;
            }
            let Some(secret_id) = env.optional("PLATFORM_SECRET_ID") else {
                if required {
                    return Err(ConfigError::MissingSecret(name.variable));
                }
                continue;
            };
            if stored.is_none() {
                match fetch(client, &secret_id).await {
                    Ok(secret) => stored = Some(secret),
                    Err(e) if required => return Err(e),
                    // Only optional secrets were wanted from it (a model key an offline
                    // assistant does not need): without the secret, they are absent.
                    Err(_) => continue,
                }
            }
            let value = stored.as_ref().and_then(|s| s.get(name.json_key)?.as_str()).filter(|v| !v.is_empty());
            match value {
                Some(value) => {
                    out.insert(name.variable, Secret(value.to_owned()));
                }
                None if required => return Err(ConfigError::MissingSecret(name.variable)),
                None => {}
            }
        }
        Ok(Self(out))
    }

    /// An optional secret, if it was found.
    pub fn find(&self, name: SecretName) -> Option<Secret> {
        self.0.get(name.variable).cloned()
    }

    /// A secret this function asked for at load (a programming error otherwise).
    pub fn get(&self, name: SecretName) -> Secret {
        self.0.get(name.variable).cloned().unwrap_or_else(|| panic!("{} was not loaded", name.variable))
    }
}

async fn fetch(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, ConfigError> {
    let out = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| ConfigError::SecretsManager(crate::aws::describe(e)))?;
    let text = out.secret_string().ok_or(ConfigError::SecretsManager("the secret holds no SecretString".into()))?;
    serde_json::from_str(text).map_err(|_| ConfigError::SecretsManager("the SecretString is not a JSON object".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_map(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn offline_client() -> aws_sdk_secretsmanager::Client {
        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
            .region(aws_sdk_secretsmanager::config::Region::new("us-east-1"))
            .build();
        aws_sdk_secretsmanager::Client::from_conf(config)
    }

    #[tokio::test]
    async fn variables_win_and_hide_their_values() {
        let e = env(&[("META_APP_SECRET", "s3cr3t"), ("CONTACT_HASH_KEY", "k")]);
        let secrets = PlatformSecrets::load(&e, &offline_client(), &[META_APP_SECRET, CONTACT_HASH_KEY]).await.unwrap();
        assert_eq!(secrets.get(META_APP_SECRET).expose(), "s3cr3t");
        assert!(!format!("{secrets:?}{e:?}").contains("s3cr3t"));
    }

    #[tokio::test]
    async fn a_missing_or_unresolved_secret_fails_the_init() {
        let e = env(&[("META_APP_SECRET", "")]);
        let err = PlatformSecrets::load(&e, &offline_client(), &[META_APP_SECRET]).await.unwrap_err();
        assert!(matches!(err, ConfigError::MissingSecret("META_APP_SECRET")), "{err}");
        let e = env(&[("META_APP_SECRET", "{{resolve:secretsmanager:x:SecretString:y}}")]);
        let err = PlatformSecrets::load(&e, &offline_client(), &[META_APP_SECRET]).await.unwrap_err();
        assert!(matches!(err, ConfigError::Invalid("META_APP_SECRET", _)));
    }

    #[tokio::test]
    async fn an_optional_secret_may_be_absent_a_required_one_may_not() {
        // The secret cannot be read (no such secret, here: no endpoint at all).
        let e = env(&[("PLATFORM_SECRET_ID", "concierge/platform"), ("CONTACT_HASH_KEY", "k")]);
        let loaded =
            PlatformSecrets::load_with(&e, &offline_client(), &[CONTACT_HASH_KEY], &[LLM_API_KEY]).await.unwrap();
        assert!(loaded.find(LLM_API_KEY).is_none());
        assert_eq!(loaded.get(CONTACT_HASH_KEY).expose(), "k");
        let err = PlatformSecrets::load_with(&e, &offline_client(), &[LLM_API_KEY], &[]).await;
        assert!(err.is_err());
        let e = env(&[("LLM_API_KEY", "sk-1")]);
        let loaded = PlatformSecrets::load_with(&e, &offline_client(), &[], &[LLM_API_KEY]).await.unwrap();
        assert_eq!(loaded.find(LLM_API_KEY).unwrap().expose(), "sk-1");
    }

    #[test]
    fn public_base_url_is_trimmed_and_checked() {
        assert_eq!(
            env(&[("PUBLIC_BASE_URL", "https://h.example.com/")]).public_base_url().unwrap().as_deref(),
            Some("https://h.example.com")
        );
        assert!(env(&[("PUBLIC_BASE_URL", "h.example.com")]).public_base_url().is_err());
        assert_eq!(env(&[]).public_base_url().unwrap(), None);
        assert_eq!(env(&[("KMS_KEY_ID", "k")]).master_key().unwrap(), MasterKeySource::Kms("k".into()));
    }
}
