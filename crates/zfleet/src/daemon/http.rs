//! The listener: `/` the status page, `/metrics` Prometheus, `/status.json`
//! the report `zfleet status --json` prints. GET only: nothing here acts.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use zfleet_core::status::{metrics, page};

use super::shared::Shared;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/metrics", get(prometheus))
        .route("/status.json", get(json))
        .fallback(not_found)
        .with_state(shared)
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

async fn index(State(s): State<Arc<Shared>>) -> Response {
    let r = s.report(now());
    Html(page::render(&r, &s.this_host, &s.tz)).into_response()
}

async fn prometheus(State(s): State<Arc<Shared>>) -> Response {
    let r = s.report(now());
    match metrics::encode_report(&r) {
        Ok(text) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode the metrics\n",
        )
            .into_response(),
    }
}

async fn json(State(s): State<Arc<Shared>>) -> Response {
    let r = s.report(now());
    match serde_json::to_string_pretty(&r) {
        Ok(text) => ([(header::CONTENT_TYPE, "application/json")], text).into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode the status\n",
        )
            .into_response(),
    }
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        "not found: this listener serves /, /metrics and /status.json\n",
    )
        .into_response()
}
