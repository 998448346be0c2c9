//! The selectors check: every series selector of every alert rule, recording rule
//! and dashboard query must match at least one series in a real Prometheus, or be
//! listed as conditional, with the reason it does not exist there (`kube_*` outside
//! Kubernetes). So a rule that selects a misspelt metric, or a label no exporter
//! sets, fails the test that runs this, instead of silently never firing.
//!
//! [`selectors`] reads the vector selectors out of a PromQL expression (a small
//! tokenizer: enough for rules, not a PromQL parser); [`check`] asks a [`Series`]
//! source how many series each matches. A selector of a recorded series is
//! conditional when the recording rule's own inputs are (a ratio of app metrics is
//! absent wherever the app metrics are). Conditional entries name exact metrics, so
//! a misspelling of a conditional metric is still a finding.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;

use cp_runtime::prometheus::PromError;

/// A metric that exists only under a condition, and which condition.
#[derive(Debug, Clone, Copy)]
pub struct Conditional {
    /// The exact metric name.
    pub metric: &'static str,
    /// Why it has no series here.
    pub reason: &'static str,
}

/// Where a selector came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Origin {
    /// An alert rule.
    Alert(String),
    /// A recording rule (the series it records).
    Recording(String),
    /// A dashboard panel (`board/panel title`).
    Dashboard(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Alert(a) => write!(f, "alert {a}"),
            Origin::Recording(r) => write!(f, "record {r}"),
            Origin::Dashboard(d) => write!(f, "dashboard {d}"),
        }
    }
}

/// One expression to check.
#[derive(Debug, Clone)]
pub struct Expr {
    /// Where it is used.
    pub origin: Origin,
    /// The PromQL.
    pub expr: String,
}

/// What the check found for one selector of one expression.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Where it is used.
    pub origin: Origin,
    /// The selector (`redis_up{namespace="anumate-dev"}`).
    pub selector: String,
    /// Its metric name, when it names one.
    pub metric: Option<String>,
    /// How many series it matches.
    pub series: usize,
    /// Why it may have none here, when it is conditional.
    pub conditional: Option<String>,
}

impl Finding {
    /// Matches nothing and nothing excuses it.
    pub fn is_missing(&self) -> bool {
        self.series == 0 && self.conditional.is_none()
    }
}

/// Every finding, in expression order.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// One per selector of every expression.
    pub findings: Vec<Finding>,
}

impl Report {
    /// The selectors that match nothing without a reason.
    pub fn missing(&self) -> Vec<&Finding> {
        self.findings.iter().filter(|f| f.is_missing()).collect()
    }

    /// Every metric with series, with how many series the selectors saw at most.
    pub fn present(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for f in self.findings.iter().filter(|f| f.series > 0) {
            let name = f.metric.clone().unwrap_or_else(|| f.selector.clone());
            let n = out.entry(name).or_insert(0);
            *n = (*n).max(f.series);
        }
        out
    }

    /// Every conditional metric without series here, with its reason.
    pub fn absent_conditional(&self) -> BTreeMap<String, String> {
        self.findings
            .iter()
            .filter(|f| f.series == 0)
            .filter_map(|f| Some((f.metric.clone()?, f.conditional.clone()?)))
            .collect()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for x in &self.findings {
            let verdict = match (&x.conditional, x.series) {
                (_, n) if n > 0 => format!("{n} series"),
                (Some(why), _) => format!("conditional: {why}"),
                (None, _) => "MISSING: matches no series".into(),
            };
            writeln!(
                f,
                "{:<60} {:<70} {verdict}",
                x.origin.to_string(),
                x.selector
            )?;
        }
        Ok(())
    }
}

/// Counts the series a selector matches.
pub trait Series {
    /// How many series `selector` matches now.
    fn count(&self, selector: &str) -> impl Future<Output = Result<usize, PromError>> + Send;
}

impl Series for cp_runtime::prometheus::Prometheus {
    async fn count(&self, selector: &str) -> Result<usize, PromError> {
        self.series(selector).await.map(|s| s.len())
    }
}

/// Prometheus could not be asked about a selector.
#[derive(Debug, thiserror::Error)]
#[error("{selector}")]
pub struct CheckError {
    /// The selector.
    pub selector: String,
    /// Why.
    #[source]
    pub source: PromError,
}

