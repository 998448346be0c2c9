//! The whole-environment plan: one [`Plan`] per layer (platform, database, streams,
//! cache, Vault, tenants), each either observed now or deferred until its service
//! answers, with one summary line. What was observed is kept in a [`SavedPlan`]
//! (`plan --out`), so `up --plan` applies exactly the steps that were shown, or refuses
//! and names what moved since (terraform's saved-plan contract).
//!
//! Pure: the application layer observes and hands the results in.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::plan::{Action, Layer, Observed, ObservedState, Plan, Resource, ResourceId, Step};

/// The version of the plan document (`plan --output json` and saved plans). Fields are
/// only ever added within a version.
pub const PLAN_FORMAT: u32 = 1;

/// Whether a layer could be looked at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LayerState {
    /// Observed now: its steps are exact.
    Observed,
    /// Not observable now (its service is not running, or it has never been brought
    /// up); `then` says what `up` will do about it.
    Deferred {
        /// Why it could not be observed.
        reason: String,
        /// What `up` will do.
        then: String,
    },
    /// The environment declares nothing in this layer (its service is disabled).
    Absent,
}

/// One layer's part of the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LayerPlan {
    /// The layer.
    pub layer: Layer,
    /// Whether it was observed.
    pub observation: LayerState,
    /// Its steps and unchanged count (empty when deferred).
    #[serde(flatten)]
    pub plan: Plan,
    /// What the steps do not show (e.g. grants checked once pending migrations ran).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl LayerPlan {
    /// An observed layer.
    pub fn observed(layer: Layer, plan: Plan) -> Self {
        Self {
            layer,
            observation: LayerState::Observed,
            plan,
            notes: Vec::new(),
        }
    }

    /// Adds a note.
    #[must_use]
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// A layer that could not be observed.
    pub fn deferred(layer: Layer, reason: impl Into<String>, then: impl Into<String>) -> Self {
        Self {
            layer,
            observation: LayerState::Deferred {
                reason: reason.into(),
                then: then.into(),
            },
            plan: Plan::default(),
            notes: Vec::new(),
        }
    }

    /// A layer the environment does not use.
    pub fn absent(layer: Layer) -> Self {
        Self {
            layer,
            observation: LayerState::Absent,
            plan: Plan::default(),
            notes: Vec::new(),
        }
    }

    /// True when it was deferred.
    pub fn is_deferred(&self) -> bool {
        matches!(self.observation, LayerState::Deferred { .. })
    }
}

/// Counts over every layer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    /// Resources to create.
    pub create: usize,
    /// Resources to change (in place or by replacing them).
    pub change: usize,
    /// Resources to remove.
    pub remove: usize,
    /// Resources to start.
    pub start: usize,
    /// Changes that cannot be applied (`up` refuses the plan).
    pub blocked: usize,
    /// Resources already as wanted.
    pub unchanged: usize,
    /// Layers not observed now, planned by `up` once their service answers.
    pub deferred: Vec<Layer>,
}

/// A key or password older than its rotation period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RotationDue {
    /// `key` or `password`.
    pub kind: String,
    /// The transit key, or the password's setting.
    pub name: String,
    /// Its age in seconds.
    pub age_secs: u64,
    /// Its rotation period in seconds.
    pub every_secs: u64,
}

/// What `up` would do to an environment, across every layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EnvPlan {
    /// [`PLAN_FORMAT`].
    pub format: u32,
    /// The environment.
    pub environment: String,
    /// The platform driver (`process`, `docker`, `kubernetes`).
    pub driver: String,
    /// Why that driver (`auto: using local processes because ...`).
    pub driver_reason: String,
    /// One entry per layer, in the order `up` applies them.
    pub layers: Vec<LayerPlan>,
    /// Counts over every layer.
    pub summary: Summary,
    /// Keys and passwords older than their rotation period: `controlplane rotate`
    /// (or the rotation schedule) changes them, `up` does not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rotation_due: Vec<RotationDue>,
    /// True when any layer has a step or something is due for rotation (exit code 2
    /// of `plan`).
    pub changes_pending: bool,
    /// SHA-256 over what was observed and what is wanted; a saved plan is applied only
    /// while this still matches.
    pub fingerprint: String,
}

