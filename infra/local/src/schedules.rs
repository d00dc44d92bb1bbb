//! The template's EventBridge schedules, fired on time with the event EventBridge would send
//! (on demand, any function takes any event through the Invoke API). `rate(…)` and AWS's
//! six-field `cron(…)` (UTC) are understood.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use concierge::clock::Clock;

use crate::functions::LocalFunction;

/// When a schedule fires.
#[derive(Debug, Clone)]
pub enum Expression {
    Rate(Duration),
    Cron(Box<croner::Cron>),
}

impl FromStr for Expression {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Self> {
        let text = text.trim();
        if let Some(rate) = text.strip_prefix("rate(").and_then(|r| r.strip_suffix(')')) {
            let (value, unit) = rate.trim().split_once(' ').ok_or_else(|| anyhow!("rate({rate}): value and unit"))?;
            let value: u64 = value.parse().map_err(|_| anyhow!("rate({rate}): not a number"))?;
            let seconds = match unit.trim() {
                "minute" | "minutes" => 60,
                "hour" | "hours" => 3600,
                "day" | "days" => 86_400,
                other => bail!("rate({rate}): unknown unit {other:?}"),
            };
            if value == 0 {
                bail!("rate({rate}): must be positive");
            }
            return Ok(Self::Rate(Duration::from_secs(value * seconds)));
        }
        if let Some(cron) = text.strip_prefix("cron(").and_then(|c| c.strip_suffix(')')) {
            // AWS: minutes hours day-of-month month day-of-week year, weekdays 1-7 from Sunday.
            let fields: Vec<&str> = cron.split_whitespace().collect();
            if fields.len() != 6 {
                bail!("cron({cron}): AWS cron expressions have six fields");
            }
            if fields[5] != "*" {
                bail!("cron({cron}): the local runner fires every year (year field `*`)");
            }
            let pattern = fields[..5].join(" ");
            let parsed = croner::parser::CronParser::builder()
                .seconds(croner::parser::Seconds::Disallowed)
                .year(croner::parser::Year::Disallowed)
                .alternative_weekdays(true)
                .build()
                .parse(&pattern)
                .map_err(|e| anyhow!("cron({cron}): {e}"))?;
            return Ok(Self::Cron(Box::new(parsed)));
        }
        bail!("{text:?} is neither rate(…) nor cron(…)")
    }
}

impl Expression {
    /// The next firing after `now_ms` (unix ms).
    pub fn next_after(&self, now_ms: i64) -> Option<i64> {
        match self {
            Self::Rate(every) => Some(now_ms + every.as_millis() as i64),
            Self::Cron(cron) => {
                let now = chrono::DateTime::from_timestamp_millis(now_ms)?;
                cron.find_next_occurrence(&now, false).ok().map(|t| t.timestamp_millis())
            }
        }
    }
}

/// `POST /schedules/{LogicalId}` on the Lambda port: fires the function's schedules now, with
/// the event EventBridge would send at this moment (the files in `events/` carry a fixed time).
/// Answers the function's result (an array when it has several schedules).
pub async fn fire_now(
    axum::extract::State(functions): axum::extract::State<Arc<Vec<Arc<LocalFunction>>>>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let Some(function) = functions.iter().find(|f| f.def.logical_id == name && !f.def.schedules.is_empty()) else {
        let message = format!("{name} is not a function with a schedule");
        return (StatusCode::NOT_FOUND, axum::Json(serde_json::json!({"message": message}))).into_response();
    };
    let mut results = Vec::new();
    for def in &function.def.schedules {
        let expression: Expression = match def.expression.parse() {
            Ok(expression) => expression,
            Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        };
        let schedule = Schedule { function: function.clone(), name: def.name.clone(), expression };
        match schedule.fire(function.clock().now_ms()).await {
            Ok(result) => results.push(result),
            Err(message) => {
                let body = serde_json::json!({"errorMessage": message});
                return (StatusCode::BAD_GATEWAY, axum::Json(body)).into_response();
            }
        }
    }
    let body = if results.len() == 1 { results.remove(0) } else { serde_json::Value::Array(results) };
    axum::Json(body).into_response()
}

