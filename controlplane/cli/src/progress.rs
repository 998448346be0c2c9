//! Progress on stderr: `up`'s spinners per service on a terminal, plain lines
//! otherwise; a job's events ([`follow`]) as their text, or, with `--output json`, one
//! `ProgressEvent` per line (the same view the server sends as SSE).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use cp_app::JobHandle;
use cp_app::up::UpProgress;
use cp_app::views::JobView;
use cp_app::views::jobs::{Event as JobEvent, ProgressEvent};
use cp_core::plan::Layer;
use cp_drivers::engine::{Event, Progress};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::cli::Output;
use crate::commands::Failure;

/// Image pulls reported as plain lines on stderr (one per image and status change).
pub(crate) fn pull_observer() -> cp_app::driver::PullObserver {
    let last = Mutex::new(BTreeMap::<String, String>::new());
    std::sync::Arc::new(move |p: &cp_driver_docker::PullProgress| {
        let mut last = last.lock().expect("pull progress lock");
        if last.get(&p.image) != Some(&p.status) {
            last.insert(p.image.clone(), p.status.clone());
            eprintln!("pull {}: {} ({} bytes)", p.image, p.status, p.current);
        }
    })
}

/// Chooses the display for the terminal and output format. JSON progress lines go
/// to stderr, so stdout holds only the final view.
pub(crate) fn for_output(output: Output) -> Box<dyn UpProgress> {
    match output {
        Output::Json => Box::new(JsonLines),
        Output::Text if std::io::stderr().is_terminal() => Box::new(Bars::default()),
        Output::Text => Box::new(Lines),
    }
}

struct JsonLines;

impl Progress for JsonLines {
    fn event(&self, event: Event) {
        eprintln!(
            "{}",
            serde_json::to_string(&event).expect("events serialize")
        );
    }
}

impl UpProgress for JsonLines {
    fn layer(&self, layer: Layer, line: &str) {
        let e = ProgressEvent::new(
            0,
            None,
            JobEvent::Seeded {
                layer,
                change: line.to_owned(),
            },
        );
        eprintln!("{}", serde_json::to_string(&e).expect("events serialize"));
    }
}

impl UpProgress for Lines {
    fn layer(&self, layer: Layer, line: &str) {
        eprintln!("{layer}: {line}");
    }
}

impl UpProgress for Bars {
    fn layer(&self, layer: Layer, line: &str) {
        let _ = self.multi.println(format!("{layer}: {line}"));
    }
}

struct Lines;

impl Progress for Lines {
    fn event(&self, event: Event) {
        eprintln!("{}", line(&event));
    }
}

fn line(event: &Event) -> String {
    match event {
        Event::Planned { steps, unchanged } => {
            format!("plan: {steps} step(s), {unchanged} unchanged")
        }
        Event::Applying { service, step } => match service {
            Some(s) => format!("{s}: {step}"),
            None => step.clone(),
        },
        Event::Waiting { service } => format!("{service}: waiting until it answers"),
        Event::Ready {
            service,
            version,
            elapsed_ms,
        } => format!("{service}: ready ({version}) after {elapsed_ms} ms"),
        Event::Failed { service, error } => format!("{service}: FAILED: {error}"),
    }
}

#[derive(Default)]
struct Bars {
    multi: MultiProgress,
    bars: Mutex<BTreeMap<String, ProgressBar>>,
}

impl Bars {
    fn bar(&self, service: &str) -> ProgressBar {
        let mut bars = self.bars.lock().expect("not poisoned");
        bars.entry(service.to_owned())
            .or_insert_with(|| {
                let b = self.multi.add(ProgressBar::new_spinner());
                b.set_style(
                    ProgressStyle::with_template("{spinner} {prefix:>16} {msg}")
                        .expect("valid template"),
                );
                b.set_prefix(service.to_owned());
                b.enable_steady_tick(Duration::from_millis(100));
                b
            })
            .clone()
    }
}

impl Progress for Bars {
    fn event(&self, event: Event) {
        match &event {
            Event::Planned { .. } => {
                let _ = self.multi.println(line(&event));
            }
            Event::Applying {
                service: None,
                step,
            } => {
                let _ = self.multi.println(step);
            }
            Event::Applying {
                service: Some(s),
                step,
            } => self.bar(s.as_str()).set_message(step.clone()),
            Event::Waiting { service } => self
                .bar(service.as_str())
                .set_message("waiting until it answers"),
            Event::Ready {
                service,
                version,
                elapsed_ms,
            } => {
                self.bar(service.as_str())
                    .finish_with_message(format!("ready ({version}) after {elapsed_ms} ms"));
            }
            Event::Failed { service, error } => {
                let first = error.lines().next().unwrap_or_default().to_owned();
                self.bar(service.as_str())
                    .abandon_with_message(format!("FAILED: {first}"));
            }
        }
    }
}

/// Follows a job to its end, printing its events on stderr (text, or JSON lines with
/// `--output json`; drift checks say nothing in text, their view says it all). Ctrl-C
/// stops following: the job's locks die with the process, and the exit code is 130.
pub(crate) async fn follow(output: Output, job: &JobHandle) -> Result<JobView, Failure> {
    let mut interrupted = false;
    let v = job
        .follow(
            0,
            |e| match output {
                Output::Json => {
                    eprintln!("{}", serde_json::to_string(e).expect("events serialize"));
                }
                Output::Text if matches!(e.event, JobEvent::Checked { .. }) => {}
                Output::Text => eprintln!("{}", e.text),
            },
            async {
                let _ = tokio::signal::ctrl_c().await;
                interrupted = true;
            },
        )
        .await;
    if interrupted {
        eprintln!(
            "interrupted: {} {} of {} stopped; its locks are released as this process exits",
            v.kind, v.id, v.environment
        );
        return Err(Failure::Interrupted);
    }
    match job.outcome().await {
        Ok(v) => Ok(v),
        Err(e) => Err(Failure::Job(e)),
    }
}
