//! Finding the control-plane binaries built by `scripts/testbed-build`.
//!
//! Lookup order, per binary: `TEST_ASSET_<NAME>` (envtest convention) for a
//! single file; otherwise the directory `KGENTS_TESTBED_BIN`, then
//! `KUBEBUILDER_ASSETS`, then the default cache directory
//! `$HOME/.cache/kgents/testbed/<kubernetes version>`.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The tools module's go.mod; the Kubernetes version is read from it so the
/// default cache directory always matches what `scripts/testbed-build` builds.
const TOOLS_GO_MOD: &str = include_str!("../../testbed/go/go.mod");

/// The Kubernetes version the tools module pins (e.g. `v1.37.2`).
pub fn kubernetes_version() -> &'static str {
    kubernetes_version_from_go_mod(TOOLS_GO_MOD).unwrap_or("unknown")
}

/// Extracts the version of `k8s.io/kubernetes` from the text of a go.mod file.
pub(crate) fn kubernetes_version_from_go_mod(go_mod: &str) -> Option<&str> {
    go_mod.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        let first = words.next()?;
        // Either `require k8s.io/kubernetes vX` or, inside a block, `k8s.io/kubernetes vX`.
        let module = if first == "require" {
            words.next()?
        } else {
            first
        };
        (module == "k8s.io/kubernetes")
            .then(|| words.next())
            .flatten()
            .filter(|version| version.starts_with('v'))
    })
}

/// The format marker on the first line of the kwok stage file that `scripts/testbed-build`
/// writes (`stages_format` there; change both together). A file without it predates the
/// kubelet-faithful pod stages (readiness-gate conditions left to their controllers, Ready
/// recomputed from them).
pub(crate) const KWOK_STAGES_FORMAT: &str = "kgents-testbed kwok stages, format 2";

/// Whether the text of a kwok stage file carries [`KWOK_STAGES_FORMAT`] on its first line.
pub(crate) fn kwok_stages_are_current(stages: &str) -> bool {
    stages
        .lines()
        .next()
        .is_some_and(|first| first.starts_with('#') && first.contains(KWOK_STAGES_FORMAT))
}

/// One control-plane program the testbed can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Component {
    Etcd,
    KubeApiserver,
    KubeControllerManager,
    KubeScheduler,
    Kwok,
}

impl Component {
    /// The file name in the binary directory (also the log name).
    pub(crate) fn file_name(self) -> &'static str {
        match self {
            Self::Etcd => "etcd",
            Self::KubeApiserver => "kube-apiserver",
            Self::KubeControllerManager => "kube-controller-manager",
            Self::KubeScheduler => "kube-scheduler",
            Self::Kwok => "kwok",
        }
    }

    /// The envtest-style variable that overrides this one binary.
    fn asset_variable(self) -> &'static str {
        match self {
            Self::Etcd => "TEST_ASSET_ETCD",
            Self::KubeApiserver => "TEST_ASSET_KUBE_APISERVER",
            Self::KubeControllerManager => "TEST_ASSET_KUBE_CONTROLLER_MANAGER",
            Self::KubeScheduler => "TEST_ASSET_KUBE_SCHEDULER",
            Self::Kwok => "TEST_ASSET_KWOK",
        }
    }
}

/// The environment values that steer the lookup, captured once so the
/// resolution itself is a pure function.
#[derive(Debug, Clone, Default)]
pub(crate) struct LookupEnv {
    pub(crate) testbed_bin: Option<PathBuf>,
    pub(crate) kubebuilder_assets: Option<PathBuf>,
    pub(crate) home: Option<PathBuf>,
    pub(crate) asset_overrides: Vec<(Component, PathBuf)>,
}

impl LookupEnv {
    /// Reads the process environment.
    pub(crate) fn from_process() -> Self {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let asset_overrides = [
            Component::Etcd,
            Component::KubeApiserver,
            Component::KubeControllerManager,
            Component::KubeScheduler,
            Component::Kwok,
        ]
        .into_iter()
        .filter_map(|c| var(c.asset_variable()).map(|p| (c, p)))
        .collect();
        Self {
            testbed_bin: var("KGENTS_TESTBED_BIN"),
            kubebuilder_assets: var("KUBEBUILDER_ASSETS"),
            home: var("HOME"),
            asset_overrides,
        }
    }