/// A schedule bound to its function.
pub struct Schedule {
    pub function: Arc<LocalFunction>,
    pub name: String,
    pub expression: Expression,
}

impl Schedule {
    /// The ARN of the rule EventBridge would have created.
    pub fn rule_arn(&self) -> String {
        format!("arn:aws:events:us-east-1:000000000000:rule/{}-{}", self.function.def.logical_id, self.name)
    }

    /// Fires the function once, as EventBridge would at `at_ms`.
    pub async fn fire(&self, at_ms: i64) -> Result<serde_json::Value, String> {
        let event = concierge::function::schedule::event(&self.rule_arn(), at_ms, &format!("local-{at_ms}"));
        self.function.invoke_json(&event).await
    }

    /// Fires on schedule until the process ends.
    pub async fn run(self, clock: Arc<dyn Clock>) {
        loop {
            let now = clock.now_ms();
            let Some(next) = self.expression.next_after(now) else { return };
            tokio::time::sleep(Duration::from_millis((next - now).max(0) as u64)).await;
            if let Err(e) = self.fire(next).await {
                tracing::error!(function = %self.function.def.logical_id, schedule = %self.name, error = %e, "scheduled invocation failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use concierge::clock::TokioClock;
    use concierge::function::{BoxFuture, Error, Event, Function};
    use serde_json::Value;

    use super::*;
    use crate::template::FunctionDef;

    /// Remembers the time of each scheduled event it is invoked with.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<i64>>);

    impl Function for Recorder {
        fn invoke(&self, event: Event, _: lambda_runtime::Context) -> BoxFuture<'_, Result<Value, Error>> {
            Box::pin(async move {
                self.0.lock().unwrap().push(concierge::function::schedule::time_ms(&event)?);
                Ok(Value::Null)
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_schedule_fires_its_function_on_time_with_the_time_it_was_due() {
        let t0 = 1_767_225_600_000;
        let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(t0));
        let recorder = Arc::new(Recorder::default());
        let def = FunctionDef {
            logical_id: "Tick".into(),
            binary: "tick".into(),
            environment: Vec::new(),
            http_routes: Vec::new(),
            sqs_sources: Vec::new(),
            schedules: Vec::new(),
            timeout_secs: 10,
        };
        let function = Arc::new(LocalFunction::hosting(def, recorder.clone(), clock.clone()));
        let schedule = Schedule { function, name: "Every".into(), expression: "rate(1 minute)".parse().unwrap() };
        let running = tokio::spawn(schedule.run(clock));
        tokio::time::sleep(Duration::from_secs(3 * 60 + 30)).await;
        running.abort();
        assert_eq!(*recorder.0.lock().unwrap(), [t0 + 60_000, t0 + 120_000, t0 + 180_000]);
    }

    #[test]
    fn rates_and_aws_cron_expressions() {
        let t0 = 1_767_225_600_000; // 2026-01-01T00:00:00Z, a Thursday
        assert_eq!("rate(5 minutes)".parse::<Expression>().unwrap().next_after(t0), Some(t0 + 300_000));
        assert_eq!("rate(1 day)".parse::<Expression>().unwrap().next_after(t0), Some(t0 + 86_400_000));
        let daily = "cron(0 3 * * ? *)".parse::<Expression>().unwrap();
        assert_eq!(daily.next_after(t0), Some(t0 + 3 * 3_600_000));
        // AWS numbers weekdays from Sunday = 1: 2 is Monday, 2026-01-05.
        let mondays = "cron(30 8 ? * 2 *)".parse::<Expression>().unwrap();
        assert_eq!(mondays.next_after(t0), Some(t0 + 4 * 86_400_000 + 8 * 3_600_000 + 30 * 60_000));
        for bad in ["rate(0 minutes)", "rate(5 fortnights)", "cron(0 3 * * ?)", "every day"] {
            assert!(bad.parse::<Expression>().is_err(), "{bad}");
        }
    }
}
