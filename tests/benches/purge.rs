//! Retention purge throughput against the emulator: each measured run deletes 1,000 expired
//! messages (100 of them with a media copy) of one tenant, seeded into a month of their own
//! beside 5,000 live ones, through the deployed function (Invoke API). Prints expired items per
//! second and the AWS requests per 1,000 expired items, by operation.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use concierge::function::schedule;
use concierge::privacy::retention::{DAY, RetentionDays};
use concierge_e2e::*;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const EXPIRED: usize = 1_000;
const WITH_MEDIA: usize = 100;
const LIVE: usize = 5_000;

fn purge_throughput(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let t = runtime.block_on(TestStack::spawn());
    let t0 = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let default = RetentionDays::default();
    runtime.block_on(seed::messages(&t, TENANT_A, &seed::contact(9), t0 + 3_000 * DAY, LIVE, 0, &default));
    let requests = t.function("RetentionPurgeFunction").requests.clone();
    let mut per_run: Vec<BTreeMap<String, u64>> = Vec::new();
    let mut round = 0i64;
    let mut group = c.benchmark_group("retention purge");
    group.throughput(Throughput::Elements(EXPIRED as u64)).sample_size(10);
    group.bench_function("1,000 expired messages (10% with media) among 5,000 live", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                // A month of its own per run, so each run finds exactly its own expired items.
                let start = t0 + round * 40 * DAY;
                round += 1;
                runtime.block_on(async {
                    let contact = seed::contact(round as u32);
                    seed::messages(&t, TENANT_A, &contact, start, EXPIRED - WITH_MEDIA, 0, &default).await;
                    seed::messages(&t, TENANT_A, &contact, start + 60, WITH_MEDIA, 1, &default).await;
                });
                let before = requests.by_operation();
                let event = schedule::event("arn:aws:events:::rule/bench", (start + 731 * DAY) * 1000, "bench");
                let started = Instant::now();
                let report = runtime.block_on(t.invoke("RetentionPurgeFunction", &event)).expect("purge");
                total += started.elapsed();
                let a = report["tenants"].as_array().unwrap().iter().find(|r| r["tenant"] == TENANT_A).unwrap();
                assert_eq!(a["counts"]["messages"], EXPIRED as u64, "{a}");
                let after = requests.by_operation();
                per_run.push(after.iter().map(|(op, n)| (op.clone(), n - before.get(op).unwrap_or(&0))).collect());
            }
            total
        })
    });
    group.finish();
    // The first run also catches up on the months since the tenant's creation.
    let steady = &per_run[1.min(per_run.len() - 1)..];
    let mut mean: BTreeMap<String, f64> = BTreeMap::new();
    for run in steady {
        for (op, n) in run {
            *mean.entry(op.clone()).or_default() += *n as f64 / steady.len() as f64;
        }
    }
    let total: f64 = mean.values().sum();
    println!(
        "AWS requests per {EXPIRED} expired items (both tenants' runs, mean of {} runs): {total:.0}",
        steady.len()
    );
    for (op, n) in &mean {
        println!("  {op}: {n:.1}");
    }
}

criterion_group!(benches, purge_throughput);
criterion_main!(benches);
