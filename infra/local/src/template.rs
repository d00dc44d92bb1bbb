//! Reads `template.yaml`, the single source of truth for resources and functions, so the local
//! stack provisions and wires exactly what SAM would deploy.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use serde_norway::Value;
use serde_norway::value::Tag;

pub struct Template {
    root: Value,
}

/// A resource property value as the template states it.
pub enum Intrinsic<'a> {
    Literal(String),
    Ref(&'a str),
    GetAtt(&'a str, &'a str),
    Sub(&'a str),
}

#[derive(Debug, Clone)]
pub struct HttpRoute {
    pub method: String,
    pub path: String,
}

#[derive(Debug, Clone)]
pub struct SqsSource {
    pub queue: String,
    pub batch_size: u32,
    pub report_batch_item_failures: bool,
}

/// An EventBridge schedule (`Schedule` or `ScheduleV2` event): `rate(…)` or `cron(…)`.
#[derive(Debug, Clone)]
pub struct ScheduleDef {
    pub name: String,
    pub expression: String,
}

#[derive(Debug, Clone)]
pub struct FunctionDef {
    pub logical_id: String,
    pub binary: String,
    pub environment: Vec<(String, Value)>,
    pub http_routes: Vec<HttpRoute>,
    pub sqs_sources: Vec<SqsSource>,
    pub schedules: Vec<ScheduleDef>,
    /// Seconds (the function's `Timeout`, else the template's global one, else Lambda's 3).
    pub timeout_secs: u64,
}

impl Template {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self> {
        Ok(Self { root: serde_norway::from_str(text).context("template.yaml is not valid YAML")? })
    }

    /// `(logical id, properties)` of every resource of one CloudFormation type.
    pub fn resources_of(&self, kind: &str) -> Vec<(&str, &Value)> {
        let Some(resources) = self.root.get("Resources").and_then(Value::as_mapping) else {
            return Vec::new();
        };
        resources
            .iter()
            .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some(kind))
            .filter_map(|(id, r)| Some((id.as_str()?, r.get("Properties").unwrap_or(&Value::Null))))
            .collect()
    }

    pub fn parameter_defaults(&self) -> BTreeMap<String, String> {
        let Some(params) = self.root.get("Parameters").and_then(Value::as_mapping) else {
            return BTreeMap::new();
        };
        params.iter().filter_map(|(k, v)| Some((k.as_str()?.to_owned(), scalar(v.get("Default")?)?))).collect()
    }

    pub fn functions(&self) -> Result<Vec<FunctionDef>> {
        let global_function = self.root.get("Globals").and_then(|g| g.get("Function"));
        let globals = global_function
            .and_then(|f| f.get("Environment"))
            .and_then(|e| e.get("Variables"))
            .and_then(Value::as_mapping);
        let global_timeout = global_function.and_then(|f| f.get("Timeout")).and_then(Value::as_u64);
        let resources =
            self.root.get("Resources").and_then(Value::as_mapping).ok_or_else(|| anyhow!("no Resources"))?;
        let mut out = Vec::new();
        for (id, resource) in resources {
            if resource.get("Type").and_then(Value::as_str) != Some("AWS::Serverless::Function") {
                continue;
            }
            let id = id.as_str().ok_or_else(|| anyhow!("resource id is not a string"))?.to_owned();
            let binary = resource
                .get("Metadata")
                .and_then(|m| m.get("BuildProperties"))
                .and_then(|b| b.get("Binary"))
                .and_then(Value::as_str)
                .ok_or_else(|| anyhow!("{id}: Metadata.BuildProperties.Binary is required"))?
                .to_owned();
            let props = resource.get("Properties").unwrap_or(&Value::Null);
            let mut environment: Vec<(String, Value)> = Vec::new();
            let own = props.get("Environment").and_then(|e| e.get("Variables")).and_then(Value::as_mapping);
            for vars in [globals, own].into_iter().flatten() {
                for (k, v) in vars {
                    let k = k.as_str().ok_or_else(|| anyhow!("{id}: variable name is not a string"))?.to_owned();
                    environment.retain(|(existing, _)| *existing != k);
                    environment.push((k, v.clone()));
                }
            }
            let mut http_routes = Vec::new();
            let mut sqs_sources = Vec::new();
            let mut schedules = Vec::new();
            if let Some(events) = props.get("Events").and_then(Value::as_mapping) {
                for (name, event) in events {
                    let p = event.get("Properties").unwrap_or(&Value::Null);
                    let text = |key: &str| p.get(key).and_then(Value::as_str).map(str::to_owned);
                    match event.get("Type").and_then(Value::as_str) {
                        Some("HttpApi") => http_routes.push(HttpRoute {
                            method: text("Method").unwrap_or_else(|| "ANY".into()).to_uppercase(),
                            path: text("Path").ok_or_else(|| anyhow!("{id}: HttpApi event without Path"))?,
                        }),
                        Some("SQS") => {
                            let queue = match p.get("Queue").map(intrinsic) {
                                Some(Intrinsic::GetAtt(q, "Arn")) => q.to_owned(),
                                _ => bail!("{id}: SQS event {name:?} must use !GetAtt <Queue>.Arn"),
                            };
                            let report = p
                                .get("FunctionResponseTypes")
                                .and_then(Value::as_sequence)
                                .is_some_and(|s| s.iter().any(|t| t.as_str() == Some("ReportBatchItemFailures")));
                            sqs_sources.push(SqsSource {
                                queue,
                                batch_size: p.get("BatchSize").and_then(Value::as_u64).unwrap_or(10) as u32,
                                report_batch_item_failures: report,
                            });
                        }
                        Some("Schedule" | "ScheduleV2") => {
                            let enabled = p.get("Enabled").and_then(Value::as_bool).unwrap_or(true)
                                && p.get("State").and_then(Value::as_str) != Some("DISABLED");
                            let expression = text("Schedule")
                                .or_else(|| text("ScheduleExpression"))
                                .ok_or_else(|| anyhow!("{id}: schedule {name:?} without an expression"))?;
                            if enabled {
                                schedules.push(ScheduleDef {
                                    name: name.as_str().unwrap_or_default().to_owned(),
                                    expression,
                                });
                            }
                        }
                        _ => {}
                    }
                }
            }
            let timeout_secs = props.get("Timeout").and_then(Value::as_u64).or(global_timeout).unwrap_or(3);
            out.push(FunctionDef {
                logical_id: id,
                binary,
                environment,
                http_routes,
                sqs_sources,
                schedules,
                timeout_secs,
            });
        }
        Ok(out)
    }
}

