//! `controlplane exporter nats`: serves NATS and JetStream metrics (`cp_exporter`)
//! until SIGTERM or Ctrl-C. The process driver runs it beside NATS like any other
//! server: detached, its output in its log, ready once `/metrics` answers.

use anyhow::Context as _;
use cp_app::Exit;

use super::{Failure, Outcome};
use crate::cli::ExporterKind;

pub(crate) fn run(kind: ExporterKind) -> Outcome {
    let ExporterKind::Nats { listen, monitor } = kind;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        eprintln!(
            "exporter nats {}: serving http://{listen}/metrics from {monitor}",
            cp_exporter::VERSION
        );
        cp_exporter::serve_nats(listener, &monitor, stopped())
            .await
            .context("exporter nats")?;
        eprintln!("exporter nats: stopped");
        Ok::<_, Failure>(Exit::Success)
    })
}

/// Resolves on SIGTERM (the process driver's stop signal) or SIGINT.
async fn stopped() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        // Without signal handlers the default disposition ends the process anyway.
        _ => std::future::pending().await,
    }
}
