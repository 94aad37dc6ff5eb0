//! The one error type of the testbed.

use std::path::PathBuf;

/// Result alias used throughout the testbed.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while starting, driving or stopping a testbed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// One or more control-plane binaries are not where the testbed looks for them.
    #[error(
        "testbed binaries missing: {}; run scripts/testbed-build (it builds them from the upstream \
         Go modules into {}), or point KGENTS_TESTBED_BIN at a directory that holds them",
        .missing.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        .bin_dir.display()
    )]
    BinariesMissing {
        /// The paths that were expected but not found.
        missing: Vec<PathBuf>,
        /// The directory that was searched.
        bin_dir: PathBuf,
    },

    /// The kwok stage file was written by an older `scripts/testbed-build` (its stages
    /// behave differently, e.g. upstream's pod-ready stage that marks readiness gates True).
    #[error(
        "the kwok stage file {} is outdated (its first line does not carry \"{expected}\"); \
         run scripts/testbed-build, which rewrites it in a second without rebuilding anything",
        .path.display()
    )]
    KwokStagesOutdated {
        /// The stage file.
        path: PathBuf,
        /// The format marker the testbed expects.
        expected: &'static str,
    },

    /// A file-system or process operation failed.
    #[error("{action}: {source}")]
    Io {
        /// What the testbed was doing, including the path or program involved.
        action: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// Certificate or key generation failed.
    #[error("generating the testbed {what} failed: {source}")]
    Certificate {
        /// Which certificate or key was being generated.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: rcgen::Error,
    },

    /// A component exited or did not become ready in time.
    #[error(
        "{component} did not start: {reason} (log: {}){}",
        .log_path.display(),
        if .log_tail.is_empty() { String::new() } else { format!("\n--- last lines of the {component} log ---\n{}", .log_tail) }
    )]
    StartFailed {
        /// Which component (etcd, kube-apiserver, ...).
        component: &'static str,
        /// What was observed (exit status, timeout, ...).
        reason: String,
        /// The component's log file.
        log_path: PathBuf,
        /// The last lines of that log.
        log_tail: String,
    },

    /// A condition on the cluster was not reached in time.
    #[error("timed out after {seconds} s waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long the testbed waited.
        seconds: u64,
    },

    /// The kubeconfig could not be turned into a client configuration.
    #[error("building a client from the testbed kubeconfig {path} failed: {source}")]
    Kubeconfig {
        /// The kubeconfig file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: kube::config::KubeconfigError,
    },

    /// A Kubernetes API call failed.
    #[error("{action}: {source}")]
    Kube {
        /// What the testbed was doing.
        action: String,
        /// The underlying error.
        #[source]
        source: kube::Error,
    },

    /// The process-wide shared testbed failed to start earlier in this process;
    /// the first failure is repeated instead of retrying a slow start for every test.
    #[error("the shared testbed could not be started: {0}")]
    SharedStart(String),

    /// A caller passed an argument the testbed cannot use.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl Error {
    /// Wraps an I/O error with a description of the action that failed.
    pub(crate) fn io(action: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            action: action.into(),
            source,
        }
    }

    /// Wraps a kube error with a description of the action that failed.
    pub(crate) fn kube(action: impl Into<String>, source: kube::Error) -> Self {
        Self::Kube {
            action: action.into(),
            source,
        }
    }

    /// True when a start failed because a port picked as free was taken in the meantime.
    pub(crate) fn is_port_conflict(&self) -> bool {
        matches!(self, Self::StartFailed { log_tail, .. } if log_tail.contains("address already in use"))
    }
}
