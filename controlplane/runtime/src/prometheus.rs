//! A small client of the Prometheus HTTP API (`/api/v1/...`): the alerts it holds
//! (what `controlplane alerts` lists), its scrape targets, loaded rules and the
//! series matching a selector (what the monitoring tests check), and a `*_build_info` version read
//! from any `/metrics` page (the readiness probes of the monitoring processes).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::probe::Endpoint;

/// How long one API request may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// A Prometheus API request failed.
#[derive(Debug, thiserror::Error)]
pub enum PromError {
    /// No answer.
    #[error("Prometheus at {addr} does not answer")]
    Unreachable {
        /// Its address.
        addr: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// It answered with an error or something that is not the API's envelope.
    #[error("Prometheus at {addr} answered {what}: {detail}")]
    Api {
        /// Its address.
        addr: String,
        /// The request (`GET /api/v1/alerts`).
        what: String,
        /// The status and error it gave.
        detail: String,
    },
}

/// One alert as `GET /api/v1/alerts` reports it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// Its labels (`alertname`, `severity`, the series' labels).
    pub labels: BTreeMap<String, String>,
    /// Its annotations (`summary`, `description`).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// `pending` or `firing`.
    pub state: String,
    /// Since when (RFC 3339).
    #[serde(default)]
    pub active_at: Option<String>,
    /// The expression's value when last evaluated.
    #[serde(default)]
    pub value: String,
}

/// One active scrape target as `GET /api/v1/targets` reports it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// Its labels after relabelling (`job`, `instance`, ...).
    pub labels: BTreeMap<String, String>,
    /// The URL scraped.
    pub scrape_url: String,
    /// `up`, `down` or `unknown` (not scraped yet).
    pub health: String,
    /// The last scrape's error.
    #[serde(default)]
    pub last_error: String,
}

/// One loaded rule as `GET /api/v1/rules` reports it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// The alert's or recorded series' name.
    pub name: String,
    /// Its expression, as Prometheus parsed and prints it.
    pub query: String,
    /// `alerting` or `recording`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `ok`, or `err` with [`Rule::last_error`].
    #[serde(default)]
    pub health: String,
    /// Why its last evaluation failed.
    #[serde(default)]
    pub last_error: String,
}

/// A rule group as loaded.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct RuleGroup {
    /// Its name.
    pub name: String,
    /// The file it came from.
    pub file: String,
    /// Its rules.
    pub rules: Vec<Rule>,
}

/// One sample of an instant query's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series' labels.
    pub metric: BTreeMap<String, String>,
    /// Its value now.
    pub value: f64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryData {
    result_type: String,
    result: Vec<VectorSample>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RangeData {
    result_type: String,
    result: Vec<MatrixSeries>,
}

#[derive(Deserialize)]
struct MatrixSeries {
    metric: BTreeMap<String, String>,
    values: Vec<(f64, String)>,
}

/// One series of a range query's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The series' labels.
    pub metric: BTreeMap<String, String>,
    /// Its points: Unix seconds and value.
    pub points: Vec<(f64, f64)>,
}

