//! The agents' WebSocket endpoint: checks the zone join token before upgrading.

use crate::app::AppError;
use crate::state::AppState;
use axum::extract::{State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::response::Response;
use sha2::{Digest, Sha256};

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub async fn connect(
    State(state): State<AppState>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Result<Response, AppError> {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or_else(|| {
            AppError::Unauthorized("agents must present their zone's join token as a Bearer token".into())
        })?;
    let zone = state
        .db
        .zone_fetch_by_token_hash(&token_hash(token.trim()))
        .await?
        .ok_or_else(|| AppError::Unauthorized("the join token matches no zone".into()))?;
    Ok(upgrade.on_upgrade(move |socket| crate::agents::session::run(state, zone, socket)))
}
