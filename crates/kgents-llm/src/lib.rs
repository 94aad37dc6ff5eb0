//! K8-gents model runtimes.
#![forbid(unsafe_code)]
