//! Which model the assistant talks to, chosen by the environment (`LLM_PROVIDER`, `LLM_MODEL`,
//! `LLM_BASE_URL`): offline unless told otherwise, so a fresh deployment answers from its
//! knowledge base without any vendor account.

use std::fmt;

use super::{AnthropicChat, BedrockChat, ChatModel, ChatRequest, ChatResponse, ModelError, OfflineModel, OpenAiChat};
use crate::config::{ConfigError, Env};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    Offline,
    OpenAi,
    Anthropic,
    Bedrock,
}

impl ProviderKind {
    const ALLOWED: &'static str = "must be one of offline, openai, anthropic, bedrock";

    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "offline" => Some(Self::Offline),
            "openai" => Some(Self::OpenAi),
            "anthropic" => Some(Self::Anthropic),
            "bedrock" => Some(Self::Bedrock),
            _ => None,
        }
    }

    /// The model used when `LLM_MODEL` is not set.
    pub fn default_model(self) -> &'static str {
        match self {
            Self::Offline => "offline",
            Self::OpenAi => "gpt-4o-mini",
            Self::Anthropic => "claude-sonnet-4-5",
            Self::Bedrock => "anthropic.claude-3-5-haiku-20241022-v1:0",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Offline => "offline",
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
            Self::Bedrock => "bedrock",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelConfig {
    pub kind: ProviderKind,
    pub model: String,
    /// The vendor's API root (OpenAI's ending in `/v1`), without a trailing slash; `None` for
    /// the vendor's own. Bedrock takes its endpoint from the SDK's configuration instead.
    pub base_url: Option<String>,
}

impl ModelConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let kind = ProviderKind::parse(env.get("LLM_PROVIDER").unwrap_or(""))
            .ok_or(ConfigError::Invalid("LLM_PROVIDER", ProviderKind::ALLOWED))?;
        let model = env.optional("LLM_MODEL").map_or_else(|| kind.default_model().to_owned(), |m| m.trim().to_owned());
        let base_url = env.optional("LLM_BASE_URL").map(|u| u.trim().trim_end_matches('/').to_owned());
        if let Some(url) = &base_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(ConfigError::Invalid("LLM_BASE_URL", "must start with https:// or http://"));
        }
        Ok(Self { kind, model, base_url })
    }
}

/// Any of the providers, behind the port.
#[derive(Debug, Clone)]
pub enum AnyModel {
    Offline(OfflineModel),
    OpenAi(OpenAiChat),
    Anthropic(AnthropicChat),
    Bedrock(BedrockChat),
}

impl AnyModel {
    /// The configured provider. `api_key` is the platform secret `LLM_API_KEY`; `bedrock` is
    /// called only when Bedrock is chosen (its client needs the AWS configuration).
    pub fn new(
        config: &ModelConfig,
        api_key: Option<String>,
        http: reqwest::Client,
        bedrock: impl FnOnce() -> aws_sdk_bedrockruntime::Client,
    ) -> Result<Self, ConfigError> {
        let api_key = api_key.filter(|k| !k.trim().is_empty());
        let base = |default: &str| config.base_url.clone().unwrap_or_else(|| default.to_owned());
        Ok(match config.kind {
            ProviderKind::Offline => Self::Offline(OfflineModel),
            // A local OpenAI-compatible server (LLM_BASE_URL) may need no key; OpenAI itself does,
            // and starting without one would turn every answer into the fallback.
            ProviderKind::OpenAi => {
                if api_key.is_none() && config.base_url.is_none() {
                    return Err(ConfigError::MissingSecret("LLM_API_KEY"));
                }
                Self::OpenAi(OpenAiChat::new(http, base(super::openai::DEFAULT_BASE_URL), api_key, &config.model))
            }
            ProviderKind::Anthropic => {
                let key = api_key.ok_or(ConfigError::MissingSecret("LLM_API_KEY"))?;
                Self::Anthropic(AnthropicChat::new(http, base(super::anthropic::DEFAULT_BASE_URL), key, &config.model))
            }
            ProviderKind::Bedrock => Self::Bedrock(BedrockChat::new(bedrock(), &config.model)),
        })
    }
}

impl ChatModel for AnyModel {
    fn name(&self) -> &'static str {
        match self {
            Self::Offline(m) => m.name(),
            Self::OpenAi(m) => m.name(),
            Self::Anthropic(m) => m.name(),
            Self::Bedrock(m) => m.name(),
        }
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ModelError> {
        match self {
            Self::Offline(m) => m.complete(request).await,
            Self::OpenAi(m) => m.complete(request).await,
            Self::Anthropic(m) => m.complete(request).await,
            Self::Bedrock(m) => m.complete(request).await,
        }
    }
}

/// The HTTP client for model calls, kept for the warm life of the function (connections are
/// reused); each call's timeout comes from `Retrying`, within the invocation's deadline.
pub fn http_client() -> Result<reqwest::Client, ConfigError> {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(3))
        .build()
        .map_err(|_| ConfigError::Invalid("LLM_BASE_URL", "the HTTP client could not be built"))
}

