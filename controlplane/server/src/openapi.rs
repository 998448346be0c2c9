//! `/openapi.json`: the OpenAPI 3.1 document, generated from the code. Paths, methods,
//! operation ids and the role each needs come from the access table
//! (`crate::routes`), so the document cannot disagree with what the middleware
//! enforces; every schema is the JSON Schema (draft 2020-12, which OpenAPI 3.1 uses)
//! schemars derives from the very types the handlers return or read.
//!
//! Why not utoipa's derive: the views are `cp_app`'s (and `cp_core`'s plan) and
//! already derive `JsonSchema`, the one schema source the CLI's `schema --view` uses
//! too. A second derivation (`ToSchema`) would have to be added to the pure core and
//! kept equal to the first by hand; utoipa's document types would then only wrap JSON
//! we already have. So the document is assembled here from the route table and the
//! schemars schemas, and a test checks that every API route is in it.

use std::sync::OnceLock;

use cp_app::views::{NatsView, PlanView, StatusView, TenantChangeView, TenantView, TenantsView};
use schemars::generate::{Contract, SchemaSettings};
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::api::{
    EnvironmentView, EnvironmentsView, HealthView, ReadyView, TenantCreateRequest,
    TenantDeleteRequest,
};
use crate::audit::{AuditPage, Outcome};
use crate::auth::Principal;
use crate::error::ErrorBody;
use crate::jobs::{RestoreRequest, RotateRequest, TriggerRequest, VerifyRequest};
use crate::routes::{self, Access, Surface, TenantScope};
use cp_app::views::jobs::ScheduleView;
use cp_app::views::{BackupListView, RestoreView, VerifyView};
use cp_app::views::{DriftView, JobStartedView, JobView, JobsView, LocksView, SchedulesView};

/// How an operation answers when it succeeds.
enum Ok {
    Json(&'static [u16], Value),
    Text(&'static str),
}

/// What the document says about one operation beyond the access table.
struct Op {
    summary: &'static str,
    description: &'static str,
    query: Vec<Value>,
    body: Option<Value>,
    ok: Ok,
    errors: &'static [u16],
}

fn generators() -> (SchemaGenerator, SchemaGenerator) {
    let out = SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.contract = Contract::Serialize;
            s.meta_schema = None;
        })
        .into_generator();
    let inp = SchemaSettings::draft2020_12()
        .with(|s| {
            s.inline_subschemas = true;
            s.contract = Contract::Deserialize;
            s.meta_schema = None;
        })
        .into_generator();
    (out, inp)
}

fn param(name: &str, schema: Value, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema})
}

fn inline<T: JsonSchema>(g: &mut SchemaGenerator) -> Value {
    let mut v = g.root_schema_for::<T>().to_value();
    if let Some(o) = v.as_object_mut() {
        o.remove("$schema");
        o.remove("title");
    }
    v
}

