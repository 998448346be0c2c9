//! The API's one error type: an HTTP status, a message for the client and, separately,
//! what only the log sees. A 500 tells the client nothing internal (no path, no cause
//! chain). `From<AppError>` is the one place application errors become statuses.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use schemars::JsonSchema;
use serde::Serialize;

use cp_app::AppError;
use cp_backup::run::BackupError;

/// What a client receives on an error.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ErrorBody {
    /// A stable code (`unauthorized`, `forbidden`, `not_found`, `conflict`, ...).
    pub error: String,
    /// What went wrong and what to do, for people.
    pub message: String,
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
        let chain = cp_seed_chain(&e);
        match &e {
            AppError::Usage(_) | AppError::NeedsConfirmation { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", chain)
            }
            AppError::NotFound(_) => ApiError::not_found(chain),
            AppError::State(cp_runtime::state::StateError::Busy { what, holder, .. })
            | AppError::Backup(BackupError::State(cp_runtime::state::StateError::Busy {
                what,
                holder,
                ..
            })) => busy(what, holder, chain),
            AppError::StalePlan { .. } | AppError::Blocked { .. } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", chain)
            }
            // A managed service did not answer or refused: the client needs to know
            // which and why (these messages never carry a secret value).
            AppError::Driver(_) | AppError::Seed(_) | AppError::Access(_) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "service_failed", chain)
            }
            AppError::Backup(b) => backup_error(b, chain),
            // The backup before `up` failed: which services and why is the answer.
            AppError::BackupFirst { .. } => {
                ApiError::new(StatusCode::BAD_GATEWAY, "backup_failed", chain)
            }
            AppError::Prometheus { .. } => {
                ApiError::new(StatusCode::BAD_GATEWAY, "prometheus_failed", chain)
            }
            // The server's own files (environment files, state directory): internal.
            AppError::Invalid(_) | AppError::Project { .. } | AppError::State(_) => {
                ApiError::internal(chain)
            }
        }
    }
}

/// 409 naming the lock's holder (a pid, its command and since when: nothing secret).
fn busy(what: &str, holder: &str, chain: String) -> ApiError {
    ApiError {
        status: StatusCode::CONFLICT,
        code: "busy",
        external: format!(
            "another controlplane run is working on this environment ({what} lock held by {holder}); try again when it finishes"
        ),
        internal: Some(chain),
    }
}

/// A backup command's failure: the client's mistake, a missing set, a service or a
/// destination that failed, or the server's own state.
fn backup_error(e: &BackupError, chain: String) -> ApiError {
    match e {
        BackupError::Disabled { .. } | BackupError::ServiceNotInSet { .. } => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", chain)
        }
        BackupError::NoSuchSet { .. } => ApiError::not_found(chain),
        BackupError::Incomplete { .. } | BackupError::Damaged { .. } => {
            ApiError::new(StatusCode::CONFLICT, "conflict", chain)
        }
        // Destinations, services and manifests: which one failed and why is what the
        // operator needs (destination errors name the place, never a credential).
        BackupError::Destination(_)
        | BackupError::AllFailed { .. }
        | BackupError::ManifestWrite { .. }
        | BackupError::Manifest(_)
        | BackupError::Restore { .. } => {
            ApiError::new(StatusCode::BAD_GATEWAY, "backup_failed", chain)
        }
        // The environment's own settings or the server's state: internal.
        BackupError::State(_)
        | BackupError::Recipient(_)
        | BackupError::Identity(_)
        | BackupError::Secret { .. } => ApiError::internal(chain),
    }
}

fn cp_seed_chain(e: &AppError) -> String {
    let mut out = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        src = s.source();
    }
    out
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