/// A scalar as text (numbers and booleans as CloudFormation would pass them).
pub fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Recognises the short-form intrinsics the template uses.
pub fn intrinsic(v: &Value) -> Intrinsic<'_> {
    if let Value::Tagged(t) = v {
        let text = t.value.as_str().unwrap_or_default();
        if t.tag == Tag::new("Ref") {
            return Intrinsic::Ref(text);
        }
        if t.tag == Tag::new("GetAtt") {
            let (resource, attribute) = text.split_once('.').unwrap_or((text, ""));
            return Intrinsic::GetAtt(resource, attribute);
        }
        if t.tag == Tag::new("Sub") {
            return Intrinsic::Sub(text);
        }
    }
    Intrinsic::Literal(scalar(v).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_template_declares_the_ingest_function_and_its_routes() {
        let t = Template::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml")).unwrap();
        let functions = t.functions().unwrap();
        let ingest = functions.iter().find(|f| f.logical_id == "WebhookIngestFunction").unwrap();
        assert_eq!(ingest.binary, "webhook-ingest");
        let routes: Vec<String> = ingest.http_routes.iter().map(|r| format!("{} {}", r.method, r.path)).collect();
        for expected in [
            "GET /webhooks/meta",
            "POST /webhooks/meta",
            "POST /webhooks/twilio/{tenant}",
            "POST /webhooks/twilio/{tenant}/status",
        ] {
            assert!(routes.iter().any(|r| r == expected), "{expected} missing from {routes:?}");
        }
        assert!(ingest.environment.iter().any(|(k, _)| k == "MESSAGES_TABLE"));
        assert_eq!(ingest.timeout_secs, 10);
        let sweeper = functions.iter().find(|f| f.logical_id == "InboundSweeperFunction").unwrap();
        assert_eq!(sweeper.schedules[0].expression, "rate(5 minutes)");
    }
}
