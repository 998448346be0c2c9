//! Connecting to NATS as controlplane: the admin user, a connection timeout, and an
//! inbox prefix of controlplane's own (`_INBOX_CP`), so replies to controlplane's
//! requests (stream listings, snapshot chunks) never travel on `_INBOX.>`, the only
//! reply space the application user may subscribe to.

use std::time::Duration;

use async_nats::jetstream;
use cp_core::serverconf::NATS_ADMIN_USER;

use crate::access::NatsAccess;

/// The inbox prefix of controlplane's connections. The app user's permissions allow
/// `_INBOX.>` only, which does not match this.
pub const INBOX_PREFIX: &str = "_INBOX_CP";

/// How long one connection attempt or JetStream request may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Why NATS could not be reached.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to NATS at {addr} as `{user}`")]
pub struct ConnectError {
    /// `host:port`.
    pub addr: String,
    /// The user.
    pub user: String,
    /// The setting holding the user's password, for the hint.
    pub setting: &'static str,
    /// Why.
    #[source]
    pub source: async_nats::ConnectError,
}

impl ConnectError {
    /// What to do about it.
    pub fn hint(&self) -> String {
        match self.source.kind() {
            async_nats::ConnectErrorKind::AuthorizationViolation => format!(
                "the server refused user `{}`: check that `{}` matches the password the server \
                 was started with (`controlplane up` rewrites the server config)",
                self.user, self.setting
            ),
            _ => "is NATS up? run `controlplane up` (or `controlplane status`) first".to_owned(),
        }
    }
}

/// Connects as `user` with `password`, with controlplane's inbox prefix.
pub async fn connect_as(
    nats: &NatsAccess,
    user: &str,
    password: &str,
    setting: &'static str,
) -> Result<async_nats::Client, ConnectError> {
    let addr = nats.endpoint.addr();
    // Verified against the environment's CA (and the address as its name) under TLS.
    crate::probe::nats_tls(async_nats::ConnectOptions::new(), &nats.endpoint)
        .user_and_password(user.to_owned(), password.to_owned())
        .connection_timeout(TIMEOUT)
        .custom_inbox_prefix(INBOX_PREFIX)
        .connect(&addr)
        .await
        .map_err(|source| ConnectError {
            addr,
            user: user.to_owned(),
            setting,
            source,
        })
}

/// Connects as the admin user (controlplane's own identity).
pub async fn connect_admin(nats: &NatsAccess) -> Result<async_nats::Client, ConnectError> {
    connect_as(
        nats,
        NATS_ADMIN_USER,
        nats.admin_password.expose(),
        cp_core::settings::SecretSetting::NatsAdmin.path(),
    )
    .await
}

/// The JetStream context of an admin connection, with [`TIMEOUT`] per request.
pub async fn jetstream_admin(nats: &NatsAccess) -> Result<jetstream::Context, ConnectError> {
    let mut js = jetstream::new(connect_admin(nats).await?);
    js.set_timeout(TIMEOUT);
    Ok(js)
}
