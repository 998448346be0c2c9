//! Authentication and authorization, in one middleware over every route: find the
//! route in the access table (`crate::routes`), refuse addresses over the
//! failed-authentication limit, identify the principal (API: a bearer token or an
//! OIDC JWT; console: the session cookie), check the role and the tenant scope, check
//! the CSRF token of console forms, and audit every mutation: denied, or allowed
//! (written before the handler runs; if it cannot be written the mutation is refused)
//! and then its result.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use http::{HeaderValue, StatusCode, header};
use schemars::JsonSchema;
use serde::Serialize;

use crate::audit::{AuditEntry, Outcome};
use crate::error::{ApiError, ErrorCode};
use crate::layers::RequestId;
use crate::routes::{self, Access, Role, Route, Surface, TenantScope};
use crate::state::AppState;

/// The largest request body read (JSON bodies and console forms).
pub const BODY_LIMIT: usize = 16 * 1024;

/// How a principal authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// An API token.
    Token,
    /// An OIDC JWT.
    Oidc,
    /// A console session (started with a token or JWT).
    Session,
}

/// Who is calling.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Principal {
    /// `token:<name>` or `oidc:<subject>`.
    pub actor: String,
    /// The role.
    pub role: Role,
    /// The tenant it is scoped to, if any.
    pub tenant: Option<String>,
    /// How it authenticated.
    pub via: Via,
    /// Whether `tenant` is a tenant's id and matches nothing else (API tokens, and
    /// console sessions started with one); otherwise it is what an identity provider's
    /// claim says, a tenant's id or slug.
    #[serde(skip)]
    pub tenant_is_id: bool,
}

impl Principal {
    /// Whether this principal may see tenant `id`/`slug`. A token is bound to the id
    /// its tenant had when the token was made: a tenant deleted and made again under
    /// the same slug is another tenant to it (and a slug that looks like some other
    /// tenant's id matches nothing).
    pub fn may_see_tenant(&self, id: &str, slug: &str) -> bool {
        match &self.tenant {
            None => true,
            Some(t) if self.tenant_is_id => t == id,
            Some(t) => t == id || t == slug,
        }
    }
}

/// Why credentials were refused (for the log and the audit detail; the client hears
/// only "invalid credentials").
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A token that is not (or no longer) in the store.
    #[error("unknown, revoked or expired token")]
    UnknownToken,
    /// A token scoped to a tenant by slug, made before tokens were bound to tenant
    /// ids: it could reach another tenant made later under that slug, so it is refused.
    #[error(
        "token `{name}` is scoped to tenant `{slug}` by slug (made before tokens were bound to tenant ids); revoke it and create it again"
    )]
    UnboundTenant {
        /// The token's name.
        name: String,
        /// The slug it names.
        slug: String,
    },
    /// A JWT, but no OIDC is configured.
    #[error("a JWT was presented but no OIDC issuer is configured")]
    NoOidc,
    /// The JWT was refused.
    #[error(transparent)]
    Jwt(#[from] crate::oidc::JwtError),
    /// The token store failed.
    #[error(transparent)]
    Store(#[from] crate::tokens::TokenError),
}

/// What a principal authenticated with, as a console session keeps it to check at
/// every request that it still holds (never the credential itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// An API token, by its hash: revoking or expiring it ends the session.
    Token {
        /// The token's SHA-256 (hex).
        sha256: String,
    },
    /// An OIDC JWT: the session ends when it expires.
    Jwt {
        /// Its `exp`.
        expires_at: Option<chrono::DateTime<Utc>>,
    },
}

/// Identifies the bearer of `credential` (an API token or a JWT).
pub async fn identify(state: &AppState, credential: &str) -> Result<Principal, AuthError> {
    identify_with(state, credential).await.map(|(p, _)| p)
}

/// [`identify`], also saying what it was identified by.
pub async fn identify_with(
    state: &AppState,
    credential: &str,
) -> Result<(Principal, Credential), AuthError> {
    if credential.starts_with(crate::tokens::PREFIX) {
        let t = state
            .tokens
            .verify(credential)?
            .ok_or(AuthError::UnknownToken)?;
        if let Some(slug) = t
            .tenant
            .as_ref()
            .filter(|k| uuid::Uuid::parse_str(k).is_err())
        {
            return Err(AuthError::UnboundTenant {
                name: t.name.clone(),
                slug: slug.clone(),
            });
        }
        let p = Principal {
            actor: format!("token:{}", t.name),
            role: t.role,
            tenant: t.tenant,
            via: Via::Token,
            tenant_is_id: true,
        };
        return Ok((p, Credential::Token { sha256: t.sha256 }));
    }
    let oidc = state.oidc.as_ref().ok_or(AuthError::NoOidc)?;
    let id = oidc.validate(credential).await?;
    let p = Principal {
        actor: format!("oidc:{}", id.subject),
        role: id.role,
        tenant: id.tenant,
        via: Via::Oidc,
        tenant_is_id: false,
    };
    Ok((
        p,
        Credential::Jwt {
            expires_at: id.expires_at,
        },
    ))
}

