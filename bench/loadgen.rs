//! Open-loop load generator for latency measurements: sends GET requests at
//! a fixed rate (not "as fast as possible"); requests are launched on
//! schedule whether or not earlier ones have been answered, so a stalled
//! server shows up in the percentiles instead of silently lowering the
//! offered load. Each request is timed from its launch (the timer's own
//! millisecond granularity is not the server's latency).
//!
//! Usage: `loadgen URL RATE_PER_S SECONDS [HEADER:VALUE]`
//! Prints one line: `sent=N ok=N errors=N p50_us=.. p90_us=.. p99_us=.. max_us=..`.
//! Bounded in count and time; meant for loopback targets only.

use std::time::{Duration, Instant};

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: loadgen URL RATE_PER_S SECONDS [HEADER:VALUE]");
        std::process::exit(2);
    }
    let url = args[1].clone();
    let rate: f64 = args[2].parse().expect("rate");
    let seconds: f64 = args[3].parse().expect("seconds");
    let header = args
        .get(4)
        .and_then(|h| h.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()));
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(256)
        .build()
        .expect("client");
    let total = (rate * seconds) as u64;
    let start = Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let mut rb = client.get(&url);
        if let Some((k, v)) = &header {
            rb = rb.header(k, v);
        }
        tasks.push(tokio::spawn(async move {
            let launched = Instant::now();
            let ok = matches!(rb.send().await, Ok(r) if r.status().is_success());
            (ok, launched.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    let mut errors = 0u64;
    for t in tasks {
        match t.await {
            Ok((true, d)) => latencies.push(d.as_micros() as u64),
            _ => errors += 1,
        }
    }
    latencies.sort_unstable();
    let pct = |p: f64| -> u64 {
        if latencies.is_empty() {
            return 0;
        }
        let idx = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies[idx]
    };
    println!(
        "sent={total} ok={} errors={errors} p50_us={} p90_us={} p99_us={} max_us={}",
        latencies.len(),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        latencies.last().copied().unwrap_or(0)
    );
}
