//! Running a CronJob now, as `kubectl create job --from=cronjob/NAME` does, and
//! following it: `controlplane backup` on a Kubernetes environment creates a Job from
//! the rendered `controlplane-backup` CronJob (so the run is the scheduled one, with its
//! ServiceAccount and secrets by reference), streams its pod's log, and ends with the
//! Job's outcome.
//!
//! The Job is owned by the CronJob (deleted with it) and carries no environment label:
//! it is not part of the rendered overlay, so `up` must not prune it mid-run.

use std::io::Write;
use std::time::{Duration, Instant};

use futures::AsyncBufReadExt;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams, Patch, PatchParams};
use serde_json::json;

/// Why a Job could not be run or followed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The CronJob is not there.
    #[error(
        "no CronJob {name} in namespace {namespace}: run `controlplane up` first (the render adds it when backups are enabled)"
    )]
    NoCronJob {
        /// Its name.
        name: String,
        /// The namespace.
        namespace: String,
    },
    /// The API refused or failed.
    #[error("{doing}")]
    Api {
        /// What was being done.
        doing: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// Nothing happened in time.
    #[error("{what} did not happen within {} s", waited.as_secs())]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        waited: Duration,
    },
    /// Writing the log out failed.
    #[error("cannot write the job's log")]
    Output(#[source] std::io::Error),
}

fn api(doing: impl Into<String>) -> impl FnOnce(kube::Error) -> JobError {
    let doing = doing.into();
    move |source| JobError::Api { doing, source }
}

/// How a followed Job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOutcome {
    /// The Job's name.
    pub job: String,
    /// It succeeded.
    pub succeeded: bool,
}

/// Creates a Job from CronJob `cronjob` in `namespace` (with `extra_args` after its
/// container's own), copies its pod's log to `out` as it comes, and returns when the
/// Job succeeded or failed (or `timeout` passed).
pub async fn run_from_cronjob(
    client: &kube::Client,
    namespace: &str,
    cronjob: &str,
    extra_args: &[String],
    timeout: Duration,
    poll: Duration,
    out: &mut (dyn Write + Send),
) -> Result<JobOutcome, JobError> {
    let cronjobs: Api<CronJob> = Api::namespaced(client.clone(), namespace);
    let cj = match cronjobs.get(cronjob).await {
        Ok(c) => c,
        Err(kube::Error::Api(s)) if s.code == 404 => {
            return Err(JobError::NoCronJob {
                name: cronjob.into(),
                namespace: namespace.into(),
            });
        }
        Err(e) => return Err(api(format!("reading CronJob {cronjob}"))(e)),
    };
    let mut template = cj
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    if !extra_args.is_empty()
        && let Some(c) = template
            .spec
            .as_mut()
            .and_then(|s| s.template.spec.as_mut())
            .and_then(|p| p.containers.first_mut())
    {
        c.args
            .get_or_insert_with(Vec::new)
            .extend(extra_args.iter().cloned());
    }
    // Unique even for two runs started in the same second (the CLI's and the
    // API's): the same name would apply onto the first run's Job.
    let name = format!(
        "{cronjob}-manual-{}-{}",
        chrono::Utc::now().format("%Y%m%d%H%M%S"),
        &uuid::Uuid::new_v4().simple().to_string()[..5]
    );
    let mut labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert("controlplane.dev/run".into(), "manual".into());
    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
            "ownerReferences": [{
                "apiVersion": "batch/v1", "kind": "CronJob", "name": cronjob,
                "uid": cj.metadata.uid.clone().unwrap_or_default(),
                "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": template.spec,
    });
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    jobs.patch(
        &name,
        &PatchParams::apply(crate::FIELD_MANAGER).force(),
        &Patch::Apply(&job),
    )
    .await
    .map_err(api(format!("creating Job {name}")))?;
    let _ = writeln!(out, "job {name} created from cronjob {cronjob}");

    // Its pod, by the label the Job controller puts on it.
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let deadline = Instant::now() + timeout;
    let selector = format!("job-name={name}");
    let first_pod = || async {
        let list = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(api(format!("listing the pods of Job {name}")))?;
        Ok::<_, JobError>(list.items.into_iter().next().and_then(|p| p.metadata.name))
    };
    let pod = loop {
        if let Some(p) = first_pod().await? {
            break p;
        }
        if let Some(done) = finished(&jobs, &name).await? {
            // It may have run and ended between the two reads: its pod's log
            // is still the job's output.
            match first_pod().await? {
                Some(p) => break p,
                None => {
                    return Ok(JobOutcome {
                        job: name,
                        succeeded: done,
                    });
                }
            }
        }
        if Instant::now() > deadline {
            return Err(JobError::Timeout {
                what: format!("a pod of Job {name}"),
                waited: timeout,
            });
        }
        tokio::time::sleep(poll).await;
    };
    // Follow the log until the container ends (the stream closes then).
    match pods
        .log_stream(
            &pod,
            &LogParams {
                follow: true,
                ..LogParams::default()
            },
        )
        .await
    {
        Ok(stream) => {
            let mut lines = stream.lines();
            use futures::TryStreamExt;
            while let Some(line) = lines
                .try_next()
                .await
                .map_err(|e| JobError::Output(std::io::Error::other(e)))?
            {
                writeln!(out, "{line}").map_err(JobError::Output)?;
            }
        }
        // A pod that has not started cannot give its log yet; its outcome still comes.
        Err(kube::Error::Api(s)) if s.code == 400 || s.code == 404 => {}
        Err(e) => return Err(api(format!("following the log of pod {pod}"))(e)),
    }
    loop {
        if let Some(done) = finished(&jobs, &name).await? {
            return Ok(JobOutcome {
                job: name,
                succeeded: done,
            });
        }
        if Instant::now() > deadline {
            return Err(JobError::Timeout {
                what: format!("Job {name} to finish"),
                waited: timeout,
            });
        }
        tokio::time::sleep(poll).await;
    }
}

/// `Some(true)` succeeded, `Some(false)` failed, `None` still running.
async fn finished(jobs: &Api<Job>, name: &str) -> Result<Option<bool>, JobError> {
    let j = jobs
        .get(name)
        .await
        .map_err(api(format!("reading Job {name}")))?;
    let st = j.status.unwrap_or_default();
    if st.succeeded.unwrap_or(0) > 0 {
        return Ok(Some(true));
    }
    if st.failed.unwrap_or(0) > 0 {
        return Ok(Some(false));
    }
    let failed_condition = st
        .conditions
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Failed" && c.status == "True");
    Ok(failed_condition.then_some(false))
}
