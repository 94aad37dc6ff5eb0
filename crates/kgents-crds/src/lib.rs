//! K8-gents kgents.io/v1 custom resources: Agent, Pheromone, Memory, Umwelt and Proposal.
#![forbid(unsafe_code)]
