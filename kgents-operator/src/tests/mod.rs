//! Test-only fixtures of the crate's unit tests (compiled under `cfg(test)` only): a mocked API
//! server in the controller-rs style, and contexts over it.
//!
//! | module | what it holds |
//! |---|---|
//! | [`fixtures`] | the mocked API server, the Agent controller's test state and caches |
//! | [`fixtures_controllers`] | the Pheromone, Memory and Umwelt controllers' scripted API server and context |

pub(crate) mod fixtures;
pub(crate) mod fixtures_controllers;