#[derive(Deserialize)]
struct VectorSample {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

#[derive(Deserialize)]
struct RulesData {
    groups: Vec<RuleGroup>,
}

#[derive(Deserialize)]
struct Envelope<T> {
    status: String,
    data: Option<T>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct AlertsData {
    alerts: Vec<Alert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TargetsData {
    active_targets: Vec<Target>,
}

/// A Prometheus server.
#[derive(Debug, Clone)]
pub struct Prometheus {
    base: String,
    addr: String,
    http: reqwest::Client,
}

impl Prometheus {
    /// The server at `ep` (plain HTTP).
    pub fn new(ep: &Endpoint) -> Self {
        Self {
            base: format!("http://{}", ep.addr()),
            addr: ep.addr(),
            http: reqwest::Client::builder()
                .timeout(TIMEOUT)
                .build()
                .expect("a client without TLS settings builds"),
        }
    }

    /// The server at `url` (`http://host:port`, as `serve --prometheus ENV=URL` names
    /// it).
    pub fn at_url(url: &str) -> Self {
        let base = url.trim_end_matches('/').to_owned();
        let addr = base
            .split_once("://")
            .map_or(base.as_str(), |(_, rest)| rest)
            .to_owned();
        Self {
            base,
            addr,
            http: reqwest::Client::builder()
                .timeout(TIMEOUT)
                .build()
                .expect("a client without TLS settings builds"),
        }
    }

    /// `http://host:port`.
    pub fn url(&self) -> &str {
        &self.base
    }

    async fn get<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, PromError> {
        let what = format!("GET {path}");
        let mut url =
            reqwest::Url::parse(&format!("{}{path}", self.base)).map_err(|e| PromError::Api {
                addr: self.addr.clone(),
                what: what.clone(),
                detail: format!("not a URL: {e}"),
            })?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let r = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|source| PromError::Unreachable {
                addr: self.addr.clone(),
                source,
            })?;
        let status = r.status();
        let api = |detail: String| PromError::Api {
            addr: self.addr.clone(),
            what: what.clone(),
            detail,
        };
        let body = r
            .text()
            .await
            .map_err(|e| api(format!("{status}, unreadable body: {e}")))?;
        let env: Envelope<T> = serde_json::from_str(&body)
            .map_err(|e| api(format!("{status}, not the API's JSON ({e})")))?;
        match (env.status.as_str(), env.data) {
            ("success", Some(d)) => Ok(d),
            _ => Err(api(format!(
                "{status}, {}",
                env.error.unwrap_or_else(|| "no data".into())
            ))),
        }
    }

    /// Every pending and firing alert.
    pub async fn alerts(&self) -> Result<Vec<Alert>, PromError> {
        Ok(self.get::<AlertsData>("/api/v1/alerts", &[]).await?.alerts)
    }

    /// Every active scrape target.
    pub async fn targets(&self) -> Result<Vec<Target>, PromError> {
        Ok(self
            .get::<TargetsData>("/api/v1/targets", &[("state", "active")])
            .await?
            .active_targets)
    }

    /// The instant vector `expr` evaluates to now.
    pub async fn query(&self, expr: &str) -> Result<Vec<Sample>, PromError> {
        let d: QueryData = self.get("/api/v1/query", &[("query", expr)]).await?;
        if d.result_type != "vector" {
            return Err(PromError::Api {
                addr: self.addr.clone(),
                what: format!("GET /api/v1/query?query={expr}"),
                detail: format!("a {} where an instant vector was asked for", d.result_type),
            });
        }
        Ok(d.result
            .into_iter()
            .map(|s| Sample {
                metric: s.metric,
                value: s.value.1.parse().unwrap_or(f64::NAN),
            })
            .collect())
    }

    /// The range vector `expr` evaluates to from `start` to `end` (Unix seconds),
    /// one point every `step_secs`.
    pub async fn query_range(
        &self,
        expr: &str,
        start: i64,
        end: i64,
        step_secs: u64,
    ) -> Result<Vec<Series>, PromError> {
        let (start, end, step) = (start.to_string(), end.to_string(), step_secs.to_string());
        let d: RangeData = self
            .get(
                "/api/v1/query_range",
                &[
                    ("query", expr),
                    ("start", &start),
                    ("end", &end),
                    ("step", &step),
                ],
            )
            .await?;
        if d.result_type != "matrix" {
            return Err(PromError::Api {
                addr: self.addr.clone(),
                what: format!("GET /api/v1/query_range?query={expr}"),
                detail: format!("a {} where a range vector was asked for", d.result_type),
            });
        }
        Ok(d.result
            .into_iter()
            .map(|s| Series {
                metric: s.metric,
                points: s
                    .values
                    .into_iter()
                    .map(|(t, v)| (t, v.parse().unwrap_or(f64::NAN)))
                    .collect(),
            })
            .collect())
    }

    /// Every loaded rule group.
    pub async fn rules(&self) -> Result<Vec<RuleGroup>, PromError> {
        Ok(self.get::<RulesData>("/api/v1/rules", &[]).await?.groups)
    }

    /// The label sets of the series `selector` matches (in the head block: what was
    /// scraped or recorded lately).
    pub async fn series(&self, selector: &str) -> Result<Vec<BTreeMap<String, String>>, PromError> {
        self.get("/api/v1/series", &[("match[]", selector)]).await
    }
}

/// The `version` label of the first `<metric>{...}` sample in a `/metrics` page
/// (`prometheus_build_info{branch="...",version="2.42.0+ds"} 1`).
pub fn build_version(page: &str, metric: &str) -> Option<String> {
    let line = page
        .lines()
        .find(|l| l.starts_with(metric) && l[metric.len()..].starts_with('{'))?;
    // `name="value",...`: values may hold commas, never an unescaped quote.
    let mut rest = &line[metric.len() + 1..];
    loop {
        let (name, after) = rest.split_once("=\"")?;
        let end = after
            .char_indices()
            .scan(false, |escaped, (i, c)| {
                let quote = c == '"' && !*escaped;
                *escaped = c == '\\' && !*escaped;
                Some((i, quote))
            })
            .find(|(_, q)| *q)?
            .0;
        if name.trim_start_matches(',').trim() == "version" {
            return Some(after[..end].to_owned());
        }
        rest = &after[end + 1..];
        if rest.starts_with('}') {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_come_from_build_info_lines() {
        let page = "# HELP x\nprometheus_build_info_other{version=\"9\"} 1\n\
                    prometheus_build_info{branch=\"debian/sid\",goversion=\"go1.19.8\",version=\"2.42.0+ds\"} 1\n";
        assert_eq!(
            build_version(page, "prometheus_build_info").as_deref(),
            Some("2.42.0+ds")
        );
        assert_eq!(build_version(page, "redis_exporter_build_info"), None);
    }

    #[test]
    fn the_api_envelope_parses_as_prometheus_2_42_sends_it() {
        let body = r#"{"status":"success","data":{"alerts":[{"labels":{"alertname":"ServiceDown","job":"redis","severity":"critical"},"annotations":{"summary":"redis is down in dev"},"state":"firing","activeAt":"2026-12-01T19:00:00.5Z","value":"0e+00"}]}}"#;
        let env: Envelope<AlertsData> = serde_json::from_str(body).unwrap();
        let a = &env.data.unwrap().alerts[0];
        assert_eq!(a.state, "firing");
        assert_eq!(a.labels["job"], "redis");
        assert_eq!(a.active_at.as_deref(), Some("2026-12-01T19:00:00.5Z"));
    }
}
