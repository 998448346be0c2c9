//! The `kubernetes` platform through the `controlplane` binary when no cluster is
//! configured: a clear error, a non-zero exit, and nothing created (not even the
//! state directory). A cluster itself is exercised by `cp-driver-kube`'s tests
//! against an in-process fake API server.

use std::process::Command;

#[test]
fn kubernetes_without_a_cluster_says_what_to_do_and_changes_nothing() {
    let home = tempfile::tempdir().unwrap();
    let state = home.path().join("state");
    let out = Command::new(env!("CARGO_BIN_EXE_controlplane"))
        .current_dir(cp_testkit::repo())
        .env("HOME", home.path())
        .env("KUBECONFIG", home.path().join("no-such-kubeconfig"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env_remove("CONTROLPLANE_ENV")
        .env_remove("CONTROLPLANE_ENVIRONMENTS")
        .arg("--state-dir")
        .arg(&state)
        .args(["--env", "staging", "up"])
        .output()
        .expect("run controlplane");
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
