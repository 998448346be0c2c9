//! The planner: desired resources + observed resources -> an immutable [`Plan`].
//!
//! Every layer describes what it needs as [`Resource`]s with a canonical JSON spec
//! (never a secret value): the platform drivers (processes, containers, Kubernetes
//! objects) and the seeder (migrations, streams, Vault configuration). Observers report
//! what exists and, when recorded, the spec it was made from. [`plan`] compares the two
//! deterministically and says what `up` would create, start, change, replace or remove,
//! field by field. Applying is someone else's job; this module does no I/O.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::names::ServiceName;

/// Which part of the platform a resource belongs to (groups the plan's output).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    /// Processes, containers, networks, volumes, Kubernetes objects.
    Platform,
    /// Database roles and schema migrations.
    Database,
    /// JetStream streams.
    Streams,
    /// Vault mounts, keys, policies, roles, audit devices.
    Vault,
    /// Redis ACL users.
    Cache,
    /// Each tenant's parts outside its rows (Vault key, policy, KV subtree).
    Tenants,
    /// Backup sets at a destination (retention: `backup prune`; never part of `up`).
    Backups,
}

impl Layer {
    /// Every layer, in the order `up` applies them.
    pub const ALL: [Layer; 6] = [
        Layer::Platform,
        Layer::Database,
        Layer::Streams,
        Layer::Cache,
        Layer::Vault,
        Layer::Tenants,
    ];

    /// Its name as the plan prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Platform => "platform",
            Layer::Database => "database",
            Layer::Streams => "streams",
            Layer::Vault => "vault",
            Layer::Cache => "cache",
            Layer::Tenants => "tenants",
            Layer::Backups => "backups",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identifies a resource: its layer, its kind (`container`, `Deployment`, `stream`)
/// and its name.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub struct ResourceId {
    /// Layer.
    pub layer: Layer,
    /// Kind, as the layer names it.
    pub kind: String,
    /// Name, unique within layer and kind.
    pub name: String,
}

impl ResourceId {
    /// A resource id.
    pub fn new(layer: Layer, kind: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            layer,
            kind: kind.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.name)
    }
}

/// How a resource takes a change of spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "mode", content = "fields")]
pub enum UpdateMode {
    /// Changed in place (a Kubernetes apply, a stream update).
    InPlace,
    /// Removed and created again (a container, a process restart).
    Replace,
    /// In place, except that these fields (JSON pointers) can never change: a change
    /// to one is reported as blocked, not silently ignored.
    InPlaceExcept(Vec<String>),
    /// Never changed: any difference is blocked, for the reason given (what to do).
    Immutable(String),
}

/// Something a layer needs to exist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Resource {
    /// Its id.
    pub id: ResourceId,
    /// The service it belongs to (for `--service` and dependency order).
    pub service: Option<ServiceName>,
    /// The canonical desired spec. Secret values never appear here, only references.
    pub spec: Value,
    /// How it takes a change.
    pub update: UpdateMode,
}

/// What an observer found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Observed {
    /// Its id.
    pub id: ResourceId,
    /// The spec it was created from, when recorded (a label, an annotation, a state
    /// file); `None` when unknown, which the planner treats as unchanged.
    pub spec: Option<Value>,
    /// Its state.
    pub state: ObservedState,
}

/// The state of an observed resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "state", content = "detail")]
pub enum ObservedState {
    /// Running (processes, containers, workloads).
    Running,
    /// Exists but is not running, and why.
    Stopped(String),
    /// Exists (passive things: volumes, networks, streams, policies, applied migrations).
    Present,
}

/// One field that differs between what exists and what is wanted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FieldChange {
    /// JSON pointer of the field (`/image`, `/spec/replicas`).
    pub path: String,
    /// Its current value (absent: not set).
    pub before: Option<Value>,
    /// Its wanted value (absent: to be unset).
    pub after: Option<Value>,
}

/// What `up` would do to one resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Action {
    /// Create it.
    Create,
    /// Start it (it exists, unchanged, but is not running).
    Start {
        /// Why it is not running.
        reason: String,
    },
    /// Change it in place.
    Update {
        /// The fields that change.
        changes: Vec<FieldChange>,
    },
    /// Remove and create it again.
    Replace {
        /// The fields that change.
        changes: Vec<FieldChange>,
    },
    /// Remove it (it is ours, and no longer declared).
    Delete,
    /// A change that cannot be applied, and why; `up` refuses it.
    Blocked {
        /// The fields that change.
        changes: Vec<FieldChange>,
        /// Why it cannot be applied and what to do.
        reason: String,
    },
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Step {
    /// What it acts on.
    pub id: ResourceId,
    /// The service it belongs to.
    pub service: Option<ServiceName>,
    /// What to do.
    pub action: Action,
    /// The desired resource (absent for deletions).
    #[serde(skip)]
    #[schemars(skip)]
    pub desired: Option<Resource>,
}

