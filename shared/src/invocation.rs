//! What belongs to one invocation of a function, visible to the code it runs without being
//! threaded through every call: its deadline (so AWS calls and retries fit in the time Lambda
//! gives it) and the AWS requests it made (so a log line counts this invocation's requests
//! only, never a concurrent one's). A tokio task-local: the SDK runs its requests inside the
//! calling task, so its interceptors see the scope of the invocation that made the call.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

tokio::task_local! {
    static CURRENT: Arc<Scope>;
}

/// One invocation's deadline and request counts.
#[derive(Debug, Default)]
pub struct Scope {
    deadline: Option<Instant>,
    requests: AtomicU64,
    by_operation: Mutex<BTreeMap<String, u64>>,
}

impl Scope {
    pub fn new(deadline: Option<Instant>) -> Arc<Self> {
        Arc::new(Self { deadline, ..Self::default() })
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// AWS requests made inside this scope (every HTTP attempt, retries included).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn requests_by_operation(&self) -> BTreeMap<String, u64> {
        self.by_operation.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs `f` inside this scope.
    pub async fn run<F: Future>(self: &Arc<Self>, f: F) -> F::Output {
        CURRENT.scope(self.clone(), f).await
    }
}

/// The scope of the invocation running on this task, if any.
pub fn current() -> Option<Arc<Scope>> {
    CURRENT.try_with(Arc::clone).ok()
}

/// The current invocation's deadline.
pub fn deadline() -> Option<Instant> {
    CURRENT.try_with(|s| s.deadline).ok().flatten()
}

/// Time left before the current invocation's deadline (`None` outside an invocation).
pub fn remaining() -> Option<Duration> {
    deadline().map(|d| d.saturating_duration_since(Instant::now()))
}

/// Counts one AWS request against the current invocation (called by the SDK interceptor).
pub(crate) fn count_request(operation: &str) {
    let _ = CURRENT.try_with(|s| {
        s.requests.fetch_add(1, Ordering::Relaxed);
        let mut counts = s.by_operation.lock().unwrap_or_else(|p| p.into_inner());
        match counts.get_mut(operation) {
            Some(n) => *n += 1,
            None => {
                counts.insert(operation.to_owned(), 1);
            }
        }
    });
}

/// The deadline of a Lambda invocation (`Context::deadline`, unix ms) as a tokio instant.
pub fn deadline_from_unix_ms(deadline_ms: u64, now_ms: i64) -> Option<Instant> {
    if deadline_ms == 0 {
        return None;
    }
    let left = (deadline_ms as i64).saturating_sub(now_ms).max(0) as u64;
    Some(Instant::now() + Duration::from_millis(left))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_are_counted_per_scope_even_when_scopes_interleave() {
        let a = Scope::new(None);
        let b = Scope::new(None);
        let work = |n: usize| async move {
            for _ in 0..n {
                count_request("DynamoDB:PutItem");
                tokio::task::yield_now().await;
            }
        };
        futures::join!(a.run(work(3)), b.run(work(5)));
        count_request("DynamoDB:PutItem"); // outside any scope: counted nowhere
        assert_eq!((a.requests(), b.requests()), (3, 5));
        assert_eq!(b.requests_by_operation()["DynamoDB:PutItem"], 5);
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_is_visible_inside_and_absent_outside() {
        assert!(remaining().is_none());
        let scope = Scope::new(deadline_from_unix_ms(10_000, 7_000));
        let left = scope.run(async { remaining() }).await.unwrap();
        assert_eq!(left, Duration::from_secs(3));
        assert!(deadline_from_unix_ms(0, 7_000).is_none());
    }
}
