//! The `kubernetes` platform through the `controlplane` binary when no cluster is
//! configured: a clear error, a non-zero exit, and nothing created (not even the
//! state directory). A cluster itself is exercised by `cp-driver-kube`'s tests
//! against an in-process fake API server.

// Tests run the binaries they judge (ours, kubectl, promtool) by path on purpose.
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::process::{Command, Output};

/// `controlplane --env staging up` with `kubeconfig` and a fresh HOME.
fn up(home: &Path, kubeconfig: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_controlplane"))
        .current_dir(cp_testkit::repo_root())
        .env("HOME", home)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env_remove("CONTROLPLANE_ENV")
        .env_remove("CONTROLPLANE_ENVIRONMENTS")
        .arg("--state-dir")
        .arg(home.join("state"))
        .args(["--env", "staging", "up"])
        .output()
        .expect("run controlplane")
}

#[test]
fn kubernetes_without_a_cluster_says_what_to_do_and_changes_nothing() {
    let home = tempfile::tempdir().unwrap();
    let state = home.path().join("state");
    let out = up(home.path(), &home.path().join("no-such-kubeconfig"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(
            "error: no Kubernetes cluster configured: set KUBECONFIG or run inside a cluster; \
             or use --set platform=process: "
        ),
        "{stderr}"
    );
    assert!(stderr.contains("no-such-kubeconfig"), "{stderr}");
    assert!(
        !state.exists(),
        "up created {} without a cluster",
        state.display()
    );
}

#[test]
fn kubernetes_with_an_unreachable_api_server_names_it_and_changes_nothing() {
    let home = tempfile::tempdir().unwrap();
    // A loopback port nothing listens on (below the ephemeral range, so no outgoing
    // connection takes it meanwhile).
    let port = cp_testkit::free_port();
    let kubeconfig = home.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: gone\n\
             clusters: [{{name: gone, cluster: {{server: \"https://127.0.0.1:{port}\"}}}}]\n\
             contexts: [{{name: gone, context: {{cluster: gone, user: nobody}}}}]\n\
             users: [{{name: nobody, user: {{token: not-a-secret}}}}]\n"
        ),
    )
    .unwrap();
    let out = up(home.path(), &kubeconfig);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "error: the Kubernetes API is unreachable (https://127.0.0.1:{port}/: "
        )),
        "{stderr}"
    );
    assert!(
        stderr.trim_end().ends_with(
            "check `kubectl cluster-info` and KUBECONFIG, or use --set platform=process"
        ),
        "{stderr}"
    );
    assert!(
        !stderr.contains("not-a-secret"),
        "the token leaked: {stderr}"
    );
    assert!(!home.path().join("state").exists());
}
