//! Monitoring objects for Kubernetes built from other rendered files: the
//! PrometheusRule holding the environment's alert and recording rules (rendered from
//! `alerts/`) and one ConfigMap per Grafana dashboard (rendered from `dashboards/`).

use serde_json::Value;

use super::{RenderError, Renderer};
use crate::model::Environment;

/// The extra objects (none until the monitoring templates exist).
pub(super) fn kubernetes_objects(
    _renderer: &Renderer,
    _env: &Environment,
) -> Result<Vec<Value>, RenderError> {
    Ok(Vec::new())
}