    /// The directory searched for binaries without a per-binary override.
    pub(crate) fn bin_dir(&self) -> PathBuf {
        self.testbed_bin
            .clone()
            .or_else(|| self.kubebuilder_assets.clone())
            .unwrap_or_else(|| default_bin_dir(self.home.as_deref(), kubernetes_version()))
    }

    /// Where one component is expected.
    pub(crate) fn path_of(&self, component: Component) -> PathBuf {
        self.asset_overrides
            .iter()
            .find(|(c, _)| *c == component)
            .map(|(_, p)| p.clone())
            .unwrap_or_else(|| self.bin_dir().join(component.file_name()))
    }
}

/// `$HOME/.cache/kgents/testbed/<version>` (relative to `/` without a HOME).
pub(crate) fn default_bin_dir(home: Option<&Path>, version: &str) -> PathBuf {
    home.unwrap_or(Path::new("/"))
        .join(".cache/kgents/testbed")
        .join(version)
}

/// The resolved programs (and the kwok stage file) for one testbed.
#[derive(Debug, Clone)]
pub(crate) struct Binaries {
    pub(crate) etcd: PathBuf,
    pub(crate) kube_apiserver: PathBuf,
    pub(crate) kube_controller_manager: PathBuf,
    pub(crate) kube_scheduler: PathBuf,
    pub(crate) kwok: PathBuf,
    pub(crate) kwok_stages: PathBuf,
}

impl Binaries {
    /// Resolves every path and checks that the ones `needed` exist.
    pub(crate) fn locate(env: &LookupEnv, needed: &[Component]) -> Result<Self> {
        let binaries = Self {
            etcd: env.path_of(Component::Etcd),
            kube_apiserver: env.path_of(Component::KubeApiserver),
            kube_controller_manager: env.path_of(Component::KubeControllerManager),
            kube_scheduler: env.path_of(Component::KubeScheduler),
            kwok: env.path_of(Component::Kwok),
            kwok_stages: env.bin_dir().join("kwok-stages.yaml"),
        };
        let mut missing: Vec<PathBuf> = needed
            .iter()
            .map(|c| binaries.path(*c))
            .filter(|p| !p.is_file())
            .cloned()
            .collect();
        if needed.contains(&Component::Kwok) && !binaries.kwok_stages.is_file() {
            missing.push(binaries.kwok_stages.clone());
        }
        if missing.is_empty() {
            if needed.contains(&Component::Kwok) {
                let stages = std::fs::read_to_string(&binaries.kwok_stages).map_err(|e| {
                    Error::io(
                        format!(
                            "reading the kwok stage file {}",
                            binaries.kwok_stages.display()
                        ),
                        e,
                    )
                })?;
                if !kwok_stages_are_current(&stages) {
                    return Err(Error::KwokStagesOutdated {
                        path: binaries.kwok_stages.clone(),
                        expected: KWOK_STAGES_FORMAT,
                    });
                }
            }
            Ok(binaries)
        } else {
            Err(Error::BinariesMissing {
                missing,
                bin_dir: env.bin_dir(),
            })
        }
    }

