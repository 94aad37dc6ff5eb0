//! The [`Probe`] trait and the three LLM probes: [`EchoProbe`], [`ReasoningProbe`] and
//! [`JsonProbe`]. The path probe lives in [`crate::path`].

use std::sync::Arc;

use async_trait::async_trait;
use rand::RngCore;

use crate::challenge::{Challenge, CompletionSettings, ProbeKind};
use crate::client::{LlmClient, LlmError};
use crate::path::ResolveError;

/// Why a probe got no reply to judge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PoseError {
    /// The model runtime failed (timeout, transport, rate limit, credentials, ...).
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// The path resolver failed.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// The probe was handed a challenge of another kind (a caller bug; the probe runner
    /// prevents it).
    #[error("the {probe} probe cannot pose a {challenge} challenge")]
    Mismatch {
        /// The probe's kind.
        probe: ProbeKind,
        /// The challenge's kind.
        challenge: ProbeKind,
    },
}

/// A cognitive probe: draws a fresh challenge and poses it to its subject.
///
/// Judging is not the probe's business: [`Challenge::judge`] is a pure function, and the
/// [`ProbeRunner`](crate::ProbeRunner) adds timing. Object safe; `Send + Sync`.
#[async_trait]
pub trait Probe: Send + Sync {
    /// Which kind of probe this is.
    fn kind(&self) -> ProbeKind;

    /// Draws a fresh challenge from `rng`. The challenge's kind is [`Probe::kind`].
    fn draw(&self, rng: &mut dyn RngCore) -> Challenge;

    /// Poses `challenge` to the subject and returns the raw reply text.
    async fn pose(&self, challenge: &Challenge) -> Result<String, PoseError>;
}

/// Sends an LLM challenge to `client` and returns the completion text.
async fn pose_to_model(
    client: &dyn LlmClient,
    settings: &CompletionSettings,
    probe: ProbeKind,
    challenge: &Challenge,
) -> Result<String, PoseError> {
    if challenge.kind() != probe {
        return Err(PoseError::Mismatch {
            probe,
            challenge: challenge.kind(),
        });
    }
    let request = challenge
        .completion_request(settings)
        .ok_or(PoseError::Mismatch {
            probe,
            challenge: challenge.kind(),
        })?;
    let completion = client.complete(&request).await?;
    Ok(completion.text)
}

macro_rules! llm_probe {
    ($(#[$doc:meta])* $name:ident, $kind:expr, $draw:path) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name {
            client: Arc<dyn LlmClient>,
            settings: CompletionSettings,
        }

        impl $name {
            /// A probe of `client` with the default [`CompletionSettings`] (temperature 0,
            /// 64 tokens).
            pub fn new(client: Arc<dyn LlmClient>) -> Self {
                Self {
                    client,
                    settings: CompletionSettings::default(),
                }
            }

            /// The same probe with other sampling settings.
            pub fn with_settings(mut self, settings: CompletionSettings) -> Self {
                self.settings = settings;
                self
            }

            /// The sampling settings in use.
            pub fn settings(&self) -> CompletionSettings {
                self.settings
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("settings", &self.settings)
                    .finish_non_exhaustive()
            }
        }

        #[async_trait]
        impl Probe for $name {
            fn kind(&self) -> ProbeKind {
                $kind
            }

            fn draw(&self, rng: &mut dyn RngCore) -> Challenge {
                $draw(rng)
            }

            async fn pose(&self, challenge: &Challenge) -> Result<String, PoseError> {
                pose_to_model(self.client.as_ref(), &self.settings, $kind, challenge).await
            }
        }
    };
}

llm_probe!(
    /// Asks the model to reply with exactly a random nonce.
    EchoProbe,
    ProbeKind::Echo,
    Challenge::echo
);

llm_probe!(
    /// Asks the model for a random sum of two three-digit numbers or product of two two-digit
    /// numbers; the reply must be exactly that integer.
    ReasoningProbe,
    ProbeKind::Reasoning,
    Challenge::reasoning
);

llm_probe!(
    /// Asks the model for `{"status":"alive","nonce":N}` with a random `N`.
    JsonProbe,
    ProbeKind::Json,
    Challenge::json
);
