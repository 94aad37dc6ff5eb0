//! Measures the symbiont against its targets and prints the figures:
//!
//! - `GET /memory/{key}` latency over loopback HTTP (p50/p99; target p99 ≤ 200 µs);
//! - durable `PUT` p50/p99, over HTTP and at the store, next to SQLite (WAL,
//!   `synchronous=FULL`) on the same disk in the same run;
//! - start-up of the `symbiont` binary until it listens (target ≤ 100 ms) and its idle
//!   resident memory (target ≤ 15 MiB).
//!
//! ```text
//! cargo build -p kgents-symbiont --examples && target/debug/examples/symbiont_perf [DIR]
//! ```
//!
//! DIR (default: a temporary directory) decides the disk the durable writes are measured on.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kgents_symbiont::run::{Config, start};
use kgents_symbiont::store::{MemoryStore, RedbStore, StoreLimits};

const READS: usize = 20_000;
const WRITES: usize = 500;

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    (at(0.50), at(0.99))
}

fn show(what: &str, (p50, p99): (Duration, Duration)) {
    println!(
        "{what:<48} p50 {:>9.1} µs   p99 {:>9.1} µs",
        p50.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6
    );
}

fn value(i: usize) -> Vec<u8> {
    format!("value {i} ").repeat(20).into_bytes()
}

fn sqlite_puts(dir: &Path) -> anyhow::Result<Vec<Duration>> {
    let db = rusqlite::Connection::open(dir.join("compare.sqlite"))?;
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.pragma_update(None, "synchronous", "FULL")?;
    db.execute(
        "CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v BLOB NOT NULL)",
        [],
    )?;
    let mut put = db.prepare("INSERT OR REPLACE INTO kv (k, v) VALUES (?1, ?2)")?;
    let mut samples = Vec::with_capacity(WRITES);
    for i in 0..WRITES {
        let started = Instant::now();
        put.execute(rusqlite::params![format!("key:{i}"), value(i)])?;
        samples.push(started.elapsed());
    }
    Ok(samples)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn startup_and_rss(dir: &Path) -> anyhow::Result<()> {
    let binary = std::env::current_exe()?
        .parent()
        .map(|p| p.join("symbiont"))
        .filter(|p| p.exists())
        .ok_or_else(|| {
            anyhow::anyhow!("build the binary first: cargo build -p kgents-symbiont --examples")
        })?;
    let mut startups = Vec::new();
    let mut rss = Vec::new();
    for run in 0..10 {
        let started = Instant::now();
        let mut child = Command::new(&binary)
            .args(["--no-cluster", "--listen", "127.0.0.1:0", "--memory-dir"])
            .arg(dir.join(format!("start-{}", run % 2)))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
        startups.push(started.elapsed());
        anyhow::ensure!(line.contains("listening"), "unexpected first line {line:?}");
        std::thread::sleep(Duration::from_millis(300));
        rss.extend(rss_kib(child.id()));
        child.kill()?;
        child.wait()?;
    }
    let (p50, _) = percentiles(startups.clone());
    let max = startups.iter().max().copied().unwrap_or_default();
    println!(
        "{:<48} p50 {:>9.1} ms   max {:>9.1} ms   (10 starts, half on an existing store)",
        "start-up until listening",
        p50.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
    rss.sort_unstable();
    println!(
        "{:<48} {:.1} MiB (max of 10; min {:.1} MiB)",
        "idle RSS after start",
        *rss.last().unwrap_or(&0) as f64 / 1024.0,
        *rss.first().unwrap_or(&0) as f64 / 1024.0
    );
    Ok(())
}

/// GETs over one keep-alive connection with a minimal HTTP/1.1 client, so the figure is the
/// server's and loopback's, not a client library's.
async fn raw_gets(addr: std::net::SocketAddr) -> anyhow::Result<Vec<Duration>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut samples = Vec::with_capacity(READS);
    for i in 0..READS {
        let request = format!(
            "GET /memory/key:{} HTTP/1.1\r\nHost: localhost\r\n\r\n",
            i % WRITES
        );
        let started = Instant::now();
        stream.write_all(request.as_bytes()).await?;
        let mut filled = 0;
        loop {
            let n = stream.read(&mut buf[filled..]).await?;
            anyhow::ensure!(n > 0, "the server closed the connection");
            filled += n;
            let text = &buf[..filled];
            let Some(end) = text.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = std::str::from_utf8(&text[..end])?;
            anyhow::ensure!(head.starts_with("HTTP/1.1 200"), "unexpected answer {head}");
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_owned())
                })
                .ok_or_else(|| anyhow::anyhow!("no content-length"))?
                .parse()?;
            if filled >= end + 4 + length {
                break;
            }
        }
        samples.push(started.elapsed());
    }
    Ok(samples)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let temp = tempfile::tempdir()?;
    let dir: PathBuf = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| temp.path().to_owned());
    std::fs::create_dir_all(&dir)?;
    let dir = tempfile::tempdir_in(&dir)?;
    println!("durable writes on {}", dir.path().display());

    // The store alone, next to SQLite: three alternating rounds, so both see the same disk.
    let store = RedbStore::open(&dir.path().join("direct.redb"), StoreLimits::default())?;
    let (mut redb, mut sqlite) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        for i in 0..WRITES {
            let started = Instant::now();
            store.put(&format!("key:{i}"), &value(i))?;
            redb.push(started.elapsed());
        }
        sqlite.extend(sqlite_puts(dir.path())?);
    }
    show("redb PUT (store, fsync per commit)", percentiles(redb));
    show("SQLite PUT (WAL, synchronous=FULL)", percentiles(sqlite));
    let mut gets = Vec::with_capacity(READS);
    for i in 0..READS {
        let started = Instant::now();
        std::hint::black_box(store.get(&format!("key:{}", i % WRITES))?);
        gets.push(started.elapsed());
    }
    show("redb GET (store)", percentiles(gets));
    drop(store);

    // Over HTTP.
    let running = start(
        Config {
            listen: "127.0.0.1:0".parse()?,
            memory_dir: dir.path().join("http"),
            limits: StoreLimits::default(),
            annotations_file: None,
            umwelt_file: None,
            umwelt_config_map: None,
            cluster: None,
        },
        None,
    )
    .await?;
    let base = format!("http://{}", running.addr);
    let client = reqwest::Client::new();
    let mut puts = Vec::with_capacity(WRITES);
    for i in 0..WRITES {
        let started = Instant::now();
        let r = client
            .put(format!("{base}/memory/key:{i}"))
            .body(value(i))
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "PUT failed: {}", r.status());
        r.bytes().await?;
        puts.push(started.elapsed());
    }
    show("HTTP PUT /memory/{key} (durable)", percentiles(puts));
    let mut gets = Vec::with_capacity(READS);
    for i in 0..READS {
        let started = Instant::now();
        let r = client
            .get(format!("{base}/memory/key:{}", i % WRITES))
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "GET failed: {}", r.status());
        r.bytes().await?;
        gets.push(started.elapsed());
    }
    show("HTTP GET /memory/{key} (reqwest client)", percentiles(gets));
    show(
        "HTTP GET /memory/{key} (raw keep-alive client)",
        percentiles(raw_gets(running.addr).await?),
    );
    running.task.abort();

    startup_and_rss(dir.path())?;
    Ok(())
}