/// Why a console session's credential no longer holds.
#[derive(Debug, thiserror::Error)]
pub enum SessionEnded {
    /// Its token is no longer in the store.
    #[error("the session's token was revoked or expired")]
    Revoked,
    /// The token store could not be read.
    #[error("the session's token cannot be checked")]
    Unchecked(#[source] crate::tokens::TokenError),
    /// Its JWT's expiry passed.
    #[error("the session's JWT expired")]
    JwtExpired,
}

/// Whether the credential a console session was started with still holds: its token
/// not revoked nor expired, its JWT not expired.
pub fn still_valid(state: &AppState, c: &Credential) -> Result<(), SessionEnded> {
    match c {
        Credential::Token { sha256 } => match state.tokens.by_hash(sha256) {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(SessionEnded::Revoked),
            Err(e) => Err(SessionEnded::Unchecked(e)),
        },
        Credential::Jwt {
            expires_at: Some(t),
        } if *t <= state.clock.now() => Err(SessionEnded::JwtExpired),
        Credential::Jwt { .. } => Ok(()),
    }
}

/// What an authenticated request was let in by, kept in its extensions so a
/// long-lived response (an event stream) can check again that it still holds.
#[derive(Debug, Clone)]
pub enum Holder {
    /// A bearer credential of the API.
    Bearer(Credential),
    /// A console session, by id.
    Session(String),
}

/// How often a long-lived response checks that its credential still holds.
pub const RECHECK: std::time::Duration = std::time::Duration::from_millis(500);

/// Whether what let the request in still holds: the token not revoked nor expired,
/// the JWT not expired, the console session not ended (and its own credential
/// holding; a session whose credential failed is ended here).
pub fn still_holds(state: &AppState, holder: &Holder) -> bool {
    match holder {
        Holder::Bearer(c) => still_valid(state, c).is_ok(),
        Holder::Session(sid) => match state.sessions.get(sid) {
            Some(s) if still_valid(state, &s.credential).is_ok() => true,
            Some(_) => {
                state.sessions.end(sid);
                false
            }
            None => false,
        },
    }
}

/// Resolves when `holder` stops holding (checked every [`RECHECK`]): an event
/// stream selects on it and ends, so a revoked or expired credential hears nothing
/// more however long the stream was meant to last.
pub async fn until_revoked(state: AppState, holder: Holder) {
    loop {
        if !still_holds(&state, &holder) {
            tracing::info!("an event stream ended: its credential was revoked or expired");
            return;
        }
        tokio::time::sleep(RECHECK).await;
    }
}

/// The client's address (the peer of the connection).
pub fn client_ip(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// The bearer credential of a request.
fn bearer(req: &Request) -> Option<&str> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// A cookie's value.
pub fn cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The route a response came from, for the access log and the metrics.
#[derive(Debug, Clone, Copy)]
pub struct RouteTemplate(pub &'static str);

/// The actor of a response, for the access log.
#[derive(Debug, Clone)]
pub struct Actor(pub String);

struct Denial {
    error: ApiError,
    detail: String,
    principal: Option<Principal>,
}

fn deny(error: ApiError, detail: impl Into<String>, principal: Option<Principal>) -> Denial {
    Denial {
        error,
        detail: detail.into(),
        principal,
    }
}

// Every field of an audit line is a distinct fact of the request; a struct for them
// would only be this list again.
#[allow(clippy::too_many_arguments)]
fn entry(
    req_id: &str,
    p: Option<&Principal>,
    route: &Route,
    target: &str,
    outcome: Outcome,
    status: u16,
    detail: Option<String>,
    ip: IpAddr,
) -> AuditEntry {
    AuditEntry {
        time: Utc::now(),
        request_id: req_id.to_owned(),
        actor: p.map_or_else(|| "anonymous".to_owned(), |p| p.actor.clone()),
        role: p.map(|p| p.role),
        tenant: p.and_then(|p| p.tenant.clone()),
        action: route.action.to_owned(),
        target: target.to_owned(),
        subject: None,
        outcome,
        status,
        detail,
        client: ip.to_string(),
    }
}

/// The middleware (a `route_layer`, so it sees the matched route).
pub async fn authorize(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(matched) = req.extensions().get::<MatchedPath>().cloned() else {
        return next.run(req).await;
    };
    let Some(route) = routes::lookup(req.method(), matched.as_str()) else {
        // The path is routed for other methods: 405, naming them.
        let allowed: Vec<&str> = routes::all()
            .filter(|r| r.path == matched.as_str())
            .map(|r| r.method.as_str())
            .collect();
        if !allowed.is_empty() {
            let mut res = ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!(
                    "{} is not allowed here; use {}",
                    req.method(),
                    allowed.join(", ")
                ),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&allowed.join(", ")) {
                res.headers_mut().insert(header::ALLOW, v);
            }
            res.extensions_mut()
                .insert(RouteTemplate(crate::metrics::UNMATCHED));
            return res;
        }
        let mut res = ApiError::internal(format!(
            "{} {} is routed but missing from the access table",
            req.method(),
            matched.as_str()
        ))
        .into_response();
        res.extensions_mut().insert(RouteTemplate("unlisted"));
        return res;
    };
    let mut res = authorize_route(&state, route, req, next).await;
    res.extensions_mut().insert(RouteTemplate(route.path));
    res
}

async fn authorize_route(
    state: &AppState,
    route: &'static Route,
    req: Request,
    next: Next,
) -> Response {
    let ip = client_ip(&req);
    let req_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let target = req.uri().path().to_owned();
    let (req, principal) = match check(state, route, req, ip).await {
        Ok(x) => x,
        Err(d) => {
            let status = d.error.status;
            if route.mutates() {
                let e = entry(
                    &req_id,
                    d.principal.as_ref(),
                    route,
                    &target,
                    Outcome::Denied,
                    status.as_u16(),
                    Some(d.detail.clone()),
                    ip,
                );
                if let Err(err) = state.audit.append(e).await {
                    tracing::error!(error = %cp_runtime::error::chain(&err), "a denial could not be audited");
                }
            }
            tracing::info!(action = route.action, status = status.as_u16(), reason = %d.detail, "denied");
            return denial_response(route, d, status);
        }
    };
    let actor = principal.as_ref().map(|p| p.actor.clone());
    if !route.mutates() {
        let mut res = next.run(req).await;
        if let Some(a) = actor {
            res.extensions_mut().insert(Actor(a));
        }
        return res;
    }
    let allowed = entry(
        &req_id,
        principal.as_ref(),
        route,
        &target,
        Outcome::Allowed,
        0,
        None,
        ip,
    );
    if let Err(err) = state.audit.append(allowed).await {
        let why = cp_runtime::error::chain(&err);
        if route.access == Access::Public {
            // Logging in changes nothing but the server's memory: it stays possible
            // (and is logged) while the audit log cannot be written.
            tracing::error!(error = %why, "a login attempt could not be audited");
        } else {
            return ApiError::audit_unavailable(why).into_response();
        }
    }
    let mut res = next.run(req).await;
    // Logging in names its principal only in the response.
    let principal = principal.or_else(|| res.extensions().get::<Principal>().cloned());
    let status = res.status();
    let ok = (status.is_success() || status.is_redirection())
        && res.extensions().get::<crate::console::Failed>().is_none();
    let detail = res.extensions().get::<ErrorCode>().map(|c| c.0.to_owned());
    let mut done = entry(
        &req_id,
        principal.as_ref(),
        route,
        &target,
        if ok {
            Outcome::Succeeded
        } else {
            Outcome::Failed
        },
        status.as_u16(),
        if ok {
            None
        } else {
            detail.or_else(|| Some(status.to_string()))
        },
        ip,
    );
    done.subject = res.extensions().get::<crate::audit::Subject>().cloned();
    if let Err(err) = state.audit.append(done).await {
        // The change is made and its `allowed` line is durable; say the result is
        // missing rather than pretending.
        tracing::error!(error = %cp_runtime::error::chain(&err), "the result of an audited mutation could not be written");
    }
    if let Some(a) = actor {
        res.extensions_mut().insert(Actor(a));
    }
    res
}

fn denial_response(route: &Route, d: Denial, status: StatusCode) -> Response {
    if route.surface == Surface::Console {
        if status == StatusCode::UNAUTHORIZED {
            return Redirect::to("/console/login").into_response();
        }
        return crate::console::error_page(status, &d.error.external);
    }
    let mut res = d.error.into_response();
    if status == StatusCode::UNAUTHORIZED {
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"controlplane\""),
        );
    }
    res
}

