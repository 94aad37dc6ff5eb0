//! K8-gents ghost protocol: layered fallback, freshness, stability and the snapshot store.
#![forbid(unsafe_code)]
