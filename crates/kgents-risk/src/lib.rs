//! K8-gents proposal risk calculus and decisions. Pure, no I/O.
#![forbid(unsafe_code)]
