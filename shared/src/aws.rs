//! AWS SDK clients built once per cold start. One interceptor on every client counts each HTTP
//! attempt (per client and per invocation, see `invocation`) and fits each call's timeouts to
//! the time the invocation has left, so slow AWS answers make a webhook slower, not a 500 that
//! the provider turns into more load.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::timeout::TimeoutConfig;

use crate::invocation;

/// An SDK error with its whole chain of causes, for logs and error values (never for callers).
pub fn describe(err: impl std::error::Error) -> String {
    aws_smithy_types::error::display::DisplayErrorContext(err).to_string()
}

/// Connecting must be quick (a dead endpoint is found fast and the SDK retries elsewhere).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Outside an invocation (the local loader, operator tools): generous, but bounded.
const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(20);
/// Left over at the deadline for the function to answer.
pub const ANSWER_RESERVE: Duration = Duration::from_millis(300);

/// The timeouts of one call made with `remaining` time left in the invocation: the whole
/// operation (retries included) ends before the deadline, and one attempt may take half of it,
/// so a hung connection is retried once on a fresh one while a merely slow AWS still answers.
pub fn timeouts_for(remaining: Duration) -> TimeoutConfig {
    let operation = remaining.saturating_sub(ANSWER_RESERVE).max(Duration::from_millis(50));
    let attempt = (operation / 2).max(operation.min(Duration::from_secs(1)));
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_timeout(operation)
        .operation_attempt_timeout(attempt)
        .build()
}

/// Counts every HTTP attempt an SDK client transmits (retries included), in total and per
/// operation (`DynamoDB:PutItem`, `SQS:SendMessage`, …), and the same per invocation.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    total: Arc<AtomicU64>,
    by_operation: Arc<Mutex<BTreeMap<String, u64>>>,
    /// Which resource each operation touched, and the deduplication id of every queue message
    /// sent; kept only when recording (see `recording_access`).
    access: Option<Arc<Mutex<Recorded>>>,
}

#[derive(Debug, Default)]
struct Recorded {
    accesses: BTreeSet<Access>,
    sent: Vec<String>,
}

/// One operation on one resource, as IAM sees it: `("DynamoDB:Query", "table/x/index/y")`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Access {
    pub operation: String,
    pub resource: String,
}

impl RequestCounter {
    /// A counter that also records which resources each operation touched (local stack and
    /// tests: it reads every request body, which production has no use for).
    pub fn recording_access() -> Self {
        Self { access: Some(Arc::default()), ..Self::default() }
    }

