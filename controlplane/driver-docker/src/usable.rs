//! Whether the `auto` platform can use Docker for an environment: the engine answers
//! (after version negotiation) and every image the environment needs is present
//! locally or pullable (asked of the registry without downloading anything).

use std::time::Duration;

use cp_core::Environment;

use crate::client::{self, status_of};
use crate::driver::DockerDriver;
use crate::spec;

/// How long a registry may take to say whether it has an image.
const REGISTRY_TIMEOUT: Duration = Duration::from_secs(10);

/// `Ok` when Docker can run `env` (engine at `DOCKER_HOST` or the default socket);
/// otherwise why not, in words for "auto: using process because <why not>".
pub async fn docker_usable(env: &Environment) -> Result<(), String> {
    docker_usable_at(&client::host_from_env(), env).await
}

/// [`docker_usable`] for the engine at `host`.
pub async fn docker_usable_at(host: &str, env: &Environment) -> Result<(), String> {
    let driver = DockerDriver::connect_to(host)
        .await
        .map_err(|e| format!("no Docker engine answers at {host} ({e})"))?;
    let mut absent = Vec::new();
    for (image, setting) in spec::images(env) {
        match driver.engine.has_image(&image).await {
            Ok(true) => {}
            Ok(false) => absent.push((image, setting)),
            Err(e) => return Err(e.to_string()),
        }
    }
    // Ask the registries about every absent image at once: with no registry
    // reachable, asking one by one would cost a lookup timeout per image.
    let docker = &driver.engine.docker;
    let answers = futures::future::join_all(absent.iter().map(|(image, _)| async move {
        match tokio::time::timeout(REGISTRY_TIMEOUT, docker.inspect_registry_image(image, None))
            .await
        {
            Ok(Ok(_)) => None,
            Ok(Err(e)) if status_of(&e).is_some() => Some(client::message_of(&e)),
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!(
                "the registry did not answer within {REGISTRY_TIMEOUT:?}"
            )),
        }
    }))
    .await;
    // One line per distinct reason, naming its images, so an unreachable registry
    // reads as one cause rather than eleven.
    let mut by_reason: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for ((image, setting), why) in absent.iter().zip(answers) {
        if let Some(why) = why {
            by_reason
                .entry(why.trim().to_owned())
                .or_default()
                .push(format!("{image} ({setting})"));
        }
    }
    let count: usize = by_reason.values().map(Vec::len).sum();
    let missing: Vec<String> = by_reason
        .into_iter()
        .map(|(why, images)| format!("{}: {why}", images.join(", ")))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "Docker {} answers at {}, but {count} image(s) are neither present nor pullable: {}",
            driver.engine_version(),
            driver.host(),
            missing.join("; ")
        ))
    }
}
