//! The one access table: every route the server answers, with who may call it
//! (public, or the least role), what a tenant-scoped principal may do there, and
//! whether it mutates (and so is audited). The authorization middleware, the OpenAPI
//! document and the RBAC tests all read this table; a route missing from it is
//! refused (fail closed), and a test checks the router and the table agree.

use http::Method;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A role. The order is the privilege order: viewer < editor < admin.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything but the audit log.
    Viewer,
    /// Also creates tenants.
    Editor,
    /// Also deletes tenants and reads the audit log.
    Admin,
}

impl Role {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }

    /// Parses `viewer`, `editor` or `admin`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "editor" => Some(Role::Editor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without credentials (health, metrics, the OpenAPI document, the login
    /// page, static assets).
    Public,
    /// A principal with at least this role.
    Role(Role),
}

/// What a principal scoped to one tenant may do on a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantScope {
    /// Nothing: the route is about more than one tenant (403).
    Denied,
    /// Allowed; the handler shows only the principal's tenant.
    Filtered,
    /// Allowed for the principal's own tenant (the `{tenant}` path parameter); the
    /// handler answers 404 for any other.
    Own,
}

/// Which front end a route belongs to (how an unauthenticated request is answered:
/// 401 JSON for the API, a redirect to the login page for the console).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// JSON API and operational endpoints, documented in `/openapi.json`.
    Api,
    /// Server-rendered HTML (cookie session, CSRF token on every form).
    Console,
}

/// One route.
#[derive(Debug, Clone)]
pub struct Route {
    /// The method.
    pub method: Method,
    /// The path as the router matches it (`/api/v1/environments/{env}`).
    pub path: &'static str,
    /// The action name (OpenAPI operationId, audit `action`).
    pub action: &'static str,
    /// Who may call it.
    pub access: Access,
    /// What a tenant-scoped principal may do.
    pub tenant: TenantScope,
    /// Which front end.
    pub surface: Surface,
}

impl Route {
    /// Whether the route changes anything (every such request is audited, allowed or
    /// denied).
    pub fn mutates(&self) -> bool {
        self.method != Method::GET && self.method != Method::HEAD
    }
}

const fn r(
    method: Method,
    path: &'static str,
    action: &'static str,
    access: Access,
    tenant: TenantScope,
    surface: Surface,
) -> Route {
    Route {
        method,
        path,
        action,
        access,
        tenant,
        surface,
    }
}

use Access::{Public, Role as Least};
use Role::{Admin, Editor, Viewer};
use Surface::{Api, Console};
use TenantScope::{Denied, Filtered, Own};

/// Every route of the server. Job routes are added by `crate::jobs::ROUTES`.
pub const ROUTES: &[Route] = &[
    r(Method::GET, "/healthz", "healthz", Public, Filtered, Api),
    r(Method::GET, "/readyz", "readyz", Public, Filtered, Api),
    r(Method::GET, "/metrics", "metrics", Public, Filtered, Api),
    r(
        Method::GET,
        "/openapi.json",
        "openapi",
        Public,
        Filtered,
        Api,
    ),
    r(
        Method::GET,
        "/api/v1/whoami",
        "whoami",
        Least(Viewer),
        Filtered,
        Api,
    ),
    r(
        Method::GET,
        "/api/v1/environments",
        "environments.list",
        Least(Viewer),
        Denied,
        Api,
    ),
    r(
        Method::GET,
        "/api/v1/environments/{env}",
        "environments.get",
        Least(Viewer),
        Denied,
        Api,
    ),
    r(
        Method::GET,
        "/api/v1/environments/{env}/services",
        "services.list",
        Least(Viewer),
        Denied,
        Api,
    ),
    r(
        Method::GET,
        "/api/v1/environments/{env}/plan",
        "plan.get",
        Least(Viewer),
        Denied,
        Api,
    ),
    r(
        Method::GET,
        "/api/v1/environments/{env}/streams",
        "streams.list",
        Least(Viewer),
        Denied,
        Api,
    ),
    r(
        Method::GET,
        "/api/v1/environments/{env}/alerts",
        "alerts.list",
        Least(Viewer),
        Denied,
        Api,
    ),
    r(
        Method::GET,
        "/api/v1/environments/{env}/history",
        "history.get",
        Least(Viewer),
        Denied,
        Api,
    ),
    r(
        Method::GET,
        "/api/v1/environments/{env}/tenants",
        "tenants.list",
        Least(Viewer),
        Filtered,
        Api,
    ),
    r(
        Method::POST,
        "/api/v1/environments/{env}/tenants",
        "tenant.create",
        Least(Editor),
        Denied,
        Api,
    ),
    r(
        Method::GET,
        "/api/v1/environments/{env}/tenants/{tenant}",
        "tenant.get",
        Least(Viewer),
        Own,
        Api,
    ),
    r(
        Method::DELETE,
        "/api/v1/environments/{env}/tenants/{tenant}",
        "tenant.delete",
        Least(Admin),
        Own,
        Api,
    ),
    r(
        Method::GET,
        "/api/v1/audit",
        "audit.list",
        Least(Admin),
        Denied,
        Api,
    ),
    // The console.
    r(Method::GET, "/", "console.root", Public, Filtered, Console),
    r(
        Method::GET,
        "/static/{file}",
        "console.static",
        Public,
        Filtered,
        Console,
    ),
    r(
        Method::GET,
        "/console/login",
        "console.login_form",
        Public,
        Filtered,
        Console,
    ),
    r(
        Method::POST,
        "/console/login",
        "console.login",
        Public,
        Filtered,
        Console,
    ),
    r(
        Method::POST,
        "/console/logout",
        "console.logout",
        Least(Viewer),
        Filtered,
        Console,
    ),
    r(
        Method::GET,
        "/console",
        "console.overview",
        Least(Viewer),
        Denied,
        Console,
    ),
    r(
        Method::GET,
        "/console/events",
        "console.events",
        Least(Viewer),
        Denied,
        Console,
    ),
    r(
        Method::GET,
        "/console/env/{env}",
        "console.environment",
        Least(Viewer),
        Denied,
        Console,
    ),
    r(
        Method::POST,
        "/console/env/{env}/tenants",
        "console.tenant_create",
        Least(Editor),
        Denied,
        Console,
    ),
    r(
        Method::POST,
        "/console/env/{env}/tenants/{tenant}/delete",
        "console.tenant_delete",
        Least(Admin),
        Own,
        Console,
    ),
    r(
        Method::GET,
        "/console/alerts",
        "console.alerts",
        Least(Viewer),
        Denied,
        Console,
    ),
    r(
        Method::GET,
        "/console/audit",
        "console.audit",
        Least(Admin),
        Denied,
        Console,
    ),
];

/// Every route, the backup ones included.
pub fn all() -> impl Iterator<Item = &'static Route> {
    ROUTES.iter().chain(crate::jobs::ROUTES.iter())
}

/// The route a request matched.
pub fn lookup(method: &Method, path: &str) -> Option<&'static Route> {
    // HEAD is answered like GET by the router.
    let method = if method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    all().find(|r| r.method == method && r.path == path)
}