async fn check(
    state: &AppState,
    route: &'static Route,
    req: Request,
    ip: IpAddr,
) -> Result<(Request, Option<Principal>), Denial> {
    let least = match route.access {
        Access::Public => return Ok((req, None)),
        Access::Role(r) => r,
    };
    if let Some(secs) = state.failed_auth.blocked(ip) {
        return Err(deny(
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many failed authentications from this address; try again in {secs}s"),
            ),
            "rate-limited after failed authentications",
            None,
        ));
    }
    let (principal, holder, csrf) = match route.surface {
        Surface::Api => match bearer(&req) {
            None => {
                return Err(deny(
                    ApiError::unauthorized(
                        "this needs a bearer token: `Authorization: Bearer <token>` (`controlplane token create`)",
                    ),
                    "no credentials",
                    None,
                ));
            }
            Some(cred) => match identify_with(state, cred).await {
                Ok((p, c)) => (p, Holder::Bearer(c), None),
                Err(e) => {
                    state.failed_auth.failed(ip);
                    return Err(deny(
                        ApiError::unauthorized("invalid credentials"),
                        e.to_string(),
                        None,
                    ));
                }
            },
        },
        Surface::Console => match cookie(req.headers(), crate::console::SESSION_COOKIE)
            .and_then(|sid| state.sessions.get(sid).map(|s| (sid, s)))
        {
            Some((sid, s)) => {
                // Checked at every request: a revoked or expired credential ends
                // every session started with it.
                if let Err(why) = still_valid(state, &s.credential) {
                    state.sessions.end(sid);
                    return Err(deny(
                        ApiError::unauthorized(
                            "your session ended (its token was revoked or expired); log in again",
                        ),
                        cp_runtime::error::chain(&why),
                        Some(s.principal),
                    ));
                }
                (s.principal, Holder::Session(sid.to_owned()), Some(s.csrf))
            }
            None => {
                return Err(deny(
                    ApiError::unauthorized("log in first"),
                    "no console session",
                    None,
                ));
            }
        },
    };
    if principal.role < least {
        return Err(deny(
            ApiError::forbidden(format!(
                "this needs the {least} role; you are {}",
                principal.role
            )),
            format!("role {} below {least}", principal.role),
            Some(principal),
        ));
    }
    if principal.tenant.is_some() && route.tenant == TenantScope::Denied {
        return Err(deny(
            ApiError::forbidden("a tenant-scoped principal may use only its tenant's routes"),
            "tenant-scoped principal on a route across tenants",
            Some(principal),
        ));
    }
    if route.surface == Surface::Api && route.mutates() && has_body(&req) && !is_json(req.headers())
    {
        return Err(deny(
            not_json(),
            "the body is not application/json",
            Some(principal),
        ));
    }
    let mut req = req;
    if let Some(expected) = csrf
        && route.mutates()
    {
        let (parts, body) = req.into_parts();
        let bytes = match axum::body::to_bytes(body, BODY_LIMIT).await {
            Ok(b) => b,
            Err(_) => {
                return Err(deny(
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "too_large",
                        "the form is too large",
                    ),
                    "form too large",
                    Some(principal),
                ));
            }
        };
        let given = form_field(&bytes, "csrf");
        if given
            .as_deref()
            .is_none_or(|g| !crate::console::same(g, &expected))
        {
            return Err(deny(
                ApiError::forbidden(
                    "the form's CSRF token is missing or stale; reload the page and try again",
                ),
                "missing or wrong CSRF token",
                Some(principal),
            ));
        }
        req = Request::from_parts(parts, Body::from(bytes));
    }
    req.extensions_mut().insert(principal.clone());
    req.extensions_mut().insert(holder);
    Ok((req, Some(principal)))
}

/// Whether a request carries a body: a length other than zero, or one not known
/// (chunked).
pub fn has_body(req: &Request) -> bool {
    use axum::body::HttpBody;
    let h = req.headers();
    let declared = h.contains_key(header::TRANSFER_ENCODING)
        || h.get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()) != Some(0));
    declared || req.body().size_hint().exact() != Some(0)
}

/// Whether the body is declared `application/json` (parameters such as `charset`
/// allowed; no other type, `+json` suffixes included, is).
pub fn is_json(h: &http::HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// 415: the API's bodies are JSON.
pub fn not_json() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "the API takes JSON bodies only: send the body with `content-type: application/json`",
    )
}

/// One field of an `application/x-www-form-urlencoded` body.
pub fn form_field(body: &[u8], name: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
    pairs.into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}
