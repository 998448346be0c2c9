//! Progress for `up`: spinners per service on a terminal, plain lines otherwise, one
//! JSON object per event with `--output json`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use cp_app::up::UpProgress;
use cp_core::plan::Layer;
use cp_drivers::engine::{Event, Progress};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::cli::Output;

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
        eprintln!(
            "{}",
            serde_json::json!({"event": "seeded", "layer": layer, "change": line})
        );
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

/// Backup progress: a bar per service with bytes read and throughput on a terminal,
/// one line per finished service otherwise, JSON lines with `--output json`.
pub(crate) fn backup_progress(output: Output) -> Box<dyn cp_backup::run::Progress> {
    match output {
        Output::Json => Box::new(BackupLines { json: true }),
        Output::Text if std::io::stderr().is_terminal() => Box::new(BackupBars::default()),
        Output::Text => Box::new(BackupLines { json: false }),
    }
}

struct BackupLines {
    json: bool,
}

impl cp_backup::run::Progress for BackupLines {
    fn started(&self, service: cp_core::names::CoreKind, _: &cp_backup::pipeline::Meter) {
        if self.json {
            eprintln!(
                "{}",
                serde_json::json!({"event": "backup_started", "service": service})
            );
        }
    }

    fn finished(&self, line: &cp_backup::run::ServiceLine) {
        if self.json {
            eprintln!(
                "{}",
                serde_json::json!({"event": "backup_finished", "line": line})
            );
        } else if line.ok {
            eprintln!(
                "{}: {} bytes in {} ms",
                line.service, line.size, line.duration_ms
            );
        } else {
            eprintln!(
                "{}: FAILED: {}",
                line.service,
                line.error.as_deref().unwrap_or("")
            );
        }
    }
}

#[derive(Default)]
struct BackupBars {
    multi: indicatif::MultiProgress,
    bars: std::sync::Mutex<
        std::collections::BTreeMap<cp_core::names::CoreKind, indicatif::ProgressBar>,
    >,
}

impl cp_backup::run::Progress for BackupBars {
    fn started(&self, service: cp_core::names::CoreKind, meter: &cp_backup::pipeline::Meter) {
        let bar = self.multi.add(indicatif::ProgressBar::new_spinner());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {prefix:8} {msg}")
                .expect("a valid template"),
        );
        bar.set_prefix(service.as_str());
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        let (b, m) = (bar.clone(), meter.clone());
        let start = std::time::Instant::now();
        std::thread::spawn(move || {
            while !b.is_finished() {
                let n = m.get();
                let rate = n as f64 / 1e6 / start.elapsed().as_secs_f64().max(1e-3);
                b.set_message(format!("{:.1} MB read, {rate:.1} MB/s", n as f64 / 1e6));
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        });
        self.bars.lock().expect("not poisoned").insert(service, bar);
    }

    fn finished(&self, line: &cp_backup::run::ServiceLine) {
        if let Some(b) = self
            .bars
            .lock()
            .expect("not poisoned")
            .remove(&line.service)
        {
            if line.ok {
                b.finish_with_message(format!(
                    "{:.1} MB → {:.1} MB in {:.1}s",
                    line.size as f64 / 1e6,
                    line.stored_size as f64 / 1e6,
                    line.duration_ms as f64 / 1000.0
                ));
            } else {
                b.abandon_with_message(format!("FAILED: {}", line.error.as_deref().unwrap_or("")));
            }
        }
    }
}