impl EnvPlan {
    /// Assembles the document from the layers; `observed` and `desired` give the
    /// fingerprint.
    pub fn new(
        environment: &str,
        driver: &str,
        driver_reason: &str,
        layers: Vec<LayerPlan>,
        basis: &Basis,
    ) -> Self {
        let mut summary = Summary::default();
        for l in &layers {
            let (c, ch, r, st, b) = l.plan.counts();
            summary.create += c;
            summary.change += ch;
            summary.remove += r;
            summary.start += st;
            summary.blocked += b;
            summary.unchanged += l.plan.unchanged;
            if l.is_deferred() {
                summary.deferred.push(l.layer);
            }
        }
        let changes_pending = layers.iter().any(|l| !l.plan.is_empty());
        Self {
            format: PLAN_FORMAT,
            environment: environment.to_owned(),
            driver: driver.to_owned(),
            driver_reason: driver_reason.to_owned(),
            layers,
            summary,
            rotation_due: Vec::new(),
            changes_pending,
            fingerprint: basis.fingerprint(),
        }
    }

    /// Adds what is due for rotation (a pending change: `plan` exits 2).
    pub fn with_rotation_due(mut self, due: Vec<RotationDue>) -> Self {
        self.changes_pending |= !due.is_empty();
        self.rotation_due = due;
        self
    }

    /// True when a step cannot be applied.
    pub fn is_blocked(&self) -> bool {
        self.summary.blocked > 0
    }

    /// The layer's plan.
    pub fn layer(&self, layer: Layer) -> Option<&LayerPlan> {
        self.layers.iter().find(|l| l.layer == layer)
    }
}

fn show(v: &Option<Value>) -> String {
    v.as_ref().map_or("(unset)".to_owned(), Value::to_string)
}

fn write_step(f: &mut fmt::Formatter<'_>, s: &Step) -> fmt::Result {
    let (sign, note) = match &s.action {
        Action::Create => ("+", String::new()),
        Action::Start { reason } => (">", format!(" (start: {reason})")),
        Action::Update { .. } => ("~", String::new()),
        Action::Replace { .. } => ("-/+", " (replace)".to_owned()),
        Action::Delete => ("-", String::new()),
        Action::Blocked { reason, .. } => ("!", format!(" (blocked: {reason})")),
    };
    writeln!(f, "  {sign:>3} {}{note}", s.id)?;
    if let Action::Update { changes }
    | Action::Replace { changes }
    | Action::Blocked { changes, .. } = &s.action
    {
        for c in changes {
            writeln!(
                f,
                "        {}: {} -> {}",
                c.path,
                show(&c.before),
                show(&c.after)
            )?;
        }
    }
    Ok(())
}