/// The steps `up` would take, in a stable order (layer, kind, name).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Plan {
    /// The steps.
    pub steps: Vec<Step>,
    /// How many resources are already as wanted.
    pub unchanged: usize,
}

impl Plan {
    /// True when nothing would change.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// True when a step cannot be applied.
    pub fn is_blocked(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s.action, Action::Blocked { .. }))
    }

    /// Counts by action: (create, change, remove, start, blocked).
    pub fn counts(&self) -> (usize, usize, usize, usize, usize) {
        let mut c = (0, 0, 0, 0, 0);
        for s in &self.steps {
            match s.action {
                Action::Create => c.0 += 1,
                Action::Update { .. } | Action::Replace { .. } => c.1 += 1,
                Action::Delete => c.2 += 1,
                Action::Start { .. } => c.3 += 1,
                Action::Blocked { .. } => c.4 += 1,
            }
        }
        c
    }

    /// Only the steps of the given services (and steps of no service, such as the
    /// network every service needs).
    pub fn for_services(&self, services: &[ServiceName]) -> Plan {
        Plan {
            steps: self
                .steps
                .iter()
                .filter(|s| s.service.as_ref().is_none_or(|svc| services.contains(svc)))
                .cloned()
                .collect(),
            unchanged: self.unchanged,
        }
    }

    /// Appends another layer's plan.
    pub fn extend(&mut self, other: Plan) {
        self.steps.extend(other.steps);
        self.unchanged += other.unchanged;
        self.steps.sort_by(|a, b| a.id.cmp(&b.id));
    }
}

impl fmt::Display for Plan {
    /// A terraform-like summary: one line per step, one indented line per field.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.steps.is_empty() {
            return write!(
                f,
                "No changes: {} resources are up to date.",
                self.unchanged
            );
        }
        for s in &self.steps {
            let (sign, note) = match &s.action {
                Action::Create => ("+", String::new()),
                Action::Start { reason } => (">", format!(" (start: {reason})")),
                Action::Update { .. } => ("~", String::new()),
                Action::Replace { .. } => ("-/+", " (replace)".to_owned()),
                Action::Delete => ("-", String::new()),
                Action::Blocked { reason, .. } => ("!", format!(" (blocked: {reason})")),
            };
            writeln!(f, "{sign:>3} {}{note}", s.id)?;
            if let Action::Update { changes }
            | Action::Replace { changes }
            | Action::Blocked { changes, .. } = &s.action
            {
                for c in changes {
                    let show = |v: &Option<Value>| {
                        v.as_ref().map_or("(unset)".to_owned(), |v| v.to_string())
                    };
                    writeln!(
                        f,
                        "      {}: {} -> {}",
                        c.path,
                        show(&c.before),
                        show(&c.after)
                    )?;
                }
            }
        }
        let (create, change, remove, start, blocked) = self.counts();
        write!(
            f,
            "Plan: {create} to create, {change} to change, {remove} to remove, {start} to start"
        )?;
        if blocked > 0 {
            write!(f, ", {blocked} blocked")?;
        }
        write!(f, "; {} unchanged.", self.unchanged)
    }
}

/// Compares desired with observed. Observed resources that are not desired are
/// removed only when `prune` is set (callers pass only resources they own).
pub fn plan(desired: &[Resource], observed: &[Observed], prune: bool) -> Plan {
    let seen: BTreeMap<&ResourceId, &Observed> = observed.iter().map(|o| (&o.id, o)).collect();
    let mut steps = Vec::new();
    let mut unchanged = 0;
    for r in desired {
        let step = |action| Step {
            id: r.id.clone(),
            service: r.service.clone(),
            action,
            desired: Some(r.clone()),
        };
        let Some(o) = seen.get(&r.id) else {
            steps.push(step(Action::Create));
            continue;
        };
        let changes = o
            .spec
            .as_ref()
            .map(|before| diff(before, &r.spec))
            .unwrap_or_default();
        if !changes.is_empty() {
            let action = match &r.update {
                UpdateMode::InPlace => Action::Update { changes },
                UpdateMode::Replace => Action::Replace { changes },
                UpdateMode::Immutable(reason) => Action::Blocked {
                    changes,
                    reason: reason.clone(),
                },
                UpdateMode::InPlaceExcept(fixed) => {
                    let frozen: Vec<&str> = changes
                        .iter()
                        .filter(|c| {
                            fixed
                                .iter()
                                .any(|p| c.path == *p || c.path.starts_with(&format!("{p}/")))
                        })
                        .map(|c| c.path.as_str())
                        .collect();
                    if frozen.is_empty() {
                        Action::Update { changes }
                    } else {
                        let reason = format!(
                            "{} cannot change once created; remove {} and run up again, or keep the old value",
                            frozen.join(", "),
                            r.id
                        );
                        Action::Blocked { changes, reason }
                    }
                }
            };
            steps.push(step(action));
            continue;
        }
        match &o.state {
            ObservedState::Stopped(reason) => steps.push(step(Action::Start {
                reason: reason.clone(),
            })),
            ObservedState::Running | ObservedState::Present => unchanged += 1,
        }
    }
    if prune {
        let wanted: Vec<&ResourceId> = desired.iter().map(|r| &r.id).collect();
        for o in observed {
            if !wanted.contains(&&o.id) {
                steps.push(Step {
                    id: o.id.clone(),
                    service: None,
                    action: Action::Delete,
                    desired: None,
                });
            }
        }
    }
    steps.sort_by(|a, b| a.id.cmp(&b.id));
    Plan { steps, unchanged }
}

