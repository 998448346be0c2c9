//! What every driver's `reinitialise` shares (`up --reinitialise <service>`): which
//! services a driver can re-initialise, and forgetting an initialisation once the
//! driver removed what was left of the data (Vault's kept keys and initialisation
//! journal, then the record of `cp_runtime::initialised`). The driver removes its own
//! processes, containers, directories and volumes; the guard and the forgetting are
//! the same everywhere, so they live here once.

use std::path::PathBuf;

use cp_core::names::{CoreKind, ServiceName};
use cp_runtime::initialised;
use cp_runtime::vault::{KeyStore as _, StateKeys};

use crate::contract::Context;
use crate::error::DriverError;

/// The kind of `service` when it is one of `supported` (the stateful services the
/// driver keeps records for), else [`DriverError::Unsupported`] naming them.
pub fn reinitialisable(
    service: &ServiceName,
    supported: &[CoreKind],
) -> Result<CoreKind, DriverError> {
    CoreKind::from_name(service.as_str())
        .filter(|k| supported.contains(k))
        .ok_or_else(|| {
            let names: Vec<&str> = supported.iter().map(|k| k.as_str()).collect();
            DriverError::Unsupported {
                service: service.clone(),
                reason: format!(
                    "cannot be re-initialised here: only {} can",
                    names.join(", ")
                ),
            }
        })
}

/// Forgets that `kind` was initialised, after its data was removed: for Vault, the
/// keys kept in the state directory's `vault_keys_dir` and its initialisation journal
/// first. Returns the key files removed.
pub fn forget(
    cx: Context<'_>,
    kind: CoreKind,
    vault_keys_dir: &str,
) -> Result<Vec<PathBuf>, DriverError> {
    let mut gone = Vec::new();
    if kind == CoreKind::Vault {
        gone = StateKeys::new(cx.state, vault_keys_dir)
            .forget()
            .map_err(|e| DriverError::Vault {
                step: "removing vault's keys",
                source: e.into(),
            })?;
    }
    initialised::forget(cx.state.path(), kind.as_str())?;
    Ok(gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_supported_services_can_be_reinitialised() {
        let supported = [CoreKind::Postgres, CoreKind::Vault];
        let pg = ServiceName::core(CoreKind::Postgres);
        assert_eq!(
            reinitialisable(&pg, &supported).unwrap(),
            CoreKind::Postgres
        );
        for name in ["redis", "nats", "api", "prometheus"] {
            let e = reinitialisable(&ServiceName::new(name).unwrap(), &supported).unwrap_err();
            let shown = cp_runtime::error::chain(&e);
            assert!(
                shown.contains("cannot be re-initialised here: only postgres, vault can"),
                "{shown}"
            );
        }
    }
}
