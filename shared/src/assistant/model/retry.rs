//! Retries around any model, within the invocation's time: a busy vendor gets another try or
//! two, a refusal none, and the last few seconds are always kept for the polite fallback
//! answer, so the customer hears something even when every vendor fails.

use std::time::Duration;

use super::{ChatModel, ChatRequest, ChatResponse, ModelError};
use crate::invocation;

pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Kept back from the invocation's deadline for the fallback answer and bookkeeping.
pub const DEFAULT_RESERVE: Duration = Duration::from_secs(3);
const BACKOFF_BASE: Duration = Duration::from_millis(300);
const BACKOFF_CAP: Duration = Duration::from_secs(2);
/// A vendor asking for a longer pause than this gets no more tries within this invocation.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(5);
/// An attempt shorter than this is unlikely to get an answer; not worth starting.
const MIN_USEFUL_ATTEMPT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct Retrying<M> {
    inner: M,
    attempt_timeout: Duration,
    max_attempts: u32,
    reserve: Duration,
    backoff_base: Duration,
    backoff_cap: Duration,
}

/// The outcome of a call and how many attempts it took.
#[derive(Debug)]
pub struct Attempted {
    pub result: Result<ChatResponse, ModelError>,
    pub attempts: u32,
}

impl<M: ChatModel> Retrying<M> {
    pub fn new(inner: M) -> Self {
        Self {
            inner,
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            reserve: DEFAULT_RESERVE,
            backoff_base: BACKOFF_BASE,
            backoff_cap: BACKOFF_CAP,
        }
    }

    pub fn with_attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    pub fn with_reserve(mut self, reserve: Duration) -> Self {
        self.reserve = reserve;
        self
    }

    /// The first pause's upper bound and the largest pause (before any `Retry-After`).
    pub fn with_backoff(mut self, base: Duration, cap: Duration) -> Self {
        self.backoff_base = base;
        self.backoff_cap = cap;
        self
    }

    pub fn inner(&self) -> &M {
        &self.inner
    }

    /// The time the invocation leaves for model calls (`None` outside an invocation).
    fn budget(&self) -> Option<Duration> {
        invocation::remaining().map(|r| r.saturating_sub(self.reserve))
    }

    /// The shortest attempt worth starting: a configured timeout below the floor is the floor.
    fn min_attempt(&self) -> Duration {
        self.attempt_timeout.min(MIN_USEFUL_ATTEMPT)
    }

    /// The pause before attempt `attempt + 1`: full jitter over an exponential bound, but at
    /// least what the vendor asked for (within reason).
    fn pause(&self, attempt: u32, error: &ModelError) -> Duration {
        let bound = self.backoff_base.saturating_mul(2u32.saturating_pow(attempt - 1)).min(self.backoff_cap);
        let jittered = Duration::from_millis(fastrand::u64(0..=bound.as_millis() as u64));
        let asked = match error {
            ModelError::Unavailable { retry_after_ms: Some(ms), .. } => Duration::from_millis(*ms).min(RETRY_AFTER_CAP),
            _ => Duration::ZERO,
        };
        jittered.max(asked)
    }

    /// Calls the model until it answers, refuses, or the attempts or the time run out; the last
    /// error otherwise.
    pub async fn complete_counted(&self, request: &ChatRequest) -> Attempted {
        let mut attempts = 0;
        let mut last = None;
        loop {
            let timeout = match self.budget() {
                None => self.attempt_timeout,
                Some(budget) if budget >= self.min_attempt() => budget.min(self.attempt_timeout),
                // Not even one useful attempt fits: the fallback answer has the time instead.
                Some(_) => return Attempted { result: Err(last.unwrap_or(ModelError::Timeout)), attempts },
            };
            attempts += 1;
            let error = match tokio::time::timeout(timeout, self.inner.complete(request)).await {
                Ok(Ok(answer)) => return Attempted { result: Ok(answer), attempts },
                Ok(Err(e)) => e,
                Err(_) => ModelError::Timeout,
            };
            if !error.retryable() || attempts >= self.max_attempts {
                return Attempted { result: Err(error), attempts };
            }
            let pause = self.pause(attempts, &error);
            if self.budget().is_some_and(|budget| budget < pause + self.min_attempt()) {
                return Attempted { result: Err(error), attempts };
            }
            tracing::warn!(provider = self.inner.name(), attempt = attempts, error = %error, pause_ms = pause.as_millis() as u64, "model call failed; retrying");
            tokio::time::sleep(pause).await;
            last = Some(error);
        }
    }
}