/// Leaf differences between two JSON values, as JSON pointers. Arrays of equal
/// length are compared element-wise; otherwise the whole array changes.
pub fn diff(before: &Value, after: &Value) -> Vec<FieldChange> {
    let mut out = Vec::new();
    diff_into("", before, after, &mut out);
    out
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn diff_into(path: &str, before: &Value, after: &Value, out: &mut Vec<FieldChange>) {
    match (before, after) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let p = format!("{path}/{}", escape(k));
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => diff_into(&p, x, y, out),
                    (x, y) => out.push(FieldChange {
                        path: p,
                        before: x.cloned(),
                        after: y.cloned(),
                    }),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff_into(&format!("{path}/{i}"), x, y, out);
            }
        }
        (x, y) if x == y => {}
        (x, y) => out.push(FieldChange {
            path: if path.is_empty() {
                "/".into()
            } else {
                path.into()
            },
            before: Some(x.clone()),
            after: Some(y.clone()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn res(name: &str, spec: Value, update: UpdateMode) -> Resource {
        Resource {
            id: ResourceId::new(Layer::Platform, "container", name),
            service: Some(ServiceName::new(name).unwrap()),
            spec,
            update,
        }
    }

    fn obs(name: &str, spec: Value, state: ObservedState) -> Observed {
        Observed {
            id: ResourceId::new(Layer::Platform, "container", name),
            spec: Some(spec),
            state,
        }
    }

    #[test]
    fn plans_every_kind_of_step() {
        let desired = vec![
            res("new", json!({"image": "a"}), UpdateMode::Replace),
            res("same", json!({"image": "a"}), UpdateMode::Replace),
            res("stopped", json!({"image": "a"}), UpdateMode::Replace),
            res(
                "changed",
                json!({"image": "b", "ports": [1, 2]}),
                UpdateMode::Replace,
            ),
            res(
                "stream",
                json!({"storage": "memory", "max_age": 2}),
                UpdateMode::InPlaceExcept(vec!["/storage".into()]),
            ),
        ];
        let observed = vec![
            obs("same", json!({"image": "a"}), ObservedState::Running),
            obs(
                "stopped",
                json!({"image": "a"}),
                ObservedState::Stopped("exited 1".into()),
            ),
            obs(
                "changed",
                json!({"image": "a", "ports": [1, 3]}),
                ObservedState::Running,
            ),
            obs(
                "stream",
                json!({"storage": "file", "max_age": 1}),
                ObservedState::Present,
            ),
            obs("gone", json!({}), ObservedState::Running),
        ];
        let p = plan(&desired, &observed, true);
        assert_eq!(
            p.to_string(),
            "-/+ container changed (replace)\n      /image: \"a\" -> \"b\"\n      /ports/1: 3 -> 2\n  - container gone\n  + container new\n  > container stopped (start: exited 1)\n  ! container stream (blocked: /storage cannot change once created; remove container stream and run up again, or keep the old value)\n      /max_age: 1 -> 2\n      /storage: \"file\" -> \"memory\"\nPlan: 1 to create, 1 to change, 1 to remove, 1 to start, 1 blocked; 1 unchanged."
        );
        assert!(p.is_blocked());
        assert!(
            !plan(&desired, &observed, false)
                .steps
                .iter()
                .any(|s| s.action == Action::Delete)
        );
    }

    #[test]
    fn nothing_to_do_is_empty() {
        let desired = vec![res("a", json!({"x": 1}), UpdateMode::InPlace)];
        let observed = vec![obs("a", json!({"x": 1}), ObservedState::Running)];
        let p = plan(&desired, &observed, true);
        assert!(p.is_empty());
        assert_eq!(p.to_string(), "No changes: 1 resources are up to date.");
    }
}
