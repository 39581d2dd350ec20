//! The admin HTTP listener (axum): `/healthz`, `/metrics`, `/api/v1/calls`,
//! `/api/v1/operators`, `/api/v1/bans`, behind the access checks of [`auth`].
//!
//! Owns: routes and their JSON. Talks to the control loop only through `AdminRequest`s.
//! Must not touch: engine state directly.

/// Who may do what: the middleware in front of every route.
pub mod auth;
/// The SIP edge's bans.
mod bans;
/// What a read-scope client sees of a caller's number.
pub mod mask;
/// The generated admin token and its file.
pub mod token_file;
/// Bearer tokens and their scopes.
pub mod tokens;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::sync::{mpsc, oneshot};

pub use tokens::Access;

use crate::engine::ids::OperatorId;
use crate::engine::Input;
use crate::metrics::MetricsSources;
use crate::runtime::AdminRequest;

/// What the handlers need.
#[derive(Clone)]
pub struct AdminState {
    pub requests: mpsc::Sender<AdminRequest>,
    pub metrics: Arc<MetricsSources>,
    /// Tokens, scopes and accepted hosts.
    pub access: Arc<auth::Policy>,
}

pub fn router(state: AdminState) -> Router {
    let access = state.access.clone();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/calls", get(calls))
        .route("/api/v1/operators", get(operators))
        .route("/api/v1/operators/{username}/{action}", post(operator_action))
        .route("/api/v1/bans", get(bans::list))
        .route("/api/v1/bans/{address}", axum::routing::delete(bans::lift))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(access, auth::enforce))
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

/// The live calls; callers' numbers in full for the admin scope only. Without an
/// [`Access`] (a router built without the middleware) they are masked: fail closed.
async fn calls(State(state): State<AdminState>, access: Option<Extension<Access>>) -> Response {
    let (tx, rx) = oneshot::channel();
    if state.requests.send(AdminRequest::Calls(tx)).await.is_err() {
        return unavailable();
    }
    let Ok(mut calls) = rx.await else { return unavailable() };
    if !matches!(access, Some(Extension(Access::Admin))) {
        for call in &mut calls {
            call.caller = mask::caller(&call.caller);
        }
    }
    Json(serde_json::json!({ "calls": calls })).into_response()
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

/// `POST /api/v1/operators/{username}/{pause|resume|login|logout}`. The middleware has
/// checked the `Content-Type`; the body may still be empty.
async fn operator_action(
    State(state): State<AdminState>,
    Path((username, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let body: PauseBody = if body.iter().all(u8::is_ascii_whitespace) {
        PauseBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("body: {e}")),
        }
    };
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
            let reason = body.reason.unwrap_or_else(|| "pausa".into());
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
