//! Link flags for the example binaries (the `kgents` CLI, the operator); the library itself
//! needs no build step.
//!
//! On GNU/Linux the examples are linked with packed relative relocations (`DT_RELR`, GNU ld
//! 2.38+, glibc 2.36+). A position-independent executable carries one relocation per pointer
//! in its read-only data; in the classic format that table is 24 bytes an entry (about 0.9 MB
//! for the CLI), and the dynamic loader reads all of it at every start, so it is resident in
//! every short-lived `kgents status`. Packed, it is a few kilobytes. The binary stays
//! position-independent (ASLR is kept); an older GNU ld ignores the option with a warning.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo::rustc-link-arg-examples=-Wl,-z,pack-relative-relocs");
    }
}
