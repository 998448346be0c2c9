//! Progress for `up`: spinners per service on a terminal, plain lines otherwise, one
//! JSON object per event with `--output json`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use cp_drivers::engine::{Event, Progress};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::cli::Output;

/// Chooses the display for the terminal and output format.
pub(crate) fn for_output(output: Output) -> Box<dyn Progress> {
    match output {
        Output::Json => Box::new(JsonLines),
        Output::Text if std::io::stderr().is_terminal() => Box::new(Bars::default()),
        Output::Text => Box::new(Lines),
    }
}

struct JsonLines;

impl Progress for JsonLines {
    fn event(&self, event: Event) {
        println!(
            "{}",
            serde_json::to_string(&event).expect("events serialize")
        );
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