impl fmt::Display for EnvPlan {
    /// Like terraform's plan: a heading per layer, one line per step, one indented
    /// line per changed field, one summary line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} ({}): {}",
            self.environment, self.driver, self.driver_reason
        )?;
        for l in &self.layers {
            match &l.observation {
                LayerState::Absent => writeln!(f, "{}: not used by this environment", l.layer)?,
                LayerState::Deferred { reason, then } => {
                    writeln!(f, "{}: not observed ({reason}); {then}", l.layer)?;
                }
                LayerState::Observed if l.plan.is_empty() => {
                    writeln!(
                        f,
                        "{}: up to date ({} resources)",
                        l.layer, l.plan.unchanged
                    )?;
                }
                LayerState::Observed => {
                    writeln!(f, "{}:", l.layer)?;
                    for s in &l.plan.steps {
                        write_step(f, s)?;
                    }
                }
            }
            for n in &l.notes {
                writeln!(f, "  note: {n}")?;
            }
        }
        if !self.rotation_due.is_empty() {
            writeln!(
                f,
                "rotation (`controlplane rotate` changes these, `up` does not):"
            )?;
            for d in &self.rotation_due {
                writeln!(
                    f,
                    "    ~ {} {}: {} days old, rotated every {} days",
                    d.kind,
                    d.name,
                    d.age_secs / 86_400,
                    d.every_secs / 86_400
                )?;
            }
        }
        let s = &self.summary;
        let deferred = if s.deferred.is_empty() {
            String::new()
        } else {
            let names: Vec<&str> = s.deferred.iter().map(|l| l.as_str()).collect();
            format!(
                "; not observed yet: {} (`up` plans them once their services answer)",
                names.join(", ")
            )
        };
        if !self.changes_pending {
            return write!(
                f,
                "No changes: {} resources are up to date{deferred}.",
                s.unchanged
            );
        }
        write!(
            f,
            "Plan: {} to create, {} to change, {} to remove, {} to start",
            s.create, s.change, s.remove, s.start
        )?;
        if !self.rotation_due.is_empty() {
            write!(f, ", {} due for rotation", self.rotation_due.len())?;
        }
        if s.blocked > 0 {
            write!(f, ", {} blocked (`up` refuses this plan)", s.blocked)?;
        }
        write!(f, "; {} unchanged{deferred}.", s.unchanged)
    }
}

/// What one layer looked like when planned: what it wants and what was observed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LayerBasis {
    /// What the layer wants.
    pub desired: Vec<Resource>,
    /// What was observed (`None`: the layer was not observable).
    pub observed: Option<Vec<Observed>>,
}

/// Everything a plan was computed from, per layer: the input of the fingerprint and
/// of [`SavedPlan::moved`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Basis(pub BTreeMap<Layer, LayerBasis>);

impl Basis {
    /// Records a layer.
    pub fn insert(
        &mut self,
        layer: Layer,
        desired: Vec<Resource>,
        observed: Option<Vec<Observed>>,
    ) {
        self.0.insert(layer, LayerBasis { desired, observed });
    }