    pub fn get(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    pub fn by_operation(&self) -> BTreeMap<String, u64> {
        self.by_operation.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn operation(&self, name: &str) -> u64 {
        self.by_operation().get(name).copied().unwrap_or(0)
    }

    pub fn accesses(&self) -> Vec<Access> {
        self.recorded(|r| r.accesses.iter().cloned().collect())
    }

    /// The deduplication id of every message sent to a queue, resends included, in order.
    pub fn sent_messages(&self) -> Vec<String> {
        self.recorded(|r| r.sent.clone())
    }

    fn recorded<T: Default>(&self, f: impl FnOnce(&Recorded) -> T) -> T {
        self.access.as_ref().map(|a| f(&a.lock().unwrap_or_else(|p| p.into_inner()))).unwrap_or_default()
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // The orchestrator reads the timeouts after this hook: the invocation's remaining
        // time decides them, call by call.
        if let Some(remaining) = invocation::remaining() {
            cfg.interceptor_state().store_put(timeouts_for(remaining));
        }
        Ok(())
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.total.fetch_add(1, Ordering::Relaxed);
        let Some(op) = cfg.load::<Metadata>() else { return Ok(()) };
        let key = format!("{}:{}", op.service(), op.name());
        invocation::count_request(&key);
        if let Some(access) = &self.access {
            let request = context.request();
            let body = request.body().bytes().unwrap_or_default();
            let mut recorded = access.lock().unwrap_or_else(|p| p.into_inner());
            if key == "DynamoDB:TransactWriteItems" {
                // IAM authorises each item of a transaction by its own action.
                recorded.accesses.extend(transaction_items(body));
            } else {
                for resource in resources(op.service(), request.uri(), body) {
                    recorded.accesses.insert(Access { operation: key.clone(), resource });
                }
            }
            if op.service() == "SQS" && op.name().starts_with("SendMessage") {
                recorded.sent.extend(deduplication_ids(body));
            }
        }
        *self.by_operation.lock().unwrap_or_else(|p| p.into_inner()).entry(key).or_default() += 1;
        Ok(())
    }
}

/// The resources a request names, as `table/<name>[/index/<index>]`, `queue/<url>`,
/// `secret/<id>`, `key/<id>` or `bucket/<name>`.
fn resources(service: &str, uri: &str, body: &[u8]) -> Vec<String> {
    if service == "S3" {
        let path = uri.split("://").nth(1).and_then(|rest| rest.split_once('/')).map_or("", |(_, p)| p);
        return path
            .split('/')
            .next()
            .filter(|b| !b.is_empty())
            .map(|b| vec![format!("bucket/{b}")])
            .unwrap_or_default();
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else { return Vec::new() };
    let mut out = Vec::new();
    collect_resources(&value, &mut out);
    out
}

/// The items of a `TransactWriteItems`, each as the action IAM checks it under.
fn transaction_items(body: &[u8]) -> Vec<Access> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else { return Vec::new() };
    let items = value.get("TransactItems").and_then(|i| i.as_array()).cloned().unwrap_or_default();
    items
        .iter()
        .filter_map(|item| {
            let (kind, request) = item.as_object()?.iter().next()?;
            let table = request.get("TableName")?.as_str()?;
            Some(Access { operation: format!("DynamoDB:{kind}Item"), resource: format!("table/{table}") })
        })
        .collect()
}

fn deduplication_ids(body: &[u8]) -> Vec<String> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else { return Vec::new() };
    let entries = value.get("Entries").and_then(|e| e.as_array()).cloned().unwrap_or_else(|| vec![value]);
    entries.iter().filter_map(|e| e.get("MessageDeduplicationId")?.as_str().map(str::to_owned)).collect()
}

fn collect_resources(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(table) = map.get("TableName").and_then(|t| t.as_str()) {
                match map.get("IndexName").and_then(|i| i.as_str()) {
                    Some(index) => out.push(format!("table/{table}/index/{index}")),
                    None => out.push(format!("table/{table}")),
                }
            }
            // BatchWriteItem / BatchGetItem name their tables as keys.
            if let Some(items) = map.get("RequestItems").and_then(|r| r.as_object()) {
                out.extend(items.keys().map(|table| format!("table/{table}")));
            }
            for (field, prefix) in [("QueueUrl", "queue"), ("SecretId", "secret"), ("KeyId", "key")] {
                if let Some(v) = map.get(field).and_then(|v| v.as_str()) {
                    out.push(format!("{prefix}/{v}"));
                }
            }
            map.values().for_each(|v| collect_resources(v, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_resources(v, out)),
        _ => {}
    }
}

/// The clients a function needs, sharing one counter.
#[derive(Debug, Clone)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub kms: aws_sdk_kms::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub requests: RequestCounter,
    /// For the clients only some functions need (built on demand, so the others' binaries
    /// do not carry them).
    sdk: aws_config::SdkConfig,
}

impl AwsClients {
    /// Lambda's environment: credentials and region always come as variables there (the
    /// emulator's dummy ones locally), so only the environment providers are used and the
    /// default chain's STS, SSO and instance-metadata code stays out of the binary.
    /// `AWS_ENDPOINT_URL` is honoured as usual.
    pub async fn from_env() -> Self {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .credentials_provider(aws_config::environment::EnvironmentVariableCredentialsProvider::new())
            .region(aws_config::environment::EnvironmentVariableRegionProvider::new())
            .load()
            .await;
        Self::new(&sdk, RequestCounter::default())
    }