impl<M: ChatModel> ChatModel for Retrying<M> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ModelError> {
        self.complete_counted(request).await.result
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};

    use tokio::time::Instant;
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::assistant::model::testing::round_trip;
    use crate::assistant::model::{OpenAiChat, StopReason, Usage};
    use crate::invocation::Scope;

    /// What the fake does on each call, in order.
    enum Step {
        Answer,
        Fail(ModelError),
        Hang,
    }

    struct Scripted {
        steps: Mutex<VecDeque<Step>>,
        calls: AtomicU32,
    }

    impl Scripted {
        fn new(steps: impl IntoIterator<Item = Step>) -> Self {
            Self { steps: Mutex::new(steps.into_iter().collect()), calls: AtomicU32::new(0) }
        }
    }

    fn answer() -> ChatResponse {
        ChatResponse { text: Some("ok".into()), tool_calls: vec![], stop: StopReason::EndTurn, usage: Usage::default() }
    }

    impl ChatModel for Scripted {
        fn name(&self) -> &'static str {
            "scripted"
        }

        async fn complete(&self, _: &ChatRequest) -> Result<ChatResponse, ModelError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let step = self.steps.lock().unwrap().pop_front().expect("more calls than scripted");
            match step {
                Step::Answer => Ok(answer()),
                Step::Fail(e) => Err(e),
                Step::Hang => std::future::pending().await,
            }
        }
    }

    fn busy(retry_after_ms: Option<u64>) -> Step {
        Step::Fail(ModelError::Unavailable { status: 503, retry_after_ms })
    }

    #[tokio::test(start_paused = true)]
    async fn retryable_failures_are_retried_until_an_answer() {
        let model = Retrying::new(Scripted::new([busy(None), Step::Fail(ModelError::Timeout), Step::Answer]));
        let started = Instant::now();
        let out = model.complete_counted(&round_trip()).await;
        assert_eq!((out.result.unwrap(), out.attempts), (answer(), 3));
        // Full jitter: at most 300 ms, then at most 600 ms.
        assert!(started.elapsed() <= Duration::from_millis(900), "{:?}", started.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_up_to_its_cap() {
        let model = Retrying::new(Scripted::new([busy(Some(2_000)), Step::Answer]));
        let started = Instant::now();
        let out = model.complete_counted(&round_trip()).await;
        assert_eq!(out.attempts, 2);
        assert!(out.result.is_ok());
        assert!(started.elapsed() >= Duration::from_secs(2), "{:?}", started.elapsed());

        let model = Retrying::new(Scripted::new([busy(Some(600_000)), Step::Answer]));
        let started = Instant::now();
        assert!(model.complete(&round_trip()).await.is_ok());
        assert_eq!(started.elapsed(), RETRY_AFTER_CAP);
    }

    #[tokio::test(start_paused = true)]
    async fn refusals_are_not_retried_and_attempts_are_bounded() {
        let model = Retrying::new(Scripted::new([Step::Fail(ModelError::Refused { status: 400 })]));
        let out = model.complete_counted(&round_trip()).await;
        assert_eq!((out.result.unwrap_err(), out.attempts), (ModelError::Refused { status: 400 }, 1));

        let model = Retrying::new(Scripted::new([busy(None), busy(None), busy(Some(7)), Step::Answer]));
        let out = model.complete_counted(&round_trip()).await;
        assert_eq!(out.result.unwrap_err(), ModelError::Unavailable { status: 503, retry_after_ms: Some(7) });
        assert_eq!((out.attempts, model.inner().calls.load(Ordering::SeqCst)), (3, 3));
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_never_outlives_the_invocation_minus_the_reserve() {
        // 8 s left, 3 s reserved: the hanging attempt is cut at 5 s, not 20, and no time is
        // left for another.
        let scope = Scope::new(Some(Instant::now() + Duration::from_secs(8)));
        let model = Retrying::new(Scripted::new([Step::Hang, Step::Answer]));
        let started = Instant::now();
        let out = scope.run(model.complete_counted(&round_trip())).await;
        assert_eq!((out.result.unwrap_err(), out.attempts), (ModelError::Timeout, 1));
        assert_eq!(started.elapsed(), Duration::from_secs(5));

        // A pause the vendor asks for that would eat the time left: give up now, not later.
        let scope = Scope::new(Some(Instant::now() + Duration::from_secs(7)));
        let model = Retrying::new(Scripted::new([busy(Some(3_000)), Step::Answer]));
        let started = Instant::now();
        let out = scope.run(model.complete_counted(&round_trip())).await;
        assert_eq!(out.attempts, 1);
        assert!(out.result.is_err());
        assert_eq!(started.elapsed(), Duration::ZERO);

        // Already inside the reserve: no attempt at all.
        let scope = Scope::new(Some(Instant::now() + Duration::from_secs(4)));
        let model = Retrying::new(Scripted::new([]));
        let out = scope.run(model.complete_counted(&round_trip())).await;
        assert_eq!((out.result.unwrap_err(), out.attempts), (ModelError::Timeout, 0));
    }

    fn openai(server: &MockServer) -> Retrying<OpenAiChat> {
        let chat = OpenAiChat::new(reqwest::Client::new(), format!("{}/v1", server.uri()), None, "m");
        Retrying::new(chat).with_backoff(Duration::from_millis(1), Duration::from_millis(5))
    }

    fn ok_body() -> serde_json::Value {
        serde_json::json!({"choices": [{"message": {"content": "Hi"}, "finish_reason": "stop"}]})
    }

    #[tokio::test]
    async fn over_http_two_failures_then_an_answer_take_three_requests() {
        let server = MockServer::start().await;
        Mock::given(method("POST")).respond_with(ResponseTemplate::new(500)).up_to_n_times(2).mount(&server).await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(ok_body()))
            .mount(&server)
            .await;

        let out = openai(&server).complete_counted(&round_trip()).await;

        assert_eq!(out.result.unwrap().text.as_deref(), Some("Hi"));
        assert_eq!(out.attempts, 3);
        assert_eq!(server.received_requests().await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn over_http_a_bad_request_is_sent_once() {
        let server = MockServer::start().await;
        Mock::given(method("POST")).respond_with(ResponseTemplate::new(400)).mount(&server).await;

        let err = openai(&server).complete(&round_trip()).await.unwrap_err();

        assert_eq!(err, ModelError::Refused { status: 400 });
        assert_eq!(server.received_requests().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn over_http_a_throttled_request_is_retried_after_the_pause_it_asked_for() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "0.02"))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(ok_body()))
            .mount(&server)
            .await;
        // Backoff of zero: any pause seen comes from Retry-After.
        let model = openai(&server).with_backoff(Duration::ZERO, Duration::ZERO);

        let started = std::time::Instant::now();
        let out = model.complete_counted(&round_trip()).await;

        assert!(out.result.is_ok());
        assert_eq!(out.attempts, 2);
        assert!(started.elapsed() >= Duration::from_millis(20), "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn over_http_a_slow_answer_is_a_timeout_after_each_attempt() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(ok_body()).set_delay(Duration::from_secs(10)))
            .mount(&server)
            .await;
        let model = openai(&server).with_attempt_timeout(Duration::from_millis(50)).with_max_attempts(2);

        let out = model.complete_counted(&round_trip()).await;

        assert_eq!((out.result.unwrap_err(), out.attempts), (ModelError::Timeout, 2));
        assert_eq!(server.received_requests().await.unwrap().len(), 2);
    }
}