/// Checks every selector of `exprs` against `series`. `recorded` maps each recorded
/// series' name to its recording rule's expression, so a recorded series is
/// conditional when its inputs are.
pub async fn check(
    exprs: &[Expr],
    conditional: &[Conditional],
    series: &impl Series,
) -> Result<Report, CheckError> {
    let recorded: BTreeMap<String, String> = exprs
        .iter()
        .filter_map(|e| match &e.origin {
            Origin::Recording(r) => Some((r.clone(), e.expr.clone())),
            _ => None,
        })
        .collect();
    let mut report = Report::default();
    for e in exprs {
        for selector in selectors(&e.expr) {
            let metric = metric_of(&selector);
            let why = metric
                .as_deref()
                .and_then(|m| why_conditional(m, conditional, &recorded, &mut BTreeSet::new()));
            let n = match series.count(&selector).await {
                Ok(n) => n,
                Err(source) => return Err(CheckError { selector, source }),
            };
            report.findings.push(Finding {
                origin: e.origin.clone(),
                selector,
                metric,
                series: n,
                conditional: why,
            });
        }
    }
    Ok(report)
}

/// Why `metric` may be absent: listed, or recorded from something conditional.
fn why_conditional(
    metric: &str,
    conditional: &[Conditional],
    recorded: &BTreeMap<String, String>,
    seen: &mut BTreeSet<String>,
) -> Option<String> {
    if let Some(c) = conditional.iter().find(|c| c.metric == metric) {
        return Some(c.reason.to_owned());
    }
    if !seen.insert(metric.to_owned()) {
        return None;
    }
    let expr = recorded.get(metric)?;
    selectors(expr).iter().find_map(|s| {
        let m = metric_of(s)?;
        let why = why_conditional(&m, conditional, recorded, seen)?;
        Some(format!("recorded from {m} ({why})"))
    })
}

/// The metric name a selector names, if any (`{__name__=~"a|b"}` names none).
pub fn metric_of(selector: &str) -> Option<String> {
    let name: String = selector.chars().take_while(|c| *c != '{').collect();
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str,
    Open(char),
    Close(char),
    Other,
}

/// Identifiers that are never metric names where they stand.
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// Keywords followed by a parenthesised list of label names.
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

fn tokens(expr: &str) -> Vec<(Tok, usize, usize)> {
    let b: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '"' || c == '\'' || c == '`' {
            i += 1;
            while i < b.len() && b[i] != c {
                if b[i] == '\\' && c != '`' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push((Tok::Str, start, i.min(b.len())));
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == '_' || b[i] == ':') {
                i += 1;
            }
            out.push((Tok::Ident(b[start..i].iter().collect()), start, i));
        } else if "({[".contains(c) {
            i += 1;
            out.push((Tok::Open(c), start, i));
        } else if ")}]".contains(c) {
            i += 1;
            out.push((Tok::Close(c), start, i));
        } else if c.is_ascii_digit() || c == '.' {
            // Numbers and durations (5m, 0.95, 1e3): never metric names.
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == '.') {
                i += 1;
            }
            out.push((Tok::Other, start, i));
        } else {
            i += 1;
            out.push((Tok::Other, start, i));
        }
    }
    out
}

/// Index just past the token closing the bracket opened at `open`.
fn past_close(toks: &[(Tok, usize, usize)], open: usize) -> usize {
    let mut depth = 0;
    for (j, (t, _, _)) in toks.iter().enumerate().skip(open) {
        match t {
            Tok::Open(_) => depth += 1,
            Tok::Close(_) => {
                depth -= 1;
                if depth == 0 {
                    return j + 1;
                }
            }
            _ => {}
        }
    }
    toks.len()
}

