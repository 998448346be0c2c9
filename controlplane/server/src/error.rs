//! The API's one error type: an HTTP status, a message for the client and, separately,
//! what only the log sees. A 500 tells the client nothing internal (no path, no cause
//! chain). `From<AppError>` is the one place application errors become statuses.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use schemars::JsonSchema;
use serde::Serialize;

use cp_app::{AppError, ErrorKind};

/// What a client receives on an error.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ErrorBody {
    /// A stable code (`unauthorized`, `forbidden`, `not_found`, `conflict`, ...).
    pub error: String,
    /// What went wrong and what to do, for people.
    pub message: String,
    /// The request's id (also the `x-request-id` header): the server's log has the
    /// details of a failure under it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// The status.
    pub status: StatusCode,
    /// The stable code.
    pub code: &'static str,
    /// Shown to the client.
    pub external: String,
    /// Logged only.
    pub internal: Option<String>,
}

impl ApiError {
    /// An error whose message is fit for the client.
    pub fn new(status: StatusCode, code: &'static str, external: impl Into<String>) -> Self {
        Self {
            status,
            code,
            external: external.into(),
            internal: None,
        }
    }

    /// A 500: the client learns only that it failed; `internal` goes to the log.
    pub fn internal(internal: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            external: "the server failed to answer this request; its log has the details (look up the x-request-id)".into(),
            internal: Some(internal.into()),
        }
    }

    /// 400.
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", msg)
    }

    /// 401.
    pub fn unauthorized(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", msg)
    }

    /// 403.
    pub fn forbidden(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", msg)
    }

    /// 404.
    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", msg)
    }

    /// 503 for a mutation refused because the audit log cannot be written.
    pub fn audit_unavailable(internal: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "audit_unavailable",
            external: "the audit log cannot be written (is the server's state directory read-only or full?), so no change is made; reads still work".into(),
            internal: Some(internal.into()),
        }
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        ApiError::from(&e)
    }
}

impl From<&AppError> for ApiError {
    /// The one place application errors become statuses, by their kind: usage 422,
    /// not found 404, conflict 409 (naming a lock's holder), a managed service or
    /// destination that failed 502 (which one and why: these messages never carry a
    /// secret value), a bug or the server's own files 500 (the client learns nothing
    /// internal; the log has the chain).
    fn from(e: &AppError) -> Self {
        let chain = e.chain();
        match e.kind() {
            // The environment files are the server's own configuration.
            _ if matches!(e, AppError::Invalid(_)) => ApiError::internal(chain),
            ErrorKind::Usage if matches!(e, AppError::Blocked { .. }) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", chain)
            }
            ErrorKind::Usage => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", chain),
            ErrorKind::NotFound => ApiError::not_found(chain),
            ErrorKind::Conflict => match e.holder() {
                Some((what, holder)) => busy(&what, &holder, chain),
                None => ApiError::new(StatusCode::CONFLICT, "conflict", chain),
            },
            // The database's own words (role and constraint names, SQLSTATEs) stay in
            // the log.
            ErrorKind::Unavailable if e.database_detail() => ApiError {
                status: StatusCode::BAD_GATEWAY,
                code: e.code(),
                external: "postgres: the database failed to answer this request; the server's log has the details (look up the request_id)".into(),
                internal: Some(chain),
            },
            ErrorKind::Unavailable => ApiError::new(StatusCode::BAD_GATEWAY, e.code(), chain),
            ErrorKind::Internal => ApiError::internal(chain),
        }
    }
}

/// 409 naming the lock's holder (a pid, its command and since when: nothing secret).
fn busy(what: &str, holder: &str, chain: String) -> ApiError {
    ApiError {
        status: StatusCode::CONFLICT,
        code: "busy",
        external: format!(
            "another controlplane run is working on this environment ({what} held by {holder}); try again when it finishes"
        ),
        internal: Some(chain),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(internal) = &self.internal {
            // Logged once, here at the boundary, with the whole chain.
            if self.status.is_server_error() {
                tracing::error!(status = self.status.as_u16(), error = %internal, "request failed");
            } else {
                tracing::warn!(status = self.status.as_u16(), error = %internal, "request refused");
            }
        }
        let mut res = (
            self.status,
            Json(ErrorBody {
                error: self.code.to_owned(),
                message: self.external,
                request_id: crate::layers::current_request_id(),
            }),
        )
            .into_response();
        res.extensions_mut().insert(ErrorCode(self.code));
        res
    }
}

/// The error code of a response, for the audit log's detail.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);
