//! Request metrics for `GET /metrics` (Prometheus text format): requests by
//! method, route template and status, and a latency histogram by route.
//! Recording costs a map lookup by route and a few atomic adds.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct RouteStats {
    /// (method, status) → count; a handful of entries per route.
    counts: Mutex<Vec<(String, u16, u64)>>,
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

/// All request metrics of one server.
#[derive(Default)]
pub struct Metrics {
    routes: RwLock<HashMap<String, std::sync::Arc<RouteStats>>>,
}

/// Escape a label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// Count one answered request.
    pub fn record(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let stats = {
            let routes = self
                .routes
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            routes.get(route).cloned()
        };
        let stats = stats.unwrap_or_else(|| {
            let mut routes = self
                .routes
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            routes.entry(route.to_owned()).or_default().clone()
        });
        {
            let mut counts = stats
                .counts
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match counts
                .iter_mut()
                .find(|(m, s, _)| m == method && *s == status)
            {
                Some(entry) => entry.2 += 1,
                None => counts.push((method.to_owned(), status, 1)),
            }
        }
        // Each request lands in its first bucket only; the render adds up.
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|bound| secs <= *bound) {
            stats.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        stats.count.fetch_add(1, Ordering::Relaxed);
        stats.sum_us.fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// The HTTP families in Prometheus text format.
    pub fn render_http(&self, out: &mut String) {
        let routes = self
            .routes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut names: Vec<&String> = routes.keys().collect();
        names.sort();
        out.push_str("# HELP plinth_http_requests_total HTTP requests answered.\n");
        out.push_str("# TYPE plinth_http_requests_total counter\n");
        for name in &names {
            let counts = routes[*name]
                .counts
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            for (method, status, n) in counts {
                let _ = writeln!(
                    out,
                    "plinth_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
                    label(&method),
                    label(name)
                );
            }
        }
        out.push_str("# HELP plinth_http_request_duration_seconds Time to answer, by route.\n");
        out.push_str("# TYPE plinth_http_request_duration_seconds histogram\n");
        for name in &names {
            let s = &routes[*name];
            let route = label(name);
            let mut cumulative = 0;
            for (i, bound) in BUCKETS.iter().enumerate() {
                cumulative += s.buckets[i].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "plinth_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let count = s.count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "plinth_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "plinth_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                s.sum_us.load(Ordering::Relaxed) as f64 / 1e6
            );
            let _ = writeln!(
                out,
                "plinth_http_request_duration_seconds_count{{route=\"{route}\"}} {count}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_buckets_render_in_prometheus_text() {
        let m = Metrics::default();
        m.record("GET", "/api/users/{id}", 200, Duration::from_micros(700));
        m.record("GET", "/api/users/{id}", 200, Duration::from_millis(30));
        m.record("PATCH", "/api/users/{id}", 400, Duration::from_micros(100));
        let mut out = String::new();
        m.render_http(&mut out);
        assert!(out.contains(
            "plinth_http_requests_total{method=\"GET\",route=\"/api/users/{id}\",status=\"200\"} 2"
        ));
        assert!(out.contains(
            "plinth_http_requests_total{method=\"PATCH\",route=\"/api/users/{id}\",status=\"400\"} 1"
        ));
        assert!(out.contains(
            "plinth_http_request_duration_seconds_bucket{route=\"/api/users/{id}\",le=\"0.001\"} 2"
        ));
        assert!(out.contains(
            "plinth_http_request_duration_seconds_bucket{route=\"/api/users/{id}\",le=\"+Inf\"} 3"
        ));
    }
}
