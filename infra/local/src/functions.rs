//! The template's functions, built in-process with the environment SAM would give them:
//! `!Ref`/`!GetAtt`/`!Sub` resolved against the provisioned resources, then the overrides of an
//! env-vars file in `sam local invoke --env-vars` format (how local secrets are supplied).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use aws_config::SdkConfig;
use concierge::aws::AwsClients;
use concierge::config::{IngestConfig, Vars};
use lambda_http::{Body, Request, Response};

use crate::provision::Provisioned;
use crate::template::{FunctionDef, Intrinsic, intrinsic};

/// `{"Parameters": {..}, "<LogicalId>": {..}}`, as `sam local invoke --env-vars` reads it.
#[derive(Debug, Default)]
pub struct EnvOverrides(serde_json::Map<String, serde_json::Value>);

impl EnvOverrides {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        match value {
            serde_json::Value::Object(map) => Ok(Self(map)),
            _ => bail!("{} must be a JSON object", path.display()),
        }
    }

    fn for_function<'a>(&'a self, logical_id: &'a str) -> impl Iterator<Item = (String, String)> + 'a {
        ["Parameters", logical_id]
            .into_iter()
            .filter_map(|k| self.0.get(k)?.as_object())
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
    }
}

/// The environment a function gets. `extra` holds what only the local stack sets (the key
/// file, the sandbox base URLs) and wins over the template and the env-vars file.
pub fn resolve_environment(
    def: &FunctionDef,
    provisioned: &Provisioned,
    parameters: &BTreeMap<String, String>,
    overrides: &EnvOverrides,
    extra: &[(&str, String)],
) -> Result<BTreeMap<String, String>> {
    let lookup_ref = |name: &str| -> Result<String> {
        parameters
            .get(name)
            .map(String::as_str)
            .or_else(|| provisioned.reference(name))
            .or(match name {
                "AWS::Region" => Some("us-east-1"),
                "AWS::AccountId" => Some("000000000000"),
                "AWS::URLSuffix" => Some("amazonaws.com"),
                _ => None,
            })
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("{}: cannot resolve !Ref {name}", def.logical_id))
    };
    let mut env = BTreeMap::new();
    for (name, value) in &def.environment {
        let resolved = match intrinsic(value) {
            Intrinsic::Literal(s) => s,
            Intrinsic::Ref(r) => lookup_ref(r)?,
            Intrinsic::GetAtt(r, a) => provisioned
                .attribute(r, a)
                .ok_or_else(|| anyhow!("{}: cannot resolve !GetAtt {r}.{a}", def.logical_id))?
                .to_owned(),
            Intrinsic::Sub(s) => substitute(s, &lookup_ref, provisioned)?,
        };
        env.insert(name.clone(), resolved);
    }
    env.extend(overrides.for_function(&def.logical_id));
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    let unresolved: Vec<&str> = env.iter().filter(|(_, v)| v.contains("{{resolve:")).map(|(k, _)| k.as_str()).collect();
    if !unresolved.is_empty() {
        bail!("{}: give {} in the env-vars file (infra/local/env.json)", def.logical_id, unresolved.join(", "));
    }
    Ok(env)
}

/// `${Name}` and `${Resource.Attribute}`; dynamic references `{{resolve:…}}` are left alone.
fn substitute(text: &str, lookup_ref: &dyn Fn(&str) -> Result<String>, provisioned: &Provisioned) -> Result<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').ok_or_else(|| anyhow!("unterminated ${{ in !Sub"))? + start;
        let name = &rest[start + 2..end];
        let value = match name.split_once('.') {
            Some((r, a)) if !name.starts_with("AWS::") => {
                provisioned.attribute(r, a).map(str::to_owned).ok_or_else(|| anyhow!("cannot resolve ${{{name}}}"))?
            }
            _ => lookup_ref(name)?,
        };
        out.push_str(&value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A function's handler, linked in from its crate.
pub enum Handler {
    WebhookIngest(Arc<webhook_ingest::App>),
}

pub struct LocalFunction {
    pub def: FunctionDef,
    pub env: BTreeMap<String, String>,
    pub handler: Handler,
}

impl LocalFunction {
    /// Builds the function as its `main.rs` would, from its resolved environment.
    pub async fn build(def: FunctionDef, env: BTreeMap<String, String>, sdk: &SdkConfig) -> Result<Self> {
        let vars = Vars(|k: &str| env.get(k).cloned());
        let handler = match def.binary.as_str() {
            "webhook-ingest" => {
                let config = IngestConfig::from_vars(&vars).with_context(|| def.logical_id.clone())?;
                let app = webhook_ingest::App::new(config, AwsClients::new(sdk))?;
                app.warm_up().await;
                Handler::WebhookIngest(Arc::new(app))
            }
            other => bail!("{}: the local runner does not know binary {other:?}", def.logical_id),
        };
        Ok(Self { def, env, handler })
    }

    /// How to hand this function an SQS batch (none of today's functions consumes a queue).
    pub fn sqs_handler(&self) -> Option<crate::event_sources::SqsHandler> {
        match &self.handler {
            Handler::WebhookIngest(_) => None,
        }
    }

    pub fn is_http(&self) -> bool {
        !self.def.http_routes.is_empty()
    }

    pub async fn call_http(&self, req: Request) -> Result<Response<Body>> {
        match &self.handler {
            Handler::WebhookIngest(app) => webhook_ingest::handle(app, req).await.map_err(|e| anyhow!(e.to_string())),
        }
    }
}
