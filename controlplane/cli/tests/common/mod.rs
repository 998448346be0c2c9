//! Running the `controlplane` binary as a user does, for the end-to-end tests.

// Tests run the binaries they judge (ours, kubectl, promtool) by path on purpose.
#![allow(clippy::disallowed_methods)]
// Each test binary uses some of these helpers, not all.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// `controlplane --state-dir STATE [--set S]... ARGS` from the repository root, with
/// nothing inherited that would change which environment or token it uses.
pub(crate) fn controlplane(state: &Path, sets: &[String], args: &[&str]) -> Output {
    controlplane_cmd(state, sets, args)
        .output()
        .expect("run controlplane")
}

/// The command [`controlplane`] runs, to run otherwise.
pub(crate) fn controlplane_cmd(state: &Path, sets: &[String], args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_controlplane"));
    cmd.current_dir(cp_testkit::repo_root())
        .arg("--state-dir")
        .arg(state)
        .env_remove("CONTROLPLANE_ENV")
        .env_remove("CONTROLPLANE_ENVIRONMENTS")
        .env_remove("VAULT_TOKEN");
    for s in sets {
        cmd.args(["--set", s]);
    }
    cmd.args(args);
    cmd
}

/// Brings the environment in `state` down (with its data) however the test ends:
/// `controlplane down --volumes --yes`, then any process left in `state` killed by
/// pid.
pub(crate) fn down(state: &Path, sets: &[String]) -> cp_testkit::Down {
    cp_testkit::Down::environment(
        state,
        controlplane_cmd(state, sets, &["down", "--volumes", "--yes"]),
    )
}

/// Exit code, stdout and stderr, for assertion messages.
pub(crate) fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `controlplane psql --role admin -- -X -At -v ON_ERROR_STOP=1 -c SQL`: its trimmed
/// output (unaligned, tuples only); panics with the command's output when it fails.
pub(crate) fn psql_admin(state: &Path, sets: &[String], sql: &str) -> String {
    let args = [
        "psql",
        "--role",
        "admin",
        "--",
        "-X",
        "-At",
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        sql,
    ];
    let o = controlplane(state, sets, &args);
    assert!(o.status.success(), "psql {sql}:\n{}", text(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}
