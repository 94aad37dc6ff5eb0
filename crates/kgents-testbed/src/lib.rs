//! K8-gents test support: a real etcd and kube-apiserver (and more) on loopback.
#![forbid(unsafe_code)]
