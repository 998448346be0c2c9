//! Why one service's backup or restore failed: each variant says what was being done
//! and carries the cause; Display never repeats the cause and never shows a secret.

use cp_core::names::CoreKind;

use crate::pipeline::PipelineError;

/// A service's backup or restore failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// An artifact could not be written or read.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// A SQL statement failed.
    #[error("postgres: {doing}")]
    Sql {
        /// What was being done.
        doing: String,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
    /// A program (pg_dump, psql) failed.
    #[error("{program} {doing} failed ({status}): {stderr}")]
    Tool {
        /// The program.
        program: String,
        /// What it was doing.
        doing: String,
        /// Its exit status.
        status: String,
        /// The end of what it printed on stderr.
        stderr: String,
    },
    /// A program could not be started.
    #[error("cannot run {program}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A program is missing.
    #[error(transparent)]
    Missing(#[from] cp_runtime::exec::MissingBinary),
    /// The client tools are older than the server.
    #[error(
        "{program} is version {tool} but the server is PostgreSQL {server}: a dump needs client tools at least as new as the server; install postgresql-client-{server} (or put its bin directory first in PATH)"
    )]
    ToolTooOld {
        /// The program.
        program: String,
        /// Its major version.
        tool: u32,
        /// The server's major version.
        server: u32,
    },
    /// A row count differs after restore.
    #[error("postgres: {table} has {found} rows after restore, the manifest says {expected}")]
    RowCount {
        /// `schema.table`.
        table: String,
        /// Restored rows.
        found: u64,
        /// Recorded rows.
        expected: u64,
    },
    /// A Vault request failed.
    #[error("vault: {doing}")]
    Vault {
        /// What was being done.
        doing: String,
        /// Why.
        #[source]
        source: cp_runtime::vault::RequestError,
    },
    /// Vault answered but not as expected.
    #[error("vault: {0}")]
    VaultState(String),
    /// A HTTP transfer to or from Vault broke.
    #[error("vault: {doing}")]
    Http {
        /// What was being done.
        doing: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// NATS could not be reached.
    #[error(transparent)]
    NatsConnect(#[from] cp_runtime::nats::ConnectError),
    /// A JetStream request failed or answered an error.
    #[error("nats: {doing}: {detail}")]
    Nats {
        /// What was being done.
        doing: String,
        /// What went wrong.
        detail: String,
    },
    /// Redis failed.
    #[error("redis: {doing}")]
    Redis {
        /// What was being done.
        doing: String,
        /// Why.
        #[source]
        source: cp_runtime::resp::RespError,
    },
    /// Redis said something unexpected.
    #[error("redis: {0}")]
    RedisState(String),
    /// The service is not enabled or not reachable as configured.
    #[error("{service}: {detail}")]
    Unavailable {
        /// The service.
        service: CoreKind,
        /// What is missing.
        detail: String,
    },
    /// The set does not hold what this service needs.
    #[error("{service}: the set holds no usable backup of it ({detail})")]
    NotInSet {
        /// The service.
        service: CoreKind,
        /// Why.
        detail: String,
    },
}

impl ServiceError {
    /// A SQL failure while doing `doing`.
    pub(crate) fn sql(doing: impl Into<String>) -> impl FnOnce(sqlx::Error) -> ServiceError {
        let doing = doing.into();
        move |source| ServiceError::Sql { doing, source }
    }

    /// A Vault failure while doing `doing`.
    pub(crate) fn vault(
        doing: impl Into<String>,
    ) -> impl FnOnce(cp_runtime::vault::RequestError) -> ServiceError {
        let doing = doing.into();
        move |source| ServiceError::Vault { doing, source }
    }

    /// A Redis failure while doing `doing`.
    pub(crate) fn redis(
        doing: impl Into<String>,
    ) -> impl FnOnce(cp_runtime::resp::RespError) -> ServiceError {
        let doing = doing.into();
        move |source| ServiceError::Redis { doing, source }
    }
}
