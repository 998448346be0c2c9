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
    let mut missing = Vec::new();
    for (image, setting) in spec::images(env) {
        match driver.engine.has_image(&image).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => return Err(e.to_string()),
        }
        let docker = &driver.engine.docker;
        let why = match tokio::time::timeout(
            REGISTRY_TIMEOUT,
            docker.inspect_registry_image(&image, None),
        )
        .await
        {
            Ok(Ok(_)) => continue,
            Ok(Err(e)) if status_of(&e).is_some() => client::message_of(&e),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("the registry did not answer within {REGISTRY_TIMEOUT:?}"),
        };
        missing.push(format!("{image} ({setting}): {}", why.trim()));
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "Docker {} answers at {}, but {} image(s) are neither present nor pullable: {}",
            driver.engine_version(),
            driver.host(),
            missing.len(),
            missing.join("; ")
        ))
    }
}
