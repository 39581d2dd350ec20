//! `GET /api/v1/bans` (who the SIP edge is dropping, why, until when) and
//! `DELETE /api/v1/bans/{address}` (lift one, e.g. an office that mistyped a password).
//!
//! Owns: the JSON of bans. Must not touch: the ban policy (the SIP edge decides).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{error, AdminState};

pub(super) async fn list(State(state): State<AdminState>) -> Response {
    let bans: Vec<serde_json::Value> = state
        .metrics
        .service
        .edge()
        .bans()
        .into_iter()
        .map(|b| {
            serde_json::json!({
                "source": b.source,
                "reason": b.reason.as_str(),
                "since": b.since.to_string(),
                "until": b.until.to_string(),
                "dropped": b.dropped,
            })
        })
        .collect();
    Json(serde_json::json!({ "bans": bans })).into_response()
}

pub(super) async fn lift(State(state): State<AdminState>, Path(address): Path<String>) -> Response {
    let Ok(ip) = address.parse::<std::net::IpAddr>() else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "expected an IP address");
    };
    if state.metrics.service.edge().lift(ip) {
        (StatusCode::OK, Json(serde_json::json!({ "ok": true, "lifted": ip.to_string() }))).into_response()
    } else {
        error(StatusCode::NOT_FOUND, &format!("{ip} is not banned"))
    }
}
