//! Generates the kgents.io/v1 CustomResourceDefinitions from the Rust types in `kgents-crds`.
//!
//! ```text
//! cargo run --example crdgen             # (re)write deploy/crds/<name>.yaml, one file per CRD
//! cargo run --example crdgen -- DIR      # write the files into DIR instead
//! cargo run --example crdgen -- --stdout # print all six as one multi-document YAML stream
//! cargo run --example crdgen -- --check  # exit 1 if deploy/crds/ differs from the types
//! ```
//!
//! The output is byte-for-byte what `kgents_crds::manifests()` returns; the crate's
//! `committed_crds_match_the_types` test fails when `deploy/crds/` drifts from it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("crdgen: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> anyhow::Result<ExitCode> {
    let manifests = kgents_crds::manifests()?;
    let default_dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join("crds");
    match args.as_slice() {
        [flag] if flag == "--stdout" => {
            // Each rendered file is a complete document starting with a header comment and `---`.
            for (_, yaml) in &manifests {
                print!("{yaml}");
            }
            Ok(ExitCode::SUCCESS)
        }
        [flag] if flag == "--check" => {
            let stale = stale_files(&default_dir, &manifests)?;
            if stale.is_empty() {
                println!("{} is up to date", default_dir.display());
                Ok(ExitCode::SUCCESS)
            } else {
                for file in &stale {
                    eprintln!(
                        "stale: {} (run `cargo run --example crdgen`)",
                        file.display()
                    );
                }
                Ok(ExitCode::FAILURE)
            }
        }
        [] => write_all(&default_dir, &manifests),
        [dir] if !dir.starts_with('-') => write_all(Path::new(dir), &manifests),
        _ => anyhow::bail!("usage: crdgen [DIR | --stdout | --check]"),
    }
}

fn write_all(dir: &Path, manifests: &[(String, String)]) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    for (name, yaml) in manifests {
        let path = dir.join(name);
        std::fs::write(&path, yaml)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn stale_files(dir: &Path, manifests: &[(String, String)]) -> anyhow::Result<Vec<PathBuf>> {
    let mut stale = Vec::new();
    for (name, yaml) in manifests {
        let path = dir.join(name);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(yaml.as_str()) {
            stale.push(path);
        }
    }
    Ok(stale)
}
