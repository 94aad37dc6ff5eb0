//! [`Testbed`]: one running control plane and its builder.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Node, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::binaries::{Binaries, Component, LookupEnv};
use crate::error::{Error, Result};
use crate::flags::{self, Layout};
use crate::pki::Pki;
use crate::process::{self, ChildProcess, DIR_PREFIX, ProcessSpec};
use crate::{kubeconfig, names};

/// Field manager used for the testbed's own server-side applies.
const FIELD_MANAGER: &str = "kgents-testbed";
/// How often readiness is polled.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Grace period between SIGTERM and SIGKILL when stopping components.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Lines of a component log quoted in start errors.
const LOG_TAIL_LINES: usize = 40;

/// Options for a new testbed; created by [`Testbed::builder`].
#[derive(Debug, Clone)]
pub struct TestbedBuilder {
    controller_manager: bool,
    scheduler: bool,
    kwok_nodes: usize,
    timeout: Duration,
    bin_dir: Option<PathBuf>,
}

impl Default for TestbedBuilder {
    fn default() -> Self {
        Self {
            controller_manager: false,
            scheduler: false,
            kwok_nodes: 0,
            timeout: Duration::from_secs(60),
            bin_dir: None,
        }
    }
}

impl TestbedBuilder {
    /// Also run kube-controller-manager (Deployments, ReplicaSets, garbage
    /// collection, namespace deletion, ServiceAccounts). Turning it on also
    /// enables the ServiceAccount admission plugin, as in a real cluster.
    pub fn controller_manager(mut self, enabled: bool) -> Self {
        self.controller_manager = enabled;
        self
    }

    /// Also run kube-scheduler (binds pods to nodes).
    pub fn scheduler(mut self, enabled: bool) -> Self {
        self.scheduler = enabled;
        self
    }

    /// Run kwok and register `count` fake nodes it keeps Ready; kwok also
    /// moves bound pods to Running and finishes their deletion. Zero (the
    /// default) runs no kwok.
    pub fn kwok_nodes(mut self, count: usize) -> Self {
        self.kwok_nodes = count;
        self
    }

    /// Controller-manager, scheduler, kwok and `nodes` fake nodes: enough for
    /// Deployments to get Running pods.
    pub fn with_nodes(self, nodes: usize) -> Self {
        self.controller_manager(true)
            .scheduler(true)
            .kwok_nodes(nodes)
    }

    /// How long each component may take to become ready (default 60 s; the
    /// machines running the tests are shared and slow).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Use binaries from `dir` instead of the environment / default cache.
    pub fn bin_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.bin_dir = Some(dir.into());
        self
    }

    fn needed_components(&self) -> Vec<Component> {
        let mut needed = vec![Component::Etcd, Component::KubeApiserver];
        if self.controller_manager {
            needed.push(Component::KubeControllerManager);
        }
        if self.scheduler {
            needed.push(Component::KubeScheduler);
        }
        if self.kwok_nodes > 0 {
            needed.push(Component::Kwok);
        }
        needed
    }

    /// Starts the control plane and waits until it (and every fake node) is ready.
    ///
    /// Fails with an error that names `scripts/testbed-build` when binaries are
    /// missing, and quotes the component's log when a component does not start.
    pub async fn start(self) -> Result<Testbed> {
        let mut env = LookupEnv::from_process();
        if let Some(dir) = &self.bin_dir {
            env.testbed_bin = Some(dir.clone());
        }
        let binaries = Binaries::locate(&env, &self.needed_components())?;
        process::sweep_orphans(&temp_roots());
        let kubernetes_version = binary_version(&binaries.kube_apiserver)?;
        let mut attempt = 1;
        loop {
            match Testbed::try_start(&self, &binaries, &kubernetes_version).await {
                // A port picked as free can be taken by another process before
                // the component binds it; pick new ports.
                Err(error) if error.is_port_conflict() && attempt < 3 => attempt += 1,
                result => return result,
            }
        }
    }
}

