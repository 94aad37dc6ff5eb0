//! Placeholder: the benchmarks of this group are being written.
fn main() {}
