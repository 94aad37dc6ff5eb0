//! The path probe: resolve an AGENTESE path through a [`PathResolver`] (for instance the
//! Cortex daemon's invoke call) and expect a non-empty answer.

use std::sync::Arc;

use async_trait::async_trait;
use kgents_core::agentese::Path;
use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};

use crate::challenge::{Challenge, ProbeKind};
use crate::client::LlmError;
use crate::error::{Error, Result};
use crate::probe::{PoseError, Probe};

/// Why a path could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "camelCase")]
#[non_exhaustive]
pub enum ResolveError {
    /// The resolver could not be reached or got no answer (the probe is Unresponsive).
    #[error("the path resolver is unreachable: {message}")]
    Unreachable {
        /// What went wrong.
        message: String,
    },
    /// The resolver answered with an error (the probe is Unhealthy: an answer, but a wrong one).
    #[error("the path resolver returned an error: {message}")]
    Failed {
        /// The error it returned.
        message: String,
    },
}

impl From<LlmError> for ResolveError {
    /// A model failure behind the resolver means no answer came back.
    fn from(error: LlmError) -> Self {
        ResolveError::Unreachable {
            message: error.to_string(),
        }
    }
}

/// Resolves an AGENTESE path to a textual answer. Object safe; `Send + Sync`; mocked in this
/// crate's tests as `MockPathResolver`.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait PathResolver: Send + Sync {
    /// Resolves `path` and returns the answer text.
    async fn resolve(&self, path: &Path) -> Result<String, ResolveError>;
}

/// Resolves one of its paths, chosen at random, through a [`PathResolver`].
#[derive(Clone)]
pub struct PathProbe {
    resolver: Arc<dyn PathResolver>,
    paths: Arc<[Path]>,
}

impl PathProbe {
    /// A probe that resolves one of `paths` per run. Every path is validated as AGENTESE;
    /// at least one is required.
    pub fn new<I, S>(resolver: Arc<dyn PathResolver>, paths: I) -> Result<PathProbe>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let paths = paths
            .into_iter()
            .map(|text| {
                let text = text.as_ref();
                Path::parse(text).map_err(|error| Error::InvalidPath {
                    path: crate::challenge::quote(text),
                    reason: error.to_string(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Self::from_paths(resolver, paths)
    }

    /// A probe over already-parsed paths; at least one is required.
    pub fn from_paths(resolver: Arc<dyn PathResolver>, paths: Vec<Path>) -> Result<PathProbe> {
        if paths.is_empty() {
            return Err(Error::NoPaths);
        }
        Ok(PathProbe {
            resolver,
            paths: paths.into(),
        })
    }

    /// The paths it chooses from.
    pub fn paths(&self) -> &[Path] {
        &self.paths
    }
}

impl std::fmt::Debug for PathProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PathProbe")
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Probe for PathProbe {
    fn kind(&self) -> ProbeKind {
        ProbeKind::Path
    }

    fn draw(&self, rng: &mut dyn RngCore) -> Challenge {
        // `from_paths` guarantees at least one path.
        let path = self.paths[rng.random_range(0..self.paths.len())].clone();
        Challenge::Path { path }
    }

    async fn pose(&self, challenge: &Challenge) -> Result<String, PoseError> {
        match challenge {
            Challenge::Path { path } => Ok(self.resolver.resolve(path).await?),
            other => Err(PoseError::Mismatch {
                probe: ProbeKind::Path,
                challenge: other.kind(),
            }),
        }
    }
}