/// Directories that may hold temporary testbed directories.
fn temp_roots() -> Vec<PathBuf> {
    let mut roots = vec![std::env::temp_dir()];
    if let Some(shm) = shm_dir() {
        roots.push(shm);
    }
    roots
}

/// `/dev/shm` when it is a writable directory (tmpfs on Linux).
fn shm_dir() -> Option<PathBuf> {
    let shm = PathBuf::from("/dev/shm");
    let writable = shm
        .metadata()
        .map(|m| m.is_dir() && !m.permissions().readonly())
        .unwrap_or(false);
    writable.then_some(shm)
}

/// The version printed by `kube-apiserver --version` (e.g. `v1.37.2`).
fn binary_version(program: &Path) -> Result<String> {
    let output = std::process::Command::new(program)
        .arg("--version")
        .output()
        .map_err(|e| Error::io(format!("running {} --version", program.display()), e))?;
    let text = String::from_utf8_lossy(&output.stdout);
    parse_version_output(&text).map(str::to_string).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "{} --version printed {text:?}, not `Kubernetes vX.Y.Z`; rebuild with scripts/testbed-build",
            program.display()
        ))
    })
}

/// Extracts `v1.37.2` from `Kubernetes v1.37.2`.
pub(crate) fn parse_version_output(text: &str) -> Option<&str> {
    text.split_whitespace()
        .find(|w| w.starts_with('v') && w[1..].starts_with(|c: char| c.is_ascii_digit()))
}

