//! The API's error type and the body extractors whose every rejection is one.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::server::auth::AuthFailure;
use crate::server::store::{Refusal, StoreError};

/// An API error: status plus `{error, message}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub(crate) fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub(crate) fn not_found(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no request `{id}`"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            Json(json!({ "error": self.code, "message": self.message })),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        r
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such request")
            }
            StoreError::Refused(Refusal {
                status,
                code,
                message,
            }) => ApiError::new(
                StatusCode::from_u16(status).unwrap_or(StatusCode::CONFLICT),
                code,
                message,
            ),
            StoreError::Unrecorded(m) if m.disk_full() => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unrecorded",
                format!(
                    "disk full writing the audit log, so nothing was changed; try again once space is freed ({m})"
                ),
            ),
            StoreError::Unrecorded(m) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unrecorded",
                format!("the server cannot write its audit log, so nothing was changed: {m}"),
            ),
            StoreError::Full(m) => {
                tracing::error!("store: disk full: {m}");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "disk_full",
                    "the server's disk is full (writing its database), so nothing was changed; try again once space is freed",
                )
            }
            StoreError::Busy(m) => {
                tracing::warn!("store: busy: {m}");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    "the server's database is busy, so nothing was changed; try again shortly",
                )
            }
            StoreError::Config(m) | StoreError::Unavailable(m) => {
                tracing::error!("store: unavailable: {m}");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    "the server cannot open or read its database, so nothing was changed",
                )
            }
            e @ StoreError::Newer { .. } => {
                tracing::error!("store: {e}");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    "the server's database was made by a newer gate, so nothing was changed",
                )
            }
            StoreError::Db(m) => {
                tracing::error!("store: {m}");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the server's database failed, so nothing was changed (the server's log has the details)",
                )
            }
        }
    }
}

/// A JSON body whose errors name the field (`argv[0]: invalid type ...`) and whose size is
/// limited by the router (413 past 1 MiB).
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        json_content_type(req.headers())?;
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        match serde_path_to_error::deserialize(de) {
            Ok(v) => Ok(JsonBody(v)),
            Err(e) => {
                let path = e.path().to_string();
                let inner = e.into_inner();
                Err(ApiError::bad(if path == "." {
                    format!("bad JSON body: {inner}")
                } else {
                    format!("`{path}`: {inner}")
                }))
            }
        }
    }
}

/// 415 unless the body is declared JSON (or not declared at all).
pub(crate) fn json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.is_empty() && !ct.starts_with("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send `Content-Type: application/json`",
        ));
    }
    Ok(())
}

/// A body that could not be read: 413 past the router's limit, else 400; always `{error, message}`.
pub(crate) fn body_rejection(e: BytesRejection) -> ApiError {
    let s = e.status();
    if s == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(s, "too_large", "the body is larger than 1 MiB")
    } else {
        ApiError::bad(e.body_text())
    }
}

/// A query string that does not fit (an unknown parameter...): 400 as `{error, message}`.
pub(crate) fn query_rejection(e: QueryRejection) -> ApiError {
    ApiError::bad(e.body_text())
}

impl From<AuthFailure> for ApiError {
    fn from(f: AuthFailure) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", f.message())
    }
}
