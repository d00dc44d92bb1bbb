//! AWS SDK clients built once per cold start, each carrying a request counter so that the number
//! of AWS calls an invocation makes is logged (and asserted in tests).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// An SDK error with its whole chain of causes, for logs and error values (never for callers).
pub fn describe(err: impl std::error::Error) -> String {
    aws_smithy_types::error::display::DisplayErrorContext(err).to_string()
}

/// Counts every HTTP attempt an SDK client transmits (retries included), in total and per
/// operation (`DynamoDB:PutItem`, `SQS:SendMessage`, …).
#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    total: Arc<AtomicU64>,
    by_operation: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl RequestCounter {
    pub fn get(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    pub fn by_operation(&self) -> BTreeMap<String, u64> {
        self.by_operation.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.total.fetch_add(1, Ordering::Relaxed);
        if let Some(op) = cfg.load::<Metadata>() {
            let key = format!("{}:{}", op.service(), op.name());
            *self.by_operation.lock().unwrap_or_else(|p| p.into_inner()).entry(key).or_default() += 1;
        }
        Ok(())
    }
}

/// The clients a function needs, sharing one counter.
#[derive(Debug, Clone)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub kms: aws_sdk_kms::Client,
    pub requests: RequestCounter,
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
        Self::new(&sdk)
    }

    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        // Bounded calls: a hung connection must not outlive the function's 10 s timeout, and
        // retries (the SDK's standard three attempts) need room inside it.
        let timeouts = aws_smithy_types::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(1))
            .operation_attempt_timeout(Duration::from_millis(1500))
            .operation_timeout(Duration::from_secs(3))
            .build();
        let sdk = &sdk.to_builder().timeout_config(timeouts).build();
        let requests = RequestCounter::default();
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
            requests,
        }
    }
}