fn ops(out: &mut SchemaGenerator, inp: &mut SchemaGenerator, action: &str) -> Op {
    let env_errors: &'static [u16] = &[401, 403, 404, 429, 502];
    match action {
        "healthz" => Op {
            summary: "The process is alive",
            description: "Always 200 while the process answers.",
            query: vec![],
            body: None,
            ok: Ok::Json(&[200], out.subschema_for::<HealthView>().to_value()),
            errors: &[],
        },
        "readyz" => Op {
            summary: "The server's own dependencies are ready",
            description: "503 when the token store cannot be read. A managed service being down does not make the server unready; an unwritable audit log is reported (mutations are then refused).",
            query: vec![],
            body: None,
            ok: Ok::Json(&[200, 503], out.subschema_for::<ReadyView>().to_value()),
            errors: &[],
        },
        "metrics" => Op {
            summary: "Prometheus metrics (OpenMetrics text)",
            description: "Request counts and latency by route and status, and `controlplane_service_up{env,service}`.",
            query: vec![],
            body: None,
            ok: Ok::Text("application/openmetrics-text"),
            errors: &[],
        },
        "openapi" => Op {
            summary: "This document",
            description: "OpenAPI 3.1, generated from the code.",
            query: vec![],
            body: None,
            ok: Ok::Json(&[200], json!({"type": "object"})),
            errors: &[],
        },
        "whoami" => Op {
            summary: "Who the credentials belong to",
            description: "The actor, role and tenant scope of the bearer.",
            query: vec![],
            body: None,
            ok: Ok::Json(&[200], out.subschema_for::<Principal>().to_value()),
            errors: &[401, 429],
        },
        "environments.list" => Op {
            summary: "Every served environment, from the status cache",
            description: "Health counts, the last probe's time or error, and the drift from the plan.",
            query: vec![],
            body: None,
            ok: Ok::Json(&[200], out.subschema_for::<EnvironmentsView>().to_value()),
            errors: &[401, 403, 429],
        },
        "environments.get" => Op {
            summary: "One environment, from the status cache",
            description: "",
            query: vec![],
            body: None,
            ok: Ok::Json(&[200], out.subschema_for::<EnvironmentView>().to_value()),
            errors: &[401, 403, 404, 429],
        },
        "services.list" => Op {
            summary: "Every service's state, version, uptime, endpoint and health",
            description: "The view `controlplane status -o json` prints, from the cache the background prober refreshes (`Age` says how old); `?refresh=true` probes now. 502 when the environment cannot be probed at all.",
            query: vec![param(
                "refresh",
                inp.subschema_for::<bool>().to_value(),
                "Probe now instead of answering from the cache.",
            )],
            body: None,
            ok: Ok::Json(&[200], out.subschema_for::<StatusView>().to_value()),
            errors: &[400, 401, 403, 404, 429, 502],
        },
        "plan.get" => Op {
            summary: "What `up` would change across every layer (the drift)",
            description: "The document `controlplane plan -o json` prints. Read-only.",
            query: vec![],
            body: None,
            ok: Ok::Json(&[200], out.subschema_for::<PlanView>().to_value()),
            errors: env_errors,
        },
        "streams.list" => Op {
            summary: "The NATS server and every declared stream",
            description: "The view `controlplane nats -o json` prints.",
            query: vec![],
            body: None,
            ok: Ok::Json(&[200], out.subschema_for::<NatsView>().to_value()),
            errors: &[401, 403, 404, 422, 429, 502],
        },
        "alerts.list" => Op {
            summary: "The rendered alert rules with this environment's thresholds, and what fires",
            description: "Firing alerts from the Prometheus `serve --prometheus ENV=URL` names, else the one the environment runs (none when it runs none).",
            query: vec![],
            body: None,
            ok: Ok::Json(
                &[200],
                out.subschema_for::<cp_app::views::EnvironmentAlertsView>()
                    .to_value(),
            ),
            errors: &[401, 403, 404, 429],
        },
        "history.get" => Op {
            summary: "The last day: health and drift as this server sampled them, and the alerts that fired",
            description: "Samples are kept in memory (at each change, and every 5 minutes while nothing changes; a restarted server starts anew). Alerts from the Prometheus `serve --prometheus ENV=URL` names, else the one the environment runs (its `ALERTS` series); without one, the periods this server's own samples show a service down or drift (`ServiceDown`, `EnvironmentDrifted`). What the console's charts draw.",
            query: vec![],
            body: None,
            ok: Ok::Json(
                &[200],
                out.subschema_for::<cp_app::views::history::HistoryView>()
                    .to_value(),
            ),
            errors: &[401, 403, 404, 429],
        },
        "tenants.list" => Op {
            summary: "Tenants and the state of their parts",
            description: "A tenant-scoped principal sees only its tenant.",
            query: vec![],
            body: None,
            ok: Ok::Json(&[200], out.subschema_for::<TenantsView>().to_value()),
            errors: env_errors,
        },
        "tenant.create" => Op {
            summary: "Create a tenant (or finish creating it)",
            description: "201 when created, 200 when it existed and nothing changed. Needs editor.",
            query: vec![],
            body: Some(inline::<TenantCreateRequest>(inp)),
            ok: Ok::Json(
                &[200, 201],
                out.subschema_for::<TenantChangeView>().to_value(),
            ),
            errors: &[400, 401, 403, 404, 409, 413, 415, 422, 429, 502, 503],
        },
        "tenant.get" => Op {
            summary: "One tenant by id or slug",
            description: "404 for a tenant a tenant-scoped principal may not see.",
            query: vec![],
            body: None,
            ok: Ok::Json(&[200], out.subschema_for::<TenantView>().to_value()),
            errors: env_errors,
        },
        "tenant.delete" => Op {
            summary: "Delete a tenant: its transit key is destroyed, then its rows",
            description: "Needs admin and `confirm` repeating the tenant of the path.",
            query: vec![],
            body: Some(inline::<TenantDeleteRequest>(inp)),
            ok: Ok::Json(&[200], out.subschema_for::<TenantChangeView>().to_value()),
            errors: &[400, 401, 403, 404, 409, 413, 415, 422, 429, 502, 503],
        },
        "audit.list" => Op {
            summary: "The audit log, newest first",
            description: "Every mutation, denied or allowed and its result. Needs admin.",
            query: vec![
                param(
                    "actor",
                    inp.subschema_for::<String>().to_value(),
                    "Exact actor (`token:ci`).",
                ),
                param(
                    "action",
                    inp.subschema_for::<String>().to_value(),
                    "Exact action (`tenant.create`).",
                ),
                param("outcome", inline::<Outcome>(inp), "The outcome."),
                param(
                    "since",
                    json!({"type": "string", "format": "date-time"}),
                    "At or after (RFC 3339).",
                ),
                param(
                    "until",
                    json!({"type": "string", "format": "date-time"}),
                    "Before (RFC 3339).",
                ),
                param(
                    "limit",
                    json!({"type": "integer", "minimum": 1, "maximum": crate::audit::MAX_PAGE}),
                    "Page size (default 50).",
                ),
                param(
                    "cursor",
                    json!({"type": "integer", "minimum": 0}),
                    "A previous page's `next_cursor`.",
                ),
            ],
            body: None,
            ok: Ok::Json(&[200], out.subschema_for::<AuditPage>().to_value()),
            errors: &[400, 401, 403, 429],
        },
        "backups.list" => Op {
            summary: "The backup sets at the environment's first destination, newest first",
            description: "The view `controlplane backup list -o json` prints: each set's state (complete, partial, verified, drilled, broken, incomplete), age, size and services.",
            query: vec![],
            body: None,
            ok: Ok::Json(&[200], out.subschema_for::<BackupListView>().to_value()),
            errors: &[401, 403, 404, 422, 429, 502],
        },
        "backup.trigger" => Op {
            summary: "Start a backup: answers 202 with a job id",
            description: "The body is optional (every service of `backup.services`, the first destination). Follow `GET /api/v1/jobs/{job}/events` (SSE) or poll `GET /api/v1/jobs/{job}`. 409 names who holds the backup lock (a run of this server, a schedule, the CLI). Needs editor.",
            query: vec![],
            body: Some(inline::<TriggerRequest>(inp)),
            ok: Ok::Json(&[202], out.subschema_for::<JobStartedView>().to_value()),
            errors: &[400, 401, 403, 404, 409, 413, 415, 422, 429, 503],
        },
        "backup.schedule" => Op {
            summary: "The backup schedule: next run, last run, runs missed while no server ran it",
            description: "",
            query: vec![],
            body: None,
            ok: Ok::Json(&[200], out.subschema_for::<ScheduleView>().to_value()),
            errors: &[401, 403, 404, 422, 429],
        },
        "backup.verify" => Op {
            summary: "Read every artifact of a set back and check it; with `restore_drill`, also restore it into scratch targets",
            description: "The view `controlplane backup verify -o json` prints; the result is recorded at the destination. Needs editor.",
            query: vec![],
            body: Some(inline::<VerifyRequest>(inp)),
            ok: Ok::Json(&[200], out.subschema_for::<VerifyView>().to_value()),
            errors: &[400, 401, 403, 404, 409, 413, 415, 422, 429, 502, 503],
        },
        "backup.restore" => Op {
            summary: "Restore a set into this environment, replacing what its services hold",
            description: "Needs admin and `confirm` repeating the backup id of the path (400 otherwise). Every artifact is checked before anything is touched.",
            query: vec![],
            body: Some(inline::<RestoreRequest>(inp)),
            ok: Ok::Json(&[200], out.subschema_for::<RestoreView>().to_value()),
            errors: &[400, 401, 403, 404, 409, 413, 415, 422, 429, 502, 503],
        },
        "drift.get" => Op {
            summary: "What the last drift check found: per layer and resource, since when",
            description: "The view `controlplane drift -o json` prints, from the last check of the drift watch (`drift.schedule`). 404 until a check has succeeded.",
            query: vec![],
            body: None,
            ok: Ok::Json(&[200], out.subschema_for::<DriftView>().to_value()),
            errors: &[401, 403, 404, 429],
        },
        "drift.check" => Op {
            summary: "Check the environment for drift now (a drift job, waited for)",
            description: "Plans the whole environment as `controlplane plan` does and answers with the drift view; 409 while another check of it runs. Needs editor.",
            query: vec![],
            body: None,
            ok: Ok::Json(&[200], out.subschema_for::<DriftView>().to_value()),
            errors: &[401, 403, 404, 409, 429, 502],
        },
        "rotate" => Op {
            summary: "Rotate transit keys and the platform's passwords now (a rotation job, waited for)",
            description: "The view `controlplane rotate -o json` prints. Passwords need `confirm: true`; an env:// password in scope is refused (422) before anything changes, naming the variable. 409 while the environment lock is held. Needs admin.",
            query: vec![],
            body: Some(inline::<RotateRequest>(inp)),
            ok: Ok::Json(
                &[200],
                out.subschema_for::<cp_app::views::rotate::RotationView>()
                    .to_value(),
            ),
            errors: &[400, 401, 403, 404, 409, 413, 415, 422, 429, 502, 503],
        },
        "schedules.list" => Op {
            summary: "The environment's schedules (backups, drift watch): next and last runs, missed runs",
            description: "",
            query: vec![],
            body: None,
            ok: Ok::Json(&[200], out.subschema_for::<SchedulesView>().to_value()),
            errors: &[401, 403, 404, 429, 500],
        },
        "locks.list" => Op {
            summary: "The environment's locks and who holds each, read without taking them",
            description: "",
            query: vec![],
            body: None,
            ok: Ok::Json(&[200], out.subschema_for::<LocksView>().to_value()),
            errors: &[401, 403, 404, 429],
        },
        "jobs.list" => Op {
            summary: "Every job this server knows, newest first (running and the last 100)",
            description: "",
            query: vec![],
            body: None,
            ok: Ok::Json(&[200], out.subschema_for::<JobsView>().to_value()),
            errors: &[401, 403, 429],
        },
        "job.get" => Op {
            summary: "A job (backup, verify, restore, drift check): its state, progress events and result",
            description: "Jobs are kept in memory (the last 100) until the server restarts.",
            query: vec![],
            body: None,
            ok: Ok::Json(&[200], out.subschema_for::<JobView>().to_value()),
            errors: &[401, 403, 404, 429],
        },
        "job.events" => Op {
            summary: "A job's progress as server-sent events",
            description: "`progress` events (the `progress-event` view, as `--output json` prints them), then one `result` event with the whole job, then the stream ends.",
            query: vec![],
            body: None,
            ok: Ok::Text("text/event-stream"),
            errors: &[401, 403, 404, 429],
        },
        other => panic!("the OpenAPI document does not describe `{other}`; add it to openapi::ops"),
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        202 => "Accepted: a job started",
        400 => "Malformed request",
        401 => "No or invalid credentials",
        403 => "Not allowed for this role or tenant scope",
        404 => "No such environment or tenant",
        409 => "Another run holds the environment's (or its backups') lock",
        413 => "Body too large",
        415 => "Body is not JSON",
        422 => "Invalid input or missing confirmation",
        429 => "Too many failed authentications from this address",
        502 => "A managed service failed or did not answer",
        503 => "Not ready, or the audit log cannot be written",
        _ => "Error",
    }
}