/// Every vector selector in `expr`, as written (`metric{matchers}`, `metric`, or
/// `{matchers}`), range brackets left off.
pub fn selectors(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let text = |a: usize, b: usize| chars[a..b].iter().collect::<String>();
    let toks = tokens(expr);
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        match &toks[i].0 {
            Tok::Ident(id) => {
                let next = toks.get(i + 1).map(|t| &t.0);
                if LABEL_LISTS.contains(&id.as_str()) && next == Some(&Tok::Open('(')) {
                    i = past_close(&toks, i + 1);
                } else if next == Some(&Tok::Open('(')) || KEYWORDS.contains(&id.as_str()) {
                    // A function or aggregation (`rate(`, `sum by`), or an operator.
                    i += 1;
                } else if matches!(toks.get(i + 1).map(|t| &t.0), Some(Tok::Ident(k)) if LABEL_LISTS.contains(&k.as_str()))
                {
                    // `sum by (...)`: an aggregation with its grouping first.
                    i += 1;
                } else if next == Some(&Tok::Open('{')) {
                    let end = past_close(&toks, i + 1);
                    out.push(text(toks[i].1, toks[end - 1].2));
                    i = end;
                } else {
                    out.push(id.clone());
                    i += 1;
                }
            }
            Tok::Open('{') => {
                let end = past_close(&toks, i);
                out.push(text(toks[i].1, toks[end - 1].2));
                i = end;
            }
            Tok::Open('[') => i = past_close(&toks, i),
            _ => i += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Prometheus that holds exactly these metric names (any labels).
    struct Fake(Vec<&'static str>);

    impl Series for Fake {
        async fn count(&self, selector: &str) -> Result<usize, PromError> {
            let m = metric_of(selector).unwrap_or_default();
            Ok(self.0.iter().filter(|n| **n == m).count())
        }
    }

    #[test]
    fn selectors_are_read_out_of_rule_expressions() {
        let ns = r#"namespace="anumate-dev""#;
        let cases: &[(&str, &[&str])] = &[
            (
                r#"min by (namespace, job) ({__name__=~"up|pg_up|redis_up", namespace="anumate-dev", job=~"postgres|redis"} or label_replace(0 * (up{namespace="anumate-dev", job="nats"} unless on (namespace, job) gnatsd_varz_connections{namespace="anumate-dev"}), "probe", "varz", "", ""))"#,
                &[
                    r#"{__name__=~"up|pg_up|redis_up", namespace="anumate-dev", job=~"postgres|redis"}"#,
                    r#"up{namespace="anumate-dev", job="nats"}"#,
                    r#"gnatsd_varz_connections{namespace="anumate-dev"}"#,
                ],
            ),
            (
                r#"histogram_quantile(0.95, sum by (namespace, job, le) (rate(http_request_duration_seconds_bucket{namespace="anumate-dev"}[5m])))"#,
                &[r#"http_request_duration_seconds_bucket{namespace="anumate-dev"}"#],
            ),
            (
                "namespace_job:http_requests_errors:rate5m / namespace_job:http_requests:rate5m",
                &[
                    "namespace_job:http_requests_errors:rate5m",
                    "namespace_job:http_requests:rate5m",
                ],
            ),
            (
                r#"time() - max by (env, service) (controlplane_backup_last_success_timestamp_seconds{env="dev"}) offset 5m"#,
                &[r#"controlplane_backup_last_success_timestamp_seconds{env="dev"}"#],
            ),
            (
                r#"max without (cluster) (vault_core_unsealed{namespace="anumate-dev"}) == 0"#,
                &[r#"vault_core_unsealed{namespace="anumate-dev"}"#],
            ),
            (
                r#"sum by (namespace) (rate(x_total{a="}{"}[1h:5m])) > bool 0.5 and on () y"#,
                &[r#"x_total{a="}{"}"#, "y"],
            ),
        ];
        for (expr, want) in cases {
            assert_eq!(selectors(expr), *want, "{expr}");
        }
        assert_eq!(
            selectors(&format!("pg_up{{{ns}}} == 0 or absent(pg_up{{{ns}}})")).len(),
            2
        );
    }

    #[tokio::test]
    async fn a_misspelt_metric_is_a_finding_and_a_conditional_one_is_not() {
        let exprs = vec![
            Expr {
                origin: Origin::Recording("job:redis_rejected:rate5m".into()),
                expr: r#"sum by (job) (rate(redis_rejected_connections_total{namespace="n"}[5m]))"#
                    .into(),
            },
            Expr {
                origin: Origin::Recording("ns:memory:ratio".into()),
                expr: r#"container_memory_working_set_bytes{namespace="n"} / kube_pod_container_resource_limits{namespace="n"}"#.into(),
            },
            Expr {
                origin: Origin::Alert("RedisDown".into()),
                // The typo: redis_upp.
                expr: r#"redis_upp{namespace="n"} == 0"#.into(),
            },
            Expr {
                origin: Origin::Alert("HighMemory".into()),
                expr: "ns:memory:ratio > 0.9".into(),
            },
            Expr {
                origin: Origin::Alert("KubeTypo".into()),
                // A misspelt conditional metric is no more excused than any other.
                expr: "kube_pod_container_resource_limit > 1".into(),
            },
        ];
        let conditional = [
            Conditional {
                metric: "container_memory_working_set_bytes",
                reason: "cAdvisor: Kubernetes only",
            },
            Conditional {
                metric: "kube_pod_container_resource_limits",
                reason: "kube-state-metrics: Kubernetes only",
            },
        ];
        let prometheus = Fake(vec!["redis_up", "redis_rejected_connections_total"]);
        let report = check(&exprs, &conditional, &prometheus).await.unwrap();
        let missing: Vec<(String, String)> = report
            .missing()
            .iter()
            .map(|f| (f.origin.to_string(), f.selector.clone()))
            .collect();
        assert_eq!(
            missing,
            [
                (
                    "alert RedisDown".to_owned(),
                    r#"redis_upp{namespace="n"}"#.to_owned()
                ),
                (
                    "alert KubeTypo".to_owned(),
                    "kube_pod_container_resource_limit".to_owned()
                ),
            ],
            "{report}"
        );
        // The recorded ratio inherits its inputs' condition.
        assert_eq!(
            report.absent_conditional()["ns:memory:ratio"],
            "recorded from container_memory_working_set_bytes (cAdvisor: Kubernetes only)"
        );
        assert_eq!(report.present()["redis_rejected_connections_total"], 1);
        assert!(report.to_string().contains("MISSING"));
    }
}
