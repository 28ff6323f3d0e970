//! `/healthz` and `/readyz`.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use crate::http::AppState;
use crate::http::error::ApiError;

/// Operations routes (no token needed).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// Prometheus text: HTTP counters and latencies, script errors, plugin
/// loads, and the read pool.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    use std::fmt::Write as _;
    let mut out = String::new();
    state.metrics.render_http(&mut out);
    out.push_str("# HELP plinth_script_errors_total Script failures by plugin and kind (runtime, limit, timeout).
");
    out.push_str(
        "# TYPE plinth_script_errors_total counter
",
    );
    let registry = state.plugins.registry();
    for name in registry.all().keys() {
        for (kind, n) in registry.stats(name).faults() {
            let _ = writeln!(
                out,
                "plinth_script_errors_total{{plugin=\"{name}\",kind=\"{}\"}} {n}",
                kind.as_str()
            );
        }
    }
    out.push_str(
        "# HELP plinth_plugin_reloads_total Plugin loads and reloads by result.
",
    );
    out.push_str(
        "# TYPE plinth_plugin_reloads_total counter
",
    );
    let mut names: Vec<String> = registry.all().keys().cloned().collect();
    names.extend(registry.refused().keys().cloned());
    names.sort();
    names.dedup();
    for name in &names {
        let (ok, error) = registry.stats(name).reloads();
        let _ = writeln!(
            out,
            "plinth_plugin_reloads_total{{plugin=\"{name}\",result=\"ok\"}} {ok}"
        );
        let _ = writeln!(
            out,
            "plinth_plugin_reloads_total{{plugin=\"{name}\",result=\"error\"}} {error}"
        );
    }
    let pool = state.db.pool_state();
    out.push_str(
        "# HELP plinth_db_pool_connections Read pool connections by state.
",
    );
    out.push_str(
        "# TYPE plinth_db_pool_connections gauge
",
    );
    let _ = writeln!(
        out,
        "plinth_db_pool_connections{{state=\"idle\"}} {}",
        pool.idle
    );
    let _ = writeln!(
        out,
        "plinth_db_pool_connections{{state=\"busy\"}} {}",
        pool.connections.saturating_sub(pool.idle)
    );
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        out,
    )
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    if !state.is_ready() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "start-up is not complete",
        ));
    }
    state.db.ping().await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("database unreachable: {e}"),
        )
    })?;
    Ok(axum::Json(json!({"status": "ready"})))
}