    /// `sha256:<hex>` over the canonical JSON of every layer (sorted by resource id).
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for (layer, b) in &self.0 {
            let mut desired = b.desired.clone();
            desired.sort_by(|a, b| a.id.cmp(&b.id));
            let mut observed = b.observed.clone();
            if let Some(o) = &mut observed {
                o.sort_by(|a, b| a.id.cmp(&b.id));
            }
            let doc = serde_json::json!({"layer": layer, "desired": desired, "observed": observed});
            h.update(serde_json::to_vec(&doc).expect("serializes"));
            h.update(b"\n");
        }
        format!("sha256:{}", hex(&h.finalize()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A plan saved by `plan --out FILE`: the document and what it was computed from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SavedPlan {
    /// The controlplane version that made it.
    pub controlplane_version: String,
    /// The plan as shown.
    pub plan: EnvPlan,
    /// What it was computed from.
    pub basis: Basis,
}

impl SavedPlan {
    /// The steps of `layer`, with their desired resources attached again (the plan
    /// document leaves them out).
    pub fn steps(&self, layer: Layer) -> Plan {
        let Some(l) = self.plan.layer(layer) else {
            return Plan::default();
        };
        let desired: BTreeMap<&ResourceId, &Resource> = self
            .basis
            .0
            .get(&layer)
            .map(|b| b.desired.iter().map(|r| (&r.id, r)).collect())
            .unwrap_or_default();
        let mut plan = l.plan.clone();
        for s in &mut plan.steps {
            s.desired = desired.get(&s.id).map(|r| (*r).clone());
        }
        plan
    }

    /// What differs between the world this plan was made in and `now`: one line per
    /// change, naming the layer, the resource and the field. Empty when the plan still
    /// holds.
    pub fn moved(&self, now: &Basis) -> Vec<String> {
        let mut out = Vec::new();
        let empty = LayerBasis {
            desired: Vec::new(),
            observed: None,
        };
        let layers: std::collections::BTreeSet<&Layer> =
            self.basis.0.keys().chain(now.0.keys()).collect();
        for layer in layers {
            let then = self.basis.0.get(layer).unwrap_or(&empty);
            let cur = now.0.get(layer).unwrap_or(&empty);
            let d_then: BTreeMap<&ResourceId, &Resource> =
                then.desired.iter().map(|r| (&r.id, r)).collect();
            let d_now: BTreeMap<&ResourceId, &Resource> =
                cur.desired.iter().map(|r| (&r.id, r)).collect();
            for (id, r) in &d_now {
                match d_then.get(id) {
                    None => out.push(format!(
                        "{layer}: the environment now declares {id}, which the plan does not know"
                    )),
                    Some(old) if old.spec != r.spec => {
                        for c in crate::plan::diff(&old.spec, &r.spec) {
                            out.push(format!(
                                "{layer}: the environment changed {id} {}: {} when planned, {} now",
                                c.path,
                                show(&c.before),
                                show(&c.after)
                            ));
                        }
                    }
                    Some(_) => {}
                }
            }
            for id in d_then.keys().filter(|id| !d_now.contains_key(*id)) {
                out.push(format!("{layer}: the environment no longer declares {id}"));
            }
            match (&then.observed, &cur.observed) {
                (None, None) => {}
                (None, Some(_)) => out.push(format!(
                    "{layer}: was not observable when planned, and is now (its service answers)"
                )),
                (Some(_), None) => out.push(format!(
                    "{layer}: was observed when planned, and cannot be observed now (is its service down?)"
                )),
                (Some(a), Some(b)) => observed_moves(*layer, a, b, &mut out),
            }
        }
        out
    }
}

fn state_word(s: &ObservedState) -> String {
    match s {
        ObservedState::Running => "running".into(),
        ObservedState::Present => "present".into(),
        ObservedState::Stopped(why) => format!("stopped ({why})"),
    }
}

fn observed_moves(layer: Layer, then: &[Observed], now: &[Observed], out: &mut Vec<String>) {
    let a: BTreeMap<&ResourceId, &Observed> = then.iter().map(|o| (&o.id, o)).collect();
    let b: BTreeMap<&ResourceId, &Observed> = now.iter().map(|o| (&o.id, o)).collect();
    for (id, o) in &b {
        match a.get(id) {
            None => out.push(format!("{layer}: {id} appeared since the plan was made")),
            Some(old) => {
                if old.state != o.state {
                    out.push(format!(
                        "{layer}: {id} was {} when planned, is {} now",
                        state_word(&old.state),
                        state_word(&o.state)
                    ));
                }
                match (&old.spec, &o.spec) {
                    (Some(x), Some(y)) if x != y => {
                        for c in crate::plan::diff(x, y) {
                            out.push(format!(
                                "{layer}: {id} {}: {} when planned, {} now",
                                c.path,
                                show(&c.before),
                                show(&c.after)
                            ));
                        }
                    }
                    (x, y) if x != y => {
                        out.push(format!("{layer}: {id} changed since the plan was made"))
                    }
                    _ => {}
                }
            }
        }
    }
    for id in a.keys().filter(|id| !b.contains_key(*id)) {
        out.push(format!("{layer}: {id} disappeared since the plan was made"));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::plan::{UpdateMode, plan};

    fn res(layer: Layer, kind: &str, name: &str, spec: Value) -> Resource {
        Resource {
            id: ResourceId::new(layer, kind, name),
            service: None,
            spec,
            update: UpdateMode::InPlace,
        }
    }

    fn obs(layer: Layer, kind: &str, name: &str, spec: Value) -> Observed {
        Observed {
            id: ResourceId::new(layer, kind, name),
            spec: Some(spec),
            state: ObservedState::Present,
        }
    }

    fn sample() -> (Vec<LayerPlan>, Basis) {
        let streams_d = vec![res(
            Layer::Streams,
            "stream",
            "CAPSULE_EVENTS",
            json!({"max_age_secs": 1_209_600}),
        )];
        let streams_o = vec![obs(
            Layer::Streams,
            "stream",
            "CAPSULE_EVENTS",
            json!({"max_age_secs": 604_800}),
        )];
        let cache_d = vec![res(
            Layer::Cache,
            "acl-user",
            "anumate_app",
            json!({"rules": "x"}),
        )];
        let cache_o = vec![obs(
            Layer::Cache,
            "acl-user",
            "anumate_app",
            json!({"rules": "x"}),
        )];
        let mut basis = Basis::default();
        basis.insert(Layer::Streams, streams_d.clone(), Some(streams_o.clone()));
        basis.insert(Layer::Cache, cache_d.clone(), Some(cache_o.clone()));
        basis.insert(Layer::Database, Vec::new(), None);
        let layers = vec![
            LayerPlan::deferred(
                Layer::Database,
                "postgres is not running",
                "`up` starts it, then plans and applies roles, privileges and migrations",
            ),
            LayerPlan::observed(Layer::Streams, plan(&streams_d, &streams_o, false)),
            LayerPlan::observed(Layer::Cache, plan(&cache_d, &cache_o, false)),
            LayerPlan::absent(Layer::Tenants),
        ];
        (layers, basis)
    }

    #[test]
    fn text_is_one_document_with_one_summary_line() {
        let (layers, basis) = sample();
        let p = EnvPlan::new("dev", "process", "platform: process", layers, &basis);
        assert_eq!(
            p.to_string(),
            "dev (process): platform: process\n\
             database: not observed (postgres is not running); `up` starts it, then plans and applies roles, privileges and migrations\n\
             streams:\n    \
             ~ stream CAPSULE_EVENTS\n        \
             /max_age_secs: 604800 -> 1209600\n\
             cache: up to date (1 resources)\n\
             tenants: not used by this environment\n\
             Plan: 0 to create, 1 to change, 0 to remove, 0 to start; 1 unchanged; not observed yet: database (`up` plans them once their services answer)."
        );
        assert!(p.changes_pending);
        assert_eq!(p.summary.deferred, vec![Layer::Database]);
    }

    #[test]
    fn json_round_trips_and_fingerprint_is_stable() {
        let (layers, basis) = sample();
        let p = EnvPlan::new("dev", "process", "why", layers, &basis);
        let saved = SavedPlan {
            controlplane_version: "0.1.0".into(),
            plan: p.clone(),
            basis: basis.clone(),
        };
        let text = serde_json::to_string(&saved).unwrap();
        let back: SavedPlan = serde_json::from_str(&text).unwrap();
        // Steps travel without their desired resources (the basis has them).
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            serde_json::to_value(&saved).unwrap()
        );
        assert_eq!(back.basis.fingerprint(), p.fingerprint);
        assert!(back.moved(&basis).is_empty());
        // Steps come back with their desired resources.
        let steps = back.steps(Layer::Streams);
        assert!(steps.steps[0].desired.is_some());
    }

    #[test]
    fn moved_names_the_layer_resource_and_field() {
        let (layers, basis) = sample();
        let saved = SavedPlan {
            controlplane_version: "0.1.0".into(),
            plan: EnvPlan::new("dev", "process", "why", layers, &basis),
            basis: basis.clone(),
        };
        let mut now = basis.clone();
        now.0
            .get_mut(&Layer::Streams)
            .unwrap()
            .observed
            .as_mut()
            .unwrap()[0]
            .spec = Some(json!({"max_age_secs": 3600}));
        now.0.get_mut(&Layer::Database).unwrap().observed = Some(Vec::new());
        now.0.get_mut(&Layer::Cache).unwrap().desired[0].spec = json!({"rules": "y"});
        assert_eq!(
            saved.moved(&now),
            vec![
                "database: was not observable when planned, and is now (its service answers)",
                "streams: stream CAPSULE_EVENTS /max_age_secs: 604800 when planned, 3600 now",
                "cache: the environment changed acl-user anumate_app /rules: \"x\" when planned, \"y\" now",
            ]
        );
        assert_ne!(now.fingerprint(), basis.fingerprint());
    }
}
