//! End-to-end latency of one answer through the local stack: the webhook in through the
//! runner's API Gateway, the inbound queue (moto) fed to the reply worker by the template's
//! event source mapping, the offline assistant, the answer out to the sandbox sink. The quiet
//! window is set to 0 (it is a deliberate wait, not latency). Prints p50 and p95 over all
//! measured answers, and the worker's AWS requests per answer.

use std::time::{Duration, Instant};

use concierge_e2e::*;
use criterion::{Criterion, criterion_group, criterion_main};

/// The example tenants, with acme-dental's burst window off.
fn tenants_without_quiet_window() -> std::path::PathBuf {
    let example = concierge_local::repo_root().join("infra/local/tenants.example.json");
    let mut file: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(example).unwrap()).unwrap();
    file["tenants"][0]["burst"] = serde_json::json!({"quiet_window_ms": 0});
    let path = std::env::temp_dir().join(format!("concierge-bench-tenants-{}.json", std::process::id()));
    std::fs::write(&path, file.to_string()).unwrap();
    path
}

fn answer_latency(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let tenants = tenants_without_quiet_window();
    let t = runtime.block_on(TestStack::spawn_with(|o| o.tenants = Some(tenants)));
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let mut samples: Vec<Duration> = Vec::new();
    let mut n = 0u64;
    let requests_before = t.worker().requests.get();
    c.bench_function("webhook to answer sent (offline, local stack)", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                n += 1;
                let sent_before = t.outbox().len();
                let body = notification(&[(
                    NUMBER_A,
                    vec![text_message(
                        "4915112345678",
                        &format!("wamid.bench-{n}"),
                        now(),
                        "When are you open on Saturday?",
                    )],
                    vec![],
                )]);
                let start = Instant::now();
                runtime.block_on(async {
                    assert_eq!(t.post_meta(&body).await.status, 200);
                    while t.outbox().len() == sent_before {
                        t.deliver().await;
                    }
                });
                let took = start.elapsed();
                samples.push(took);
                total += took;
            }
            total
        })
    });
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    let answers = t.outbox().len() as u64;
    eprintln!(
        "answers: {answers}; latency p50 {:?}, p95 {:?}; reply-worker AWS requests per answer: {:.2}",
        at(0.50),
        at(0.95),
        (t.worker().requests.get() - requests_before) as f64 / answers.max(1) as f64
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(Duration::from_secs(2)).measurement_time(Duration::from_secs(20));
    targets = answer_latency
}
criterion_main!(benches);