    /// The program of one component.
    pub(crate) fn path(&self, component: Component) -> &PathBuf {
        match component {
            Component::Etcd => &self.etcd,
            Component::KubeApiserver => &self.kube_apiserver,
            Component::KubeControllerManager => &self.kube_controller_manager,
            Component::KubeScheduler => &self.kube_scheduler,
            Component::Kwok => &self.kwok,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kubernetes_version_of_the_tools_module() {
        let version = kubernetes_version();
        assert!(version.starts_with("v1."), "{version}");
        assert_eq!(
            kubernetes_version_from_go_mod("module x\n\nrequire k8s.io/kubernetes v1.36.3\n"),
            Some("v1.36.3")
        );
        assert_eq!(
            kubernetes_version_from_go_mod("require (\n\tk8s.io/kubernetes v1.37.2 // x\n)\n"),
            Some("v1.37.2")
        );
        assert_eq!(kubernetes_version_from_go_mod("module x\n"), None);
        // A replace line for a staging module must not be mistaken for the root module.
        assert_eq!(
            kubernetes_version_from_go_mod("replace k8s.io/api => k8s.io/api v0.37.2\n"),
            None
        );
    }

    #[test]
    fn lookup_prefers_overrides_then_testbed_dir_then_kubebuilder_then_cache() {
        let mut env = LookupEnv {
            home: Some(PathBuf::from("/home/u")),
            ..LookupEnv::default()
        };
        assert_eq!(
            env.path_of(Component::Etcd),
            PathBuf::from(format!(
                "/home/u/.cache/kgents/testbed/{}/etcd",
                kubernetes_version()
            ))
        );
        env.kubebuilder_assets = Some(PathBuf::from("/kb"));
        assert_eq!(
            env.path_of(Component::KubeApiserver),
            PathBuf::from("/kb/kube-apiserver")
        );
        env.testbed_bin = Some(PathBuf::from("/tb"));
        assert_eq!(env.path_of(Component::Kwok), PathBuf::from("/tb/kwok"));
        env.asset_overrides
            .push((Component::Etcd, PathBuf::from("/x/my-etcd")));
        assert_eq!(env.path_of(Component::Etcd), PathBuf::from("/x/my-etcd"));
        assert_eq!(
            env.path_of(Component::KubeScheduler),
            PathBuf::from("/tb/kube-scheduler")
        );
    }

    #[test]
    fn missing_binaries_error_names_the_build_script() {
        let dir = tempfile::tempdir().expect("temp dir");
        let env = LookupEnv {
            testbed_bin: Some(dir.path().to_path_buf()),
            ..LookupEnv::default()
        };
        let error = Binaries::locate(
            &env,
            &[Component::Etcd, Component::KubeApiserver, Component::Kwok],
        )
        .expect_err("an empty directory holds no binaries");
        let message = error.to_string();
        assert!(message.contains("run scripts/testbed-build"), "{message}");
        assert!(message.contains("kube-apiserver"), "{message}");
        assert!(message.contains("kwok-stages.yaml"), "{message}");
        // Only what is needed is required.
        std::fs::write(dir.path().join("etcd"), b"").expect("write");
        assert!(Binaries::locate(&env, &[Component::Etcd]).is_ok());
    }

    #[test]
    fn an_outdated_kwok_stage_file_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().expect("temp dir");
        let env = LookupEnv {
            testbed_bin: Some(dir.path().to_path_buf()),
            ..LookupEnv::default()
        };
        std::fs::write(dir.path().join("kwok"), b"").expect("write");
        let stages = dir.path().join("kwok-stages.yaml");
        // Upstream's stages as an older build script copied them: no marker.
        std::fs::write(&stages, "apiVersion: kwok.x-k8s.io/v1alpha1\nkind: Stage\n")
            .expect("write");
        let message = Binaries::locate(&env, &[Component::Kwok])
            .expect_err("a stage file without the marker is outdated")
            .to_string();
        assert!(message.contains("run scripts/testbed-build"), "{message}");
        assert!(message.contains(KWOK_STAGES_FORMAT), "{message}");
        // An older format number is outdated too.
        std::fs::write(&stages, "# kgents-testbed kwok stages, format 1\n").expect("write");
        assert!(Binaries::locate(&env, &[Component::Kwok]).is_err());
        std::fs::write(
            &stages,
            format!("# {KWOK_STAGES_FORMAT} (generated)\napiVersion: kwok.x-k8s.io/v1alpha1\n"),
        )
        .expect("write");
        assert!(Binaries::locate(&env, &[Component::Kwok]).is_ok());
    }

    #[test]
    fn the_build_script_writes_the_stage_format_the_testbed_expects() {
        let script = include_str!("../../scripts/testbed-build");
        assert!(
            script.contains(&format!("stages_format=\"{KWOK_STAGES_FORMAT}\"")),
            "scripts/testbed-build and KWOK_STAGES_FORMAT disagree"
        );
    }
}
