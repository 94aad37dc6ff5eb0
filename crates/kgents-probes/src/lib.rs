//! K8-gents cognitive probes: LLM health judged by exact answers, with hysteresis.
#![forbid(unsafe_code)]
