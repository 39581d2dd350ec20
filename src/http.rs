//! The admin HTTP listener (axum): `/healthz`, `/metrics`, `/api/v1/calls`.
//!
//! Owns: routes and their JSON. Talks to the control loop only through `AdminRequest`s.
//! Must not touch: engine state directly.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::sync::{mpsc, oneshot};

use crate::metrics::MetricsSources;
use crate::runtime::AdminRequest;

/// What the handlers need.
#[derive(Clone)]
pub struct AdminState {
    pub requests: mpsc::Sender<AdminRequest>,
    pub metrics: Arc<MetricsSources>,
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/calls", get(calls))
        .with_state(state)
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AdminState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn calls(State(state): State<AdminState>) -> Response {
    let (tx, rx) = oneshot::channel();
    if state.requests.send(AdminRequest::Calls(tx)).await.is_err() {
        return unavailable();
    }
    match rx.await {
        Ok(calls) => Json(serde_json::json!({ "calls": calls })).into_response(),
        Err(_) => unavailable(),
    }
}

async fn metrics(State(state): State<AdminState>) -> Response {
    let (tx, rx) = oneshot::channel();
    if state.requests.send(AdminRequest::Stats(tx)).await.is_err() {
        return unavailable();
    }
    let Ok(stats) = rx.await else { return unavailable() };
    match state.metrics.render(&stats) {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("metrics: {e}\n")).into_response(),
    }
}

fn unavailable() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
}
