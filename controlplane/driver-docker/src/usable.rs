//! Whether the `auto` platform can use Docker for an environment, decided from what
//! the engine has locally: it answers within [`ANSWER_WITHIN`] and every image the
//! environment needs is present. No registry is asked: offline that cost seconds on
//! every `plan` and `status`, and a decision that depends on the network would let
//! `plan` and `up` disagree. (`platform: docker` still pulls what is absent at `up`.)

use std::time::Duration;

use cp_core::Environment;

use crate::client::{self, Engine};
use crate::driver::DockerDriver;
use crate::spec;

/// How long the engine may take to answer, for the connection and for the image
/// checks each: a socket that exists but does not answer must not stall `status`.
pub(crate) const ANSWER_WITHIN: Duration = Duration::from_secs(1);

/// The prefix of the images `cargo xtask images` builds.
const LOCAL_IMAGE_PREFIX: &str = "controlplane-local/";

/// How many absent images the notice names.
const NAMED: usize = 3;

/// Why Docker cannot run an environment, in one line for
/// "auto: using local processes: <why>".
#[derive(Debug, thiserror::Error)]
pub enum Unusable {
    /// Nothing answers at the address.
    #[error("no Docker engine answers at {host} ({detail})")]
    NoEngine {
        /// The engine's address.
        host: String,
        /// A few words: "no socket there", "no answer within 1s".
        detail: String,
    },
    /// The engine answers but lacks images.
    #[error(
        "Docker {version} answers at {host} but {} of {total} images are not present locally ({}) — {}",
        .missing.len(), named(.missing), hint(.missing)
    )]
    ImagesMissing {
        /// The engine's version.
        version: String,
        /// The engine's address.
        host: String,
        /// The absent images, in the environment's order.
        missing: Vec<String>,
        /// How many distinct images the environment needs.
        total: usize,
    },
    /// The engine answered its version but not whether it has an image.
    #[error("Docker {version} at {host} did not say whether it has {image} ({detail})")]
    NoAnswer {
        /// The engine's version.
        version: String,
        /// The engine's address.
        host: String,
        /// The image asked about.
        image: String,
        /// What happened.
        detail: String,
    },
}

fn named(missing: &[String]) -> String {
    let mut s = missing
        .iter()
        .take(NAMED)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if missing.len() > NAMED {
        s.push_str(&format!(", ...; first {NAMED} named"));
    }
    s
}

fn hint(missing: &[String]) -> &'static str {
    if missing.iter().any(|i| i.starts_with(LOCAL_IMAGE_PREFIX)) {
        "build them with `cargo xtask images`, or set platform: docker to pull"
    } else {
        "`docker pull` them, or set platform: docker to pull them at `up`"
    }
}

/// The connected engine when Docker can run `env` (engine at `DOCKER_HOST` or the
/// default socket); otherwise why not.
pub async fn docker_usable(env: &Environment) -> Result<DockerDriver, Unusable> {
    docker_usable_at(&client::host_from_env(), env).await
}

/// [`docker_usable`] for the engine at `host`.
pub async fn docker_usable_at(host: &str, env: &Environment) -> Result<DockerDriver, Unusable> {
    let engine = Engine::connect_within(host, ANSWER_WITHIN)
        .await
        .map_err(|e| Unusable::NoEngine {
            host: client::normalize_host(host),
            detail: e.short(),
        })?;
    let images = spec::images(env);
    let no_answer = |image: &str, detail: String| Unusable::NoAnswer {
        version: engine.version.clone(),
        host: engine.host.clone(),
        image: image.to_owned(),
        detail,
    };
    // All at once: a dozen local inspections take a few milliseconds together.
    let checks = futures::future::join_all(images.iter().map(|(i, _)| engine.has_image(i)));
    let answers = tokio::time::timeout(ANSWER_WITHIN, checks)
        .await
        .map_err(|_| {
            let first = images.first().map_or("", |(i, _)| i.as_str());
            no_answer(first, format!("no answer within {ANSWER_WITHIN:?}"))
        })?;
    let mut missing = Vec::new();
    for ((image, _), present) in images.iter().zip(answers) {
        match present {
            Ok(true) => {}
            Ok(false) => missing.push(image.clone()),
            Err(e) => return Err(no_answer(image, e.to_string())),
        }
    }
    if !missing.is_empty() {
        return Err(Unusable::ImagesMissing {
            version: engine.version.clone(),
            host: engine.host.clone(),
            missing,
            total: images.len(),
        });
    }
    Ok(DockerDriver::on(engine))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn missing(n: usize, prefix: &str) -> Unusable {
        Unusable::ImagesMissing {
            version: "28.2.2".into(),
            host: "unix:///var/run/docker.sock".into(),
            missing: (0..n).map(|i| format!("{prefix}img{i}:1")).collect(),
            total: 12,
        }
    }

    #[test]
    fn the_notice_is_one_short_line_naming_the_first_three() {
        let text = missing(4, LOCAL_IMAGE_PREFIX).to_string();
        assert_eq!(
            text,
            "Docker 28.2.2 answers at unix:///var/run/docker.sock but 4 of 12 images are not \
             present locally (controlplane-local/img0:1, controlplane-local/img1:1, \
             controlplane-local/img2:1, ...; first 3 named) — build them with `cargo xtask \
             images`, or set platform: docker to pull"
        );
        let text = missing(12, "registry.example/team/").to_string();
        assert!(!text.contains('\n') && text.len() < 300, "{text}");
        assert!(text.contains("`docker pull` them"), "{text}");
        assert_eq!(
            missing(1, "").to_string(),
            "Docker 28.2.2 answers at unix:///var/run/docker.sock but 1 of 12 images are not \
             present locally (img0:1) — `docker pull` them, or set platform: docker to pull \
             them at `up`"
        );
    }
}
