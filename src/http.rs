//! The admin HTTP listener (axum): `/healthz`, `/metrics`, `/api/v1/calls`.
//!
//! Owns: routes and their JSON. Talks to the control loop only through `AdminRequest`s.
//! Must not touch: engine state directly.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::extract::Path;
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::sync::{mpsc, oneshot};

use crate::engine::ids::OperatorId;
use crate::engine::Input;
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
        .route("/api/v1/operators", get(operators))
        .route("/api/v1/operators/{username}/{action}", post(operator_action))
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

async fn operators(State(state): State<AdminState>) -> Response {
    let (tx, rx) = oneshot::channel();
    if state.requests.send(AdminRequest::Operators(tx)).await.is_err() {
        return unavailable();
    }
    match rx.await {
        Ok(ops) => Json(serde_json::json!({ "operators": ops })).into_response(),
        Err(_) => unavailable(),
    }
}

/// The body of `POST …/pause`: `{"reason": "..."}`; optional.
#[derive(serde::Deserialize, Default)]
struct PauseBody {
    reason: Option<String>,
}

/// `POST /api/v1/operators/{username}/{pause|resume|login|logout}`.
async fn operator_action(
    State(state): State<AdminState>,
    Path((username, action)): Path<(String, String)>,
    body: Option<Json<PauseBody>>,
) -> Response {
    let (tx, rx) = oneshot::channel();
    if state.requests.send(AdminRequest::Operators(tx)).await.is_err() {
        return unavailable();
    }
    let Ok(ops) = rx.await else { return unavailable() };
    if !ops.iter().any(|o| o.username == username) {
        return error(StatusCode::NOT_FOUND, &format!("no operator {username:?}"));
    }
    let operator = OperatorId(username.clone());
    let input = match action.as_str() {
        "pause" => {
            let reason = body.and_then(|b| b.0.reason).unwrap_or_else(|| "pausa".into());
            // Bounded free text: it is stored and shown, never used as a metric label.
            if reason.chars().count() > 64 || reason.chars().any(char::is_control) {
                return error(StatusCode::UNPROCESSABLE_ENTITY, "reason: up to 64 printable characters");
            }
            Input::OperatorPaused { operator, reason }
        }
        "resume" => Input::OperatorResumed { operator },
        "login" => Input::OperatorLoggedIn { operator },
        "logout" => Input::OperatorLoggedOut { operator },
        _ => return error(StatusCode::NOT_FOUND, "actions: pause, resume, login, logout"),
    };
    if state.requests.send(AdminRequest::Operator(input)).await.is_err() {
        return unavailable();
    }
    (StatusCode::OK, Json(serde_json::json!({ "ok": true, "operator": username, "action": action }))).into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

fn unavailable() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
}