    pub fn new(sdk: &aws_config::SdkConfig, requests: RequestCounter) -> Self {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .operation_attempt_timeout(DEFAULT_ATTEMPT_TIMEOUT)
            .operation_timeout(DEFAULT_OPERATION_TIMEOUT)
            .build();
        let sdk = &sdk.to_builder().timeout_config(timeouts).build();
        Self {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(sdk).interceptor(requests.clone()).build(),
            ),
            sqs: aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::config::Builder::from(sdk).interceptor(requests.clone()).build(),
            ),
            kms: aws_sdk_kms::Client::from_conf(
                aws_sdk_kms::config::Builder::from(sdk).interceptor(requests.clone()).build(),
            ),
            secrets: aws_sdk_secretsmanager::Client::from_conf(
                aws_sdk_secretsmanager::config::Builder::from(sdk).interceptor(requests.clone()).build(),
            ),
            requests,
            sdk: sdk.clone(),
        }
    }
}

impl AwsClients {
    /// S3, counted like the others. Path-style: the emulator on 127.0.0.1 cannot serve bucket
    /// names as host names.
    pub fn s3(&self) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&self.sdk)
                .force_path_style(true)
                .interceptor(self.requests.clone())
                .build(),
        )
    }

    /// Bedrock. Model calls are not AWS bookkeeping: they keep their own timeouts (the model's
    /// retry policy) and are not counted with the table and queue requests.
    pub fn bedrock(&self) -> aws_sdk_bedrockruntime::Client {
        aws_sdk_bedrockruntime::Client::new(&self.sdk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_leave_room_to_answer_and_allow_a_second_attempt() {
        let t = timeouts_for(Duration::from_secs(9));
        assert_eq!(t.operation_timeout(), Some(Duration::from_millis(8_700)));
        assert_eq!(t.operation_attempt_timeout(), Some(Duration::from_millis(4_350)));
        // Nearly out of time: one short attempt, never a zero timeout.
        let t = timeouts_for(Duration::from_millis(400));
        assert_eq!(t.operation_timeout(), Some(Duration::from_millis(100)));
        assert_eq!(t.operation_attempt_timeout(), Some(Duration::from_millis(100)));
        assert!(timeouts_for(Duration::ZERO).operation_timeout().unwrap() > Duration::ZERO);
    }

    #[test]
    fn resources_are_read_from_request_bodies_as_iam_names_them() {
        let query = br#"{"TableName":"m","IndexName":"pending","KeyConditionExpression":"x"}"#;
        assert_eq!(resources("DynamoDB", "", query), ["table/m/index/pending"]);
        let transact = br#"{"TransactItems":[{"Put":{"TableName":"a"}},{"Delete":{"TableName":"b"}}]}"#;
        assert_eq!(resources("DynamoDB", "", transact), ["table/a", "table/b"]);
        let actions: Vec<(String, String)> =
            transaction_items(transact).into_iter().map(|a| (a.operation, a.resource)).collect();
        assert_eq!(
            actions,
            [("DynamoDB:PutItem".into(), "table/a".into()), ("DynamoDB:DeleteItem".into(), "table/b".into())]
        );
        let batch = br#"{"RequestItems":{"m":[{"DeleteRequest":{}}]}}"#;
        assert_eq!(resources("DynamoDB", "", batch), ["table/m"]);
        let send = br#"{"QueueUrl":"http://q/1/x.fifo","MessageBody":"{}"}"#;
        assert_eq!(resources("SQS", "", send), ["queue/http://q/1/x.fifo"]);
        assert_eq!(resources("S3", "http://127.0.0.1:4566/bucket-x/t/media/1", b""), ["bucket/bucket-x"]);
    }
}
