//! The template's functions, each built in-process by its own composition root with the
//! environment SAM would give it: the template's variables (`!Ref`/`!GetAtt`/`!Sub` resolved
//! against the provisioned resources), then what only the local stack sets (key file, sandbox
//! URLs), then the env-vars file (`sam local invoke --env-vars` format), then the shell's value
//! of any variable the function declares or DESIGN.md names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use aws_config::SdkConfig;
use concierge::aws::{AwsClients, RequestCounter};
use concierge::clock::Clock;
use concierge::config::{Env, NAMED_VARIABLES};
use concierge::function::{self, Event, Function, Setup};
use lambda_runtime::Context;
use serde_json::Value;

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

/// Where a variable's value comes from, lowest precedence first.
pub struct EnvSources<'a> {
    pub provisioned: &'a Provisioned,
    pub parameters: &'a BTreeMap<String, String>,
    /// What only the local stack sets (the key file, the sandbox base URLs).
    pub local: &'a [(&'a str, String)],
    pub overrides: &'a EnvOverrides,
    /// The shell: consulted for the variables the function declares and the named ones.
    pub shell: &'a (dyn Fn(&str) -> Option<String> + Send + Sync),
}

/// The environment a function gets: template < local stack < env-vars file < shell.
pub fn resolve_environment(def: &FunctionDef, sources: &EnvSources<'_>) -> Result<BTreeMap<String, String>> {
    let lookup_ref = |name: &str| -> Result<String> {
        sources
            .parameters
            .get(name)
            .map(String::as_str)
            .or_else(|| sources.provisioned.reference(name))
            .or(match name {
                "AWS::Region" => Some("us-east-1"),
                "AWS::AccountId" => Some("000000000000"),
                "AWS::URLSuffix" => Some("amazonaws.com"),
                "AWS::Partition" => Some("aws"),
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
            Intrinsic::GetAtt(r, a) => sources
                .provisioned
                .attribute(r, a)
                .ok_or_else(|| anyhow!("{}: cannot resolve !GetAtt {r}.{a}", def.logical_id))?
                .to_owned(),
            Intrinsic::Sub(s) => substitute(s, &lookup_ref, sources.provisioned)?,
        };
        env.insert(name.clone(), resolved);
    }
    let declared: BTreeSet<String> = env.keys().cloned().collect();
    env.extend(sources.local.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    env.extend(sources.overrides.for_function(&def.logical_id));
    let from_shell: BTreeSet<&str> = declared.iter().map(String::as_str).chain(NAMED_VARIABLES).collect();
    for name in from_shell {
        if let Some(value) = (sources.shell)(name) {
            env.insert(name.to_owned(), value);
        }
    }
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

/// One function of the template, built and ready for invocations.
pub struct LocalFunction {
    pub def: FunctionDef,
    pub env: BTreeMap<String, String>,
    /// Every AWS request it made (and on which resource): what tests and the IAM check read.
    pub requests: RequestCounter,
    function: Arc<dyn Function>,
    clock: Arc<dyn Clock>,
    invocations: AtomicU64,
}

impl LocalFunction {
    /// Builds the function with the composition root its `main.rs` calls.
    pub async fn build(
        def: FunctionDef,
        env: BTreeMap<String, String>,
        sdk: &SdkConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let entry = crate::registry::entry(&def.binary).ok_or_else(|| {
            anyhow!("{}: no function in this workspace builds binary {:?}", def.logical_id, def.binary)
        })?;
        let requests = RequestCounter::recording_access();
        let setup = Setup {
            env: Env::from_map(env.clone()),
            aws: AwsClients::new(sdk, requests.clone()),
            clock: clock.clone(),
        };
        let function = (entry.build)(setup).await.map_err(|e| anyhow!("{}: {e}", def.logical_id))?;
        Ok(Self { def, env, requests, function, clock, invocations: AtomicU64::new(0) })
    }

    /// A function built elsewhere, hosted like the template's (a stand-in consumer in tests).
    pub fn hosting(def: FunctionDef, function: Arc<dyn Function>, clock: Arc<dyn Clock>) -> Self {
        Self {
            def,
            env: BTreeMap::new(),
            requests: RequestCounter::default(),
            function,
            clock,
            invocations: AtomicU64::new(0),
        }
    }

    /// The clock the function's invocations are timed by.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn is_http(&self) -> bool {
        !self.def.http_routes.is_empty()
    }

    /// Invokes the function as Lambda does: on a task of its own, so it runs to completion even
    /// when whoever asked goes away, and stopped at its timeout. `Err` carries the error message
    /// Lambda would report.
    pub async fn invoke(self: &Arc<Self>, event: Event) -> Result<Value, String> {
        let n = self.invocations.fetch_add(1, Ordering::Relaxed);
        let timeout = Duration::from_secs(self.def.timeout_secs);
        let mut context = Context::default();
        context.request_id = format!("local-{}-{n}", self.def.logical_id);
        context.deadline = (self.clock.now_ms() + timeout.as_millis() as i64) as u64;
        context.invoked_function_arn =
            format!("arn:aws:lambda:us-east-1:000000000000:function:{}", self.def.logical_id);
        let this = self.clone();
        let task = tokio::spawn(async move {
            function::invoke(&*this.function, event, context, &*this.clock).await.map_err(|e| e.to_string())
        });
        // Lambda stops a function at its timeout whether or not anyone still waits for it.
        let abort = task.abort_handle();
        let watchdog = tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            abort.abort();
        });
        let outcome = task.await;
        watchdog.abort();
        match outcome {
            Ok(result) => result,
            Err(e) if e.is_cancelled() => Err(format!("Task timed out after {} seconds", self.def.timeout_secs)),
            Err(e) => Err(format!("the function panicked: {e}")),
        }
    }

    /// `invoke` with an event given as a JSON value.
    pub async fn invoke_json(self: &Arc<Self>, event: &Value) -> Result<Value, String> {
        let raw = serde_json::value::RawValue::from_string(event.to_string()).map_err(|e| e.to_string())?;
        self.invoke(raw).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use concierge::clock::TokioClock;
    use concierge::function::BoxFuture;

    use super::*;

    /// Never finishes; notes when it is stopped.
    struct Forever(Arc<AtomicBool>);

    struct Stopped(Arc<AtomicBool>);

    impl Drop for Stopped {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    impl Function for Forever {
        fn invoke(&self, _: Event, _: Context) -> BoxFuture<'_, Result<Value, function::Error>> {
            let stopped = Stopped(self.0.clone());
            Box::pin(async move {
                let _stopped = stopped;
                std::future::pending().await
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_function_is_stopped_at_its_timeout_even_when_its_caller_has_gone() {
        let stopped = Arc::new(AtomicBool::new(false));
        let def = FunctionDef {
            logical_id: "Forever".into(),
            binary: "forever".into(),
            environment: Vec::new(),
            http_routes: Vec::new(),
            sqs_sources: Vec::new(),
            schedules: Vec::new(),
            timeout_secs: 3,
        };
        let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(0));
        let f = Arc::new(LocalFunction::hosting(def, Arc::new(Forever(stopped.clone())), clock));
        // The caller gives up after a second (an HTTP client hanging up).
        let gave_up = tokio::time::timeout(Duration::from_secs(1), f.invoke_json(&serde_json::json!({}))).await;
        assert!(gave_up.is_err());
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!stopped.load(Ordering::SeqCst), "still running inside its timeout, like Lambda");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(stopped.load(Ordering::SeqCst), "stopped at its timeout");
        // And a caller that waits gets Lambda's timeout error.
        let error = f.invoke_json(&serde_json::json!({})).await.unwrap_err();
        assert_eq!(error, "Task timed out after 3 seconds");
    }
}
