//! Extractors: `Auth<P>` admits a signed-in user whose role has permission `P`, so each handler's
//! signature states what it needs; `ApiJson` and `ApiPath` turn bad input into a 400 naming what is wrong;
//! `Overcommit` reads the `?overcommit=` choice of the routes admission control checks.

use crate::app::AppError;
use crate::app::admission::{Admission, AuditNote};
use crate::app::permission::Permission;
use crate::db::UserRecord;
use crate::state::AppState;
use api::v1::{OvercommitChoice, SESSION_COOKIE};
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::header::COOKIE;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;

pub struct Auth<P: Permission> {
    pub user: UserRecord,
    /// When the token this request came with expires.
    pub session_expires_at: chrono::DateTime<chrono::Utc>,
    permission: PhantomData<P>,
}

pub fn session_cookie_value(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// The signed-in user behind the request's session cookie, if the token is valid and current.
pub async fn current_user(
    parts: &Parts,
    state: &AppState,
) -> Result<(UserRecord, chrono::DateTime<chrono::Utc>), AppError> {
    let not_signed_in = || AppError::Unauthorized("not signed in, or the session expired".into());
    let token = session_cookie_value(parts).ok_or_else(not_signed_in)?;
    let claims = state.keys.verify(&token).ok_or_else(not_signed_in)?;
    let user = state.db.user_fetch(claims.sub).await?.ok_or_else(not_signed_in)?;
    if user.disabled || user.token_version != claims.ver {
        return Err(not_signed_in());
    }
    Ok((user, crate::db::ms_to_time(claims.exp.saturating_mul(1000))))
}

impl<P: Permission> FromRequestParts<AppState> for Auth<P> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let (user, session_expires_at) = current_user(parts, state).await?;
        if !P::allows(user.role) {
            return Err(AppError::Forbidden(format!("your role ({}) may not {}", user.role.as_str(), P::DESCRIPTION)));
        }
        Ok(Auth { user, session_expires_at, permission: PhantomData })
    }
}

/// The client's address as this server sees it (the peer of the TCP connection).
pub struct ClientAddress(pub String);

pub fn client_address(parts: &Parts) -> String {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip().to_string())
        .unwrap_or_else(|| "unknown".to_owned())
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(client_address(parts)))
    }
}

/// JSON body whose rejection is a 400 with serde's message (which names the field).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> AppError {
    let code = match rejection {
        JsonRejection::MissingJsonContentType(_) => "content-type",
        _ => "invalid-body",
    };
    AppError::bad_request(code, rejection.body_text())
}

/// Path parameters whose rejection is a 400 naming the bad segment.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(path_rejection(rejection)),
        }
    }
}

fn path_rejection(rejection: PathRejection) -> AppError {
    AppError::bad_request("invalid-path", rejection.body_text())
}

/// The `overcommit` query parameter (`proceed` or `lower-limit`) of a route that admission control
/// checks, and the audit note its decision goes to. A bad value is a 400 naming the parameter.
pub struct Overcommit {
    pub choice: Option<OvercommitChoice>,
    /// The audit middleware's note for this request (a detached one when there is none).
    pub note: AuditNote,
}

#[derive(serde::Deserialize)]
struct OvercommitParams {
    #[serde(default)]
    overcommit: Option<OvercommitChoice>,
}

impl<S: Send + Sync> FromRequestParts<S> for Overcommit {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let params = Query::<OvercommitParams>::try_from_uri(&parts.uri).map_err(|_| {
            AppError::bad_request(
                "invalid-overcommit",
                format!("{}: expected \"proceed\" or \"lower-limit\"", api::v1::OVERCOMMIT_PARAM),
            )
        })?;
        let note = parts.extensions.get::<AuditNote>().cloned().unwrap_or_default();
        Ok(Overcommit { choice: params.0.overcommit, note })
    }
}

impl Overcommit {
    /// The caller's admission terms; 403 when their role may not override (below pool operator).
    pub fn admission(self, user: &UserRecord) -> Result<Admission, AppError> {
        Admission::new(self.choice, user.role, self.note)
    }
}

/// The audit middleware's note for this request, for handlers that note a decision but take no
/// `overcommit` choice.
impl<S: Send + Sync> FromRequestParts<S> for AuditNote {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<AuditNote>().cloned().unwrap_or_default())
    }
}