#[cfg(test)]
mod tests {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::assistant::model::testing::round_trip;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_map(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn no_bedrock() -> aws_sdk_bedrockruntime::Client {
        panic!("the Bedrock client is built only for Bedrock")
    }

    #[test]
    fn unset_or_empty_provider_means_offline() {
        for e in [env(&[]), env(&[("LLM_PROVIDER", "")]), env(&[("LLM_PROVIDER", " Offline ")])] {
            let config = ModelConfig::from_env(&e).unwrap();
            assert_eq!((config.kind, config.base_url), (ProviderKind::Offline, None));
        }
    }

    #[test]
    fn each_provider_has_a_default_model_and_the_variables_override_it() {
        let config = ModelConfig::from_env(&env(&[("LLM_PROVIDER", "OpenAI")])).unwrap();
        assert_eq!((config.kind, config.model.as_str()), (ProviderKind::OpenAi, "gpt-4o-mini"));
        let config = ModelConfig::from_env(&env(&[("LLM_PROVIDER", "anthropic")])).unwrap();
        assert_eq!(config.model, "claude-sonnet-4-5");
        let config =
            ModelConfig::from_env(&env(&[("LLM_PROVIDER", "bedrock"), ("LLM_MODEL", "amazon.nova-lite-v1:0")]))
                .unwrap();
        assert_eq!((config.kind, config.model.as_str()), (ProviderKind::Bedrock, "amazon.nova-lite-v1:0"));
        let config = ModelConfig::from_env(&env(&[
            ("LLM_PROVIDER", "openai"),
            ("LLM_BASE_URL", "http://127.0.0.1:11434/v1/"),
            ("LLM_MODEL", "llama3.2"),
        ]))
        .unwrap();
        assert_eq!(config.base_url.as_deref(), Some("http://127.0.0.1:11434/v1"));
        assert_eq!(config.model, "llama3.2");
    }

    #[test]
    fn unknown_providers_and_odd_urls_fail_the_init_by_name() {
        let err = ModelConfig::from_env(&env(&[("LLM_PROVIDER", "gemini")])).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid("LLM_PROVIDER", _)), "{err}");
        assert!(err.to_string().contains("offline, openai, anthropic, bedrock"), "{err}");
        let err = ModelConfig::from_env(&env(&[("LLM_PROVIDER", "openai"), ("LLM_BASE_URL", "api.openai.com/v1")]))
            .unwrap_err();
        assert!(matches!(err, ConfigError::Invalid("LLM_BASE_URL", _)), "{err}");
    }

    #[test]
    fn keys_are_required_unless_a_local_server_is_named_and_never_printed() {
        let http = reqwest::Client::new();
        let anthropic = ModelConfig { kind: ProviderKind::Anthropic, model: "c".into(), base_url: None };
        let err = AnyModel::new(&anthropic, Some(" ".into()), http.clone(), no_bedrock).unwrap_err();
        assert!(matches!(err, ConfigError::MissingSecret("LLM_API_KEY")), "{err}");
        let model = AnyModel::new(&anthropic, Some("sk-ant-secret".into()), http.clone(), no_bedrock).unwrap();
        assert_eq!(model.name(), "anthropic");
        assert!(!format!("{model:?}").contains("sk-ant-secret"));

        // OpenAI itself needs a key; a local OpenAI-compatible server may not.
        let openai = ModelConfig { kind: ProviderKind::OpenAi, model: "m".into(), base_url: None };
        assert!(AnyModel::new(&openai, None, http.clone(), no_bedrock).is_err());
        let local = ModelConfig { base_url: Some("http://127.0.0.1:8080/v1".into()), ..openai.clone() };
        assert_eq!(AnyModel::new(&local, None, http.clone(), no_bedrock).unwrap().name(), "openai");
        let model = AnyModel::new(&openai, Some("sk-secret".into()), http.clone(), no_bedrock).unwrap();
        assert!(!format!("{model:?}").contains("sk-secret"));
        let offline = ModelConfig::from_env(&env(&[])).unwrap();
        assert_eq!(AnyModel::new(&offline, None, http, no_bedrock).unwrap().name(), "offline");
    }

    #[tokio::test]
    async fn the_chosen_provider_is_the_one_called_at_the_configured_url() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "choices": [{"message": {"content": "From the local server"}, "finish_reason": "stop"}]
            })))
            .expect(1)
            .mount(&server)
            .await;
        let base = format!("{}/v1/", server.uri());
        let config =
            ModelConfig::from_env(&env(&[("LLM_PROVIDER", "openai"), ("LLM_BASE_URL", base.as_str())])).unwrap();
        let model = AnyModel::new(&config, None, reqwest::Client::new(), no_bedrock).unwrap();
        let answer = model.complete(&round_trip()).await.unwrap();
        assert_eq!(answer.text.as_deref(), Some("From the local server"));
    }
}
