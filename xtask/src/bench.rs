//! Benchmarks, each compared in the same run with the peer tool or the physical floor.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::build_controlplane;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

pub(crate) fn bench(rest: &[String]) -> Result<()> {
    match rest.first().map(String::as_str) {
        Some("render") => render(),
        other => bail!("unknown benchmark {other:?}: use `cargo xtask bench render|up|seed`"),
    }
}

/// Rendering every environment vs `kubectl kustomize` of the same overlays.
fn render() -> Result<()> {
    let bin = build_controlplane()?;
    let tmp = std::env::temp_dir().join(format!("cp-bench-render-{}", std::process::id()));
    let runs = 15;
    let mut ours = Vec::new();
    for _ in 0..runs {
        let _ = std::fs::remove_dir_all(&tmp);
        let t = Instant::now();
        crate::run(
            Command::new(&bin)
                .args(["render", "--all", "--out"])
                .arg(&tmp)
                .arg("--output")
                .arg("json")
                .stdout(std::process::Stdio::null()),
        )?;
        ours.push(t.elapsed());
    }
    let envs = ["dev", "staging", "production"];
    let mut kustomize = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        for e in envs {
            let out = Command::new("kubectl")
                .arg("kustomize")
                .arg(tmp.join(format!("kubernetes/overlays/{e}")))
                .output()?;
            if !out.status.success() {
                bail!(
                    "kubectl kustomize {e} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        kustomize.push(t.elapsed());
    }
    let _ = std::fs::remove_dir_all(&tmp);
    let (a, b) = (median(ours), median(kustomize));
    println!(
        "render --all (3 environments, load + validate + render + write), median of {runs}: {}",
        ms(a)
    );
    println!(
        "kubectl kustomize of the same 3 overlays, median of {runs}:                     {}",
        ms(b)
    );
    println!(
        "ratio controlplane/kustomize: {:.2}",
        a.as_secs_f64() / b.as_secs_f64()
    );
    Ok(())
}
