//! K8-gents vocabulary: AGENTESE paths, genus, clock, half-life decay and the pheromone field. Pure, no I/O.
#![forbid(unsafe_code)]
