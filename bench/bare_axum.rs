//! Baseline for the auth benchmark: a bare axum handler that returns a
//! constant JSON body, on the same runtime settings as plinth. The ratio
//! plinth / this is what `bench/run.sh` reports.
//!
//! Usage: `cargo run --release --example bare_axum -- 127.0.0.1:9001`

use axum::Router;
use axum::http::header;
use axum::routing::get;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".to_owned());
    let app = Router::new().route(
        "/",
        get(|| async {
            (
                [(header::CONTENT_TYPE, "application/json")],
                "{\"ok\":true}",
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}