/// Operations whose body may be left out (then every default applies).
const OPTIONAL_BODY: &[&str] = &["backup.trigger", "backup.verify"];

/// Builds the document.
pub fn document() -> Value {
    let (mut out, mut inp) = generators();
    let err = out.subschema_for::<ErrorBody>().to_value();
    let mut paths = Map::new();
    for r in routes::all().filter(|r| r.surface == Surface::Api) {
        let op = ops(&mut out, &mut inp, r.action);
        let mut params: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| {
                json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "minLength": 1}})
            })
            .collect();
        params.extend(op.query);
        let mut responses = Map::new();
        match &op.ok {
            Ok::Json(codes, schema) => {
                for c in *codes {
                    let s = if *c >= 300 {
                        err.clone()
                    } else {
                        schema.clone()
                    };
                    let s = if r.action == "readyz" {
                        schema.clone()
                    } else {
                        s
                    };
                    responses.insert(
                        c.to_string(),
                        json!({"description": reason(*c), "content": {"application/json": {"schema": s}}}),
                    );
                }
            }
            Ok::Text(ct) => {
                responses.insert(
                    "200".into(),
                    json!({"description": "OK", "content": {*ct: {"schema": {"type": "string"}}}}),
                );
            }
        }
        for c in op.errors {
            responses.insert(
                c.to_string(),
                json!({"description": reason(*c), "content": {"application/json": {"schema": err}}}),
            );
        }
        let mut o = json!({
            "operationId": r.action,
            "summary": op.summary,
            "parameters": params,
            "responses": responses,
        });
        if !op.description.is_empty() {
            o["description"] = json!(op.description);
        }
        match r.access {
            Access::Public => o["security"] = json!([]),
            Access::Role(role) => {
                o["security"] = json!([{"bearer": []}]);
                o["x-required-role"] = json!(role.as_str());
                o["x-tenant-scope"] = json!(match r.tenant {
                    TenantScope::Denied => "denied",
                    TenantScope::Filtered => "filtered",
                    TenantScope::Own => "own",
                });
            }
        }
        if let Some(b) = op.body {
            o["requestBody"] = json!({"required": !OPTIONAL_BODY.contains(&r.action), "content": {"application/json": {"schema": b}}});
        }
        let item = paths.entry(r.path.to_owned()).or_insert_with(|| json!({}));
        item[r.method.as_str().to_lowercase()] = o;
    }
    let schemas = out.take_definitions(true);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "controlplane",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The REST API of `controlplane serve`: environments, services and their health, the plan, streams, alerts, tenants and the audit log. Roles: viewer < editor < admin (`x-required-role` on each operation)."
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API token (`controlplane token create`) or, when configured, an OIDC JWT from the issuer."
                }
            }
        }
    })
}

/// The document as served (built once).
pub fn document_json() -> String {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| serde_json::to_string(&document()).expect("the document serializes"))
        .clone()
}