/// `N` distinct TCP ports on 127.0.0.1 that were free when asked (see the
/// retry in `start`).
/// One line of the CRI container log format (`<RFC 3339 time> stdout F <text>\n`), which kwok
/// parses; a line break inside `text` would start a malformed entry, so it becomes a space.
fn cri_log_line(at: std::time::SystemTime, text: &str) -> String {
    let since_epoch = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let (days, rest) = (
        since_epoch.as_secs() / 86_400,
        since_epoch.as_secs() % 86_400,
    );
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z stdout F {}\n",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since_epoch.subsec_nanos(),
        text.replace(['\n', '\r'], " ")
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn free_ports<const N: usize>() -> Result<[u16; N]> {
    // Hold every listener until all are chosen so the ports are distinct.
    let listeners = (0..N)
        .map(|_| {
            TcpListener::bind("127.0.0.1:0")
                .map_err(|e| Error::io("binding 127.0.0.1:0 to find a free port", e))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut ports = [0u16; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener
            .local_addr()
            .map_err(|e| Error::io("reading a bound port", e))?
            .port();
    }
    Ok(ports)
}

#[derive(Debug, Default)]
struct Processes {
    etcd: Option<ChildProcess>,
    apiserver: Option<ChildProcess>,
    /// Controller-manager, scheduler and kwok, in start order.
    helpers: Vec<ChildProcess>,
}

impl Processes {
    fn stop_everything(&mut self) {
        let mut clients: Vec<ChildProcess> = self.helpers.drain(..).rev().collect();
        clients.extend(self.apiserver.take());
        process::stop_all(&mut clients, STOP_GRACE);
        // etcd last: kube-apiserver cleans up its lease on exit and would wait
        // for a storage that is already gone.
        let mut etcd: Vec<ChildProcess> = self.etcd.take().into_iter().collect();
        process::stop_all(&mut etcd, STOP_GRACE);
    }
}

/// A running control plane: etcd and kube-apiserver on loopback, optionally
/// kube-controller-manager, kube-scheduler and kwok with fake nodes.
///
/// Dropping it stops every component (SIGTERM, then SIGKILL) and removes its
/// temporary directories. A testbed holds no [`kube::Client`]: clients are
/// bound to the tokio runtime that created them, and `#[tokio::test]` makes
/// one runtime per test, so [`Testbed::client`] builds a new one per call.
#[derive(Debug)]
pub struct Testbed {
    options: TestbedBuilder,
    binaries: Binaries,
    layout: Layout,
    kubernetes_version: String,
    root: PathBuf,
    log_dir: PathBuf,
    kubeconfig_path: PathBuf,
    pod_log_path: PathBuf,
    kubeconfig_yaml: String,
    apiserver_url: String,
    startup_time: Duration,
    processes: Mutex<Processes>,
    guardian: Mutex<Option<ChildProcess>>,
    namespace_counter: AtomicU64,
    // Dropped last (field order), after the processes are stopped in `Drop`.
    _root_dir: Option<TempDir>,
    _etcd_dir: Option<TempDir>,
}

impl Testbed {
    /// Options for a new testbed (etcd + kube-apiserver by default).
    pub fn builder() -> TestbedBuilder {
        TestbedBuilder::default()
    }

    async fn try_start(
        options: &TestbedBuilder,
        binaries: &Binaries,
        version: &str,
    ) -> Result<Self> {
        let began = Instant::now();
        let dir_prefix = format!("{DIR_PREFIX}{}-", std::process::id());
        let root_dir = tempfile::Builder::new()
            .prefix(&dir_prefix)
            .tempdir()
            .map_err(|e| Error::io("creating the testbed temporary directory", e))?;
        let etcd_dir = match shm_dir() {
            Some(shm) => tempfile::Builder::new()
                .prefix(&dir_prefix)
                .tempdir_in(shm)
                .map_err(|e| Error::io("creating the etcd data directory in /dev/shm", e))?,
            None => tempfile::Builder::new()
                .prefix("etcd-")
                .tempdir_in(root_dir.path())
                .map_err(|e| Error::io("creating the etcd data directory", e))?,
        };
        let root = root_dir.path().to_path_buf();
        let log_dir = root.join("logs");
        std::fs::create_dir_all(&log_dir)
            .map_err(|e| Error::io(format!("creating {}", log_dir.display()), e))?;

        let keep =
            std::env::var_os("KGENTS_TESTBED_KEEP").is_some_and(|v| !v.is_empty() && v != "0");
        let guardian = if keep {
            None
        } else {
            process::spawn_dir_guardian(
                &[root_dir.path(), etcd_dir.path()],
                &root,
                &log_dir.join("guardian.log"),
            )
        };
        let (root_dir, etcd_dir) = if keep {
            // Keep the directories for post-mortem reading of logs and data.
            let _ = root_dir.keep();
            let _ = etcd_dir.keep();
            (None, None)
        } else {
            (Some(root_dir), Some(etcd_dir))
        };
        let etcd_path = etcd_dir
            .as_ref()
            .map(|d| d.path().to_path_buf())
            .unwrap_or_else(|| root.join("etcd"));

        let pki = Pki::generate()?;
        let cert_dir = root.join("pki");
        let files = pki.write_to(&cert_dir)?;
        let [
            etcd_client_port,
            etcd_peer_port,
            apiserver_port,
            kwok_server_port,
        ] = free_ports::<4>()?;
        let apiserver_url = format!("https://127.0.0.1:{apiserver_port}");
        let kubeconfig_path = root.join("kubeconfig");
        let kubeconfig_yaml = kubeconfig::render(
            &apiserver_url,
            &files.ca_cert,
            &files.admin_cert,
            &files.admin_key,
        );
        std::fs::write(&kubeconfig_path, &kubeconfig_yaml)
            .map_err(|e| Error::io(format!("writing {}", kubeconfig_path.display()), e))?;

        // What kwok answers `logs` with for every container: this file, followed.
        let pod_log_path = root.join("pod-logs.log");
        std::fs::write(&pod_log_path, "")
            .map_err(|e| Error::io(format!("writing {}", pod_log_path.display()), e))?;
        let kwok_debugging = root.join("kwok-debugging.yaml");
        std::fs::write(&kwok_debugging, flags::kwok_debugging_config(&pod_log_path))
            .map_err(|e| Error::io(format!("writing {}", kwok_debugging.display()), e))?;

        let layout = Layout {
            etcd_client_port,
            etcd_peer_port,
            apiserver_port,
            etcd_data_dir: etcd_path,
            cert_dir,
            ca_cert: files.ca_cert,
            serving_cert: files.serving_cert,
            serving_key: files.serving_key,
            service_account_key: files.service_account_key,
            service_account_public_key: files.service_account_public_key,
            kubeconfig: kubeconfig_path.clone(),
            kwok_stages: binaries.kwok_stages.clone(),
            kwok_debugging,
            kwok_server_port,
            service_account_admission: options.controller_manager,
        };
        let mut testbed = Self {
            options: options.clone(),
            binaries: binaries.clone(),
            layout,
            kubernetes_version: version.to_string(),
            root,
            log_dir,
            kubeconfig_path,
            pod_log_path,
            kubeconfig_yaml,
            apiserver_url,
            startup_time: Duration::ZERO,
            processes: Mutex::new(Processes::default()),
            guardian: Mutex::new(guardian),
            namespace_counter: AtomicU64::new(0),
            _root_dir: root_dir,
            _etcd_dir: etcd_dir,
        };
        // On any error below, dropping `testbed` stops what was started.
        testbed.start_etcd().await?;
        testbed.start_apiserver().await?;
        testbed.start_helpers().await?;
        testbed.startup_time = began.elapsed();
        Ok(testbed)
    }

    fn spec(&self, component: Component, args: Vec<String>) -> ProcessSpec {
        ProcessSpec {
            name: component.file_name(),
            program: self.binaries.path(component).clone(),
            args,
            log_path: self.log_dir.join(format!("{}.log", component.file_name())),
            work_dir: self.root.clone(),
        }
    }

    fn processes(&self) -> std::sync::MutexGuard<'_, Processes> {
        // A panic while holding the lock leaves the data consistent (plain Options and a Vec).
        self.processes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The error for a component that exited or did not become ready.
    fn start_failed(&self, component: Component, reason: String) -> Error {
        let log_path = self.log_dir.join(format!("{}.log", component.file_name()));
        Error::StartFailed {
            component: component.file_name(),
            reason,
            log_tail: process::log_tail(&log_path, LOG_TAIL_LINES),
            log_path,
        }
    }

    /// `Err` when the component's process has exited.
    fn check_running(&self, component: Component) -> Result<()> {
        let mut processes = self.processes();
        let child = match component {
            Component::Etcd => processes.etcd.as_mut(),
            Component::KubeApiserver => processes.apiserver.as_mut(),
            _ => processes
                .helpers
                .iter_mut()
                .find(|p| p.spec.name == component.file_name()),
        };
        match child.map(|c| c.exited()) {
            Some(None) => Ok(()),
            Some(Some(status)) => {
                Err(self.start_failed(component, format!("exited with {status}")))
            }
            None => Err(self.start_failed(component, "is not running".into())),
        }
    }

    async fn start_etcd(&self) -> Result<()> {
        let child =
            ChildProcess::spawn(self.spec(Component::Etcd, flags::etcd_args(&self.layout)))?;
        self.processes().etcd = Some(child);
        let deadline = Instant::now() + self.options.timeout;
        loop {
            self.check_running(Component::Etcd)?;
            if etcd_healthy(self.layout.etcd_client_port).await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.start_failed(
                    Component::Etcd,
                    format!("/health not ok after {} s", self.options.timeout.as_secs()),
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Starts kube-apiserver (again, after [`Testbed::stop_apiserver`]) on the
    /// same port, etcd and certificates, and waits for `/readyz`.
    pub async fn start_apiserver(&self) -> Result<()> {
        {
            let mut processes = self.processes();
            if processes
                .apiserver
                .as_mut()
                .is_some_and(|p| p.exited().is_none())
            {
                return Err(Error::InvalidArgument(
                    "kube-apiserver is already running".into(),
                ));
            }
            let spec = self.spec(
                Component::KubeApiserver,
                flags::apiserver_args(&self.layout),
            );
            processes.apiserver = Some(ChildProcess::spawn(spec)?);
        }
        let client = self.client().await?;
        let deadline = Instant::now() + self.options.timeout;
        loop {
            self.check_running(Component::KubeApiserver)?;
            let request = http::Request::get("/readyz")
                .body(Vec::new())
                .map_err(|e| {
                    Error::InvalidArgument(format!("building the /readyz request: {e}"))
                })?;
            let last_answer = match client.request_text(request).await {
                Ok(_) => return Ok(()),
                Err(error) => error.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(self.start_failed(
                    Component::KubeApiserver,
                    format!(
                        "/readyz not ok after {} s (last answer: {last_answer})",
                        self.options.timeout.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Stops kube-apiserver (SIGTERM, SIGKILL after 5 s); etcd and the data stay.
    pub fn stop_apiserver(&self) {
        let apiserver = self.processes().apiserver.take();
        if let Some(apiserver) = apiserver {
            apiserver.stop(STOP_GRACE);
        }
    }

    /// [`Testbed::stop_apiserver`] followed by [`Testbed::start_apiserver`].
    pub async fn restart_apiserver(&self) -> Result<()> {
        self.stop_apiserver();
        self.start_apiserver().await
    }

    async fn start_helpers(&self) -> Result<()> {
        let mut started = Vec::new();
        if self.options.controller_manager {
            started.push((
                Component::KubeControllerManager,
                flags::controller_manager_args(&self.layout),
            ));
        }
        if self.options.scheduler {
            started.push((
                Component::KubeScheduler,
                flags::scheduler_args(&self.layout),
            ));
        }
        if self.options.kwok_nodes > 0 {
            started.push((Component::Kwok, flags::kwok_args(&self.layout)));
        }
        for (component, args) in &started {
            let child = ChildProcess::spawn(self.spec(*component, args.clone()))?;
            self.processes().helpers.push(child);
        }
        if self.options.kwok_nodes > 0 {
            self.create_nodes().await?;
        }
        // A helper that crashed on bad flags shows up by now.
        for (component, _) in &started {
            self.check_running(*component)?;
        }
        Ok(())
    }

    async fn create_nodes(&self) -> Result<()> {
        let client = self.client().await?;
        let nodes: Api<Node> = Api::all(client);
        for index in 0..self.options.kwok_nodes {
            let node: Node = serde_json::from_value(names::fake_node(index))
                .map_err(|e| Error::InvalidArgument(format!("fake node manifest: {e}")))?;
            nodes
                .create(&PostParams::default(), &node)
                .await
                .map_err(|e| Error::kube(format!("creating fake node {index}"), e))?;
        }
        let deadline = Instant::now() + self.options.timeout;
        loop {
            self.check_running(Component::Kwok)?;
            let list = nodes
                .list(&Default::default())
                .await
                .map_err(|e| Error::kube("listing nodes", e))?;
            let ready = list
                .items
                .iter()
                .filter(|n| names::node_is_ready(n))
                .count();
            if ready >= self.options.kwok_nodes {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.start_failed(
                    Component::Kwok,
                    format!(
                        "{ready} of {} fake nodes Ready after {} s",
                        self.options.kwok_nodes,
                        self.options.timeout.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// The admin kubeconfig (user `kgents-testbed-admin` in `system:masters`).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// The file kwok serves as the log of every container of every pod on its fake nodes
    /// (`kubectl logs`, followed), in the CRI log format that kwok parses; add lines with
    /// [`Testbed::append_pod_log`]. Port-forwards to any port of such a pod are answered by
    /// an echo (`cat`). Only meaningful with fake nodes ([`TestbedBuilder::kwok_nodes`]).
    pub fn pod_log_file(&self) -> &Path {
        &self.pod_log_path
    }

    /// Appends `line` to what every fake pod logs (see [`Testbed::pod_log_file`]), as a CRI
    /// log line of stdout stamped now.
    pub fn append_pod_log(&self, line: &str) -> Result<()> {
        use std::io::Write as _;
        let entry = cri_log_line(std::time::SystemTime::now(), line);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&self.pod_log_path)
            .and_then(|mut file| file.write_all(entry.as_bytes()))
            .map_err(|e| Error::io(format!("appending to {}", self.pod_log_path.display()), e))
    }

    /// Directory with one log file per component (`etcd.log`, `kube-apiserver.log`, ...).
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// `https://127.0.0.1:<port>` of kube-apiserver.
    pub fn apiserver_url(&self) -> &str {
        &self.apiserver_url
    }

    /// The Kubernetes version the running kube-apiserver binary reports (e.g. `v1.37.2`).
    pub fn kubernetes_version(&self) -> &str {
        &self.kubernetes_version
    }

    /// How long [`TestbedBuilder::start`] took, fake nodes included.
    pub fn startup_time(&self) -> Duration {
        self.startup_time
    }

    /// Process ids of the running components, by name (for measurements).
    pub fn component_pids(&self) -> Vec<(&'static str, u32)> {
        let processes = self.processes();
        processes
            .etcd
            .iter()
            .chain(processes.apiserver.iter())
            .chain(processes.helpers.iter())
            .map(|p| (p.spec.name, p.pid()))
            .collect()
    }

    /// The admin client's configuration, for a client with a stack of its own (e.g. one that
    /// trims managed fields).
    pub async fn config(&self) -> Result<Config> {
        let parsed =
            Kubeconfig::from_yaml(&self.kubeconfig_yaml).map_err(|source| Error::Kubeconfig {
                path: self.kubeconfig_path.clone(),
                source,
            })?;
        Config::from_custom_kubeconfig(parsed, &KubeConfigOptions::default())
            .await
            .map_err(|source| Error::Kubeconfig {
                path: self.kubeconfig_path.clone(),
                source,
            })
    }

    fn client_from(&self, config: Config) -> Result<Client> {
        Client::try_from(config).map_err(|e| Error::kube("building a client for the testbed", e))
    }

    /// A new admin client bound to the caller's tokio runtime.
    pub async fn client(&self) -> Result<Client> {
        let config = self.config().await?;
        self.client_from(config)
    }

    /// The configuration of a client that impersonates `user` with `groups` (the admin may
    /// impersonate anyone), for a client with a stack of its own.
    pub async fn impersonating_config(&self, user: &str, groups: &[&str]) -> Result<Config> {
        if user.is_empty() {
            return Err(Error::InvalidArgument(
                "the impersonated user name is empty".into(),
            ));
        }
        let mut config = self.config().await?;
        config.auth_info.impersonate = Some(user.to_string());
        if !groups.is_empty() {
            config.auth_info.impersonate_groups =
                Some(groups.iter().map(|g| g.to_string()).collect());
        }
        Ok(config)
    }

    /// A new client that impersonates `user` with `groups` (the admin may
    /// impersonate anyone); RBAC then applies to that identity.
    pub async fn impersonating_client(&self, user: &str, groups: &[&str]) -> Result<Client> {
        let config = self.impersonating_config(user, groups).await?;
        self.client_from(config)
    }

    /// The configuration of a client acting as ServiceAccount `namespace/name`, with the groups
    /// the apiserver gives a real ServiceAccount token, for a client with a stack of its own.
    pub async fn service_account_config(&self, namespace: &str, name: &str) -> Result<Config> {
        let (user, groups) = names::service_account_identity(namespace, name)?;
        let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
        self.impersonating_config(&user, &groups).await
    }

    /// A new client acting as ServiceAccount `namespace/name`, with the groups
    /// the apiserver gives a real ServiceAccount token.
    pub async fn service_account_client(&self, namespace: &str, name: &str) -> Result<Client> {
        let config = self.service_account_config(namespace, name).await?;
        self.client_from(config)
    }

    /// Server-side applies the CRDs and waits until each is Established.
    pub async fn install_crds(&self, crds: &[CustomResourceDefinition]) -> Result<()> {
        let client = self.client().await?;
        let api: Api<CustomResourceDefinition> = Api::all(client);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let mut names = Vec::with_capacity(crds.len());
        for crd in crds {
            let name = crd
                .metadata
                .name
                .clone()
                .ok_or_else(|| Error::InvalidArgument("a CRD without metadata.name".into()))?;
            let mut desired = crd.clone();
            // Server-owned fields must not be part of an apply.
            desired.status = None;
            desired.metadata.managed_fields = None;
            desired.metadata.resource_version = None;
            desired.metadata.uid = None;
            desired.metadata.creation_timestamp = None;
            api.patch(&name, &params, &Patch::Apply(&desired))
                .await
                .map_err(|e| Error::kube(format!("applying CRD {name}"), e))?;
            names.push(name);
        }
        let timeout = self.options.timeout;
        for name in names {
            let established = kube::runtime::wait::await_condition(
                api.clone(),
                &name,
                kube::runtime::wait::conditions::is_crd_established(),
            );
            match tokio::time::timeout(timeout, established).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    return Err(Error::InvalidArgument(format!(
                        "watching CRD {name} for Established failed: {e}"
                    )));
                }
                Err(_) => {
                    return Err(Error::Timeout {
                        what: format!("CRD {name} to become Established"),
                        seconds: timeout.as_secs(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Creates a namespace with a unique name `<prefix>-<n>` and returns the name.
    ///
    /// With the controller-manager running it also waits for the namespace's
    /// `default` ServiceAccount, so pods can be created right away.
    pub async fn create_namespace(&self, prefix: &str) -> Result<String> {
        let number = self.namespace_counter.fetch_add(1, Ordering::Relaxed);
        let name = names::namespace_name(prefix, number);
        let client = self.client().await?;
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let mut namespace = Namespace::default();
        namespace.metadata.name = Some(name.clone());
        namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .map_err(|e| Error::kube(format!("creating namespace {name}"), e))?;
        if self.options.controller_manager {
            let accounts: Api<ServiceAccount> = Api::namespaced(client, &name);
            let deadline = Instant::now() + self.options.timeout;
            while accounts
                .get_opt("default")
                .await
                .map_err(|e| Error::kube(format!("reading {name}/default ServiceAccount"), e))?
                .is_none()
            {
                if Instant::now() >= deadline {
                    return Err(Error::Timeout {
                        what: format!("the default ServiceAccount of namespace {name}"),
                        seconds: self.options.timeout.as_secs(),
                    });
                }
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }
        Ok(name)
    }
}

/// `GET /health` on etcd's client port answers `"health":"true"`.
async fn etcd_healthy(port: u16) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        stream
            .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        let text = String::from_utf8_lossy(&response);
        Some(
            text.starts_with("HTTP/1.")
                && text.contains(" 200 ")
                && text.contains("\"health\":\"true\""),
        )
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), attempt).await,
        Ok(Some(true))
    )
}

impl Drop for Testbed {
    fn drop(&mut self) {
        self.processes().stop_everything();
        let guardian = self
            .guardian
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(guardian) = guardian {
            // The temporary directories are removed by their `TempDir` owners.
            process::dismiss_guardian(guardian);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_apiserver_version_line() {
        assert_eq!(
            parse_version_output("Kubernetes v1.37.2\n"),
            Some("v1.37.2")
        );
        assert_eq!(
            parse_version_output("Kubernetes v0.0.0-master+$Format:%H$"),
            Some("v0.0.0-master+$Format:%H$")
        );
        assert_eq!(parse_version_output("Kubernetes version unknown"), None);
    }

    #[test]
    fn cri_log_lines_carry_an_rfc3339_time_the_stream_and_one_line_of_text() {
        let at = std::time::UNIX_EPOCH + Duration::new(1_796_256_000, 42);
        assert_eq!(
            cri_log_line(at, "hello\nworld"),
            "2026-12-03T00:00:00.000000042Z stdout F hello world\n"
        );
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn free_ports_are_distinct() {
        let [a, b, c] = free_ports::<3>().expect("ports");
        assert!(a != b && b != c && a != c);
        assert!(a != 0 && b != 0 && c != 0);
    }

    #[tokio::test]
    async fn start_without_binaries_names_the_build_script() {
        let empty = tempfile::tempdir().expect("temp dir");
        let error = Testbed::builder()
            .with_nodes(1)
            .bin_dir(empty.path())
            .start()
            .await
            .expect_err("no binaries in an empty directory");
        let message = error.to_string();
        assert!(message.contains("run scripts/testbed-build"), "{message}");
        assert!(message.contains("kube-controller-manager"), "{message}");
    }
}
