//! One kind's watch-fed cache, pure: the summaries of the objects a kube watcher has reported,
//! keyed by namespace and name, with the re-list buffered until it is complete (feature
//! `watch`).
//!
//! A long-running front-end (the Cortex daemon, the symbiont) feeds each
//! [`watcher::Event`] to [`Kind::apply`] and serves reads from [`Kind::items`]; what it does
//! with a visible change ([`Applied`]) is its own.
//!
//! - Until the first list completes the kind is not [listed](Kind::is_listed): a reader should
//!   answer *unavailable* rather than an empty list.
//! - A re-list (after a lost watch) is collected aside and replaces everything at once when it
//!   is done, so an object deleted while the watch was away disappears and readers never see a
//!   half-listed kind.

use std::collections::BTreeMap;

use kube::ResourceExt;
use kube::runtime::watcher;

/// An object's namespace and name.
pub type Key = (String, String);

/// The key of `object` (an empty namespace for a cluster-scoped one).
pub fn key_of<K: ResourceExt>(object: &K) -> Key {
    (object.namespace().unwrap_or_default(), object.name_any())
}

/// One kind's summaries, with the buffer of a re-list in progress.
#[derive(Debug, Clone)]
pub struct Kind<T> {
    items: BTreeMap<Key, T>,
    relisting: Option<BTreeMap<Key, T>>,
    listed: bool,
    generation: u64,
}

impl<T> Default for Kind<T> {
    fn default() -> Self {
        Kind {
            items: BTreeMap::new(),
            relisting: None,
            listed: false,
            generation: 0,
        }
    }
}

/// What a watch event did to a [`Kind`].
#[derive(Debug, Clone, PartialEq)]
pub enum Applied<T> {
    /// Nothing visible (a re-list in progress, or the deletion of an object never held).
    Nothing,
    /// A re-list finished: everything may have changed.
    Relisted,
    /// One object was created or changed.
    Upserted(Key, T),
    /// One object was deleted, or stopped being summarised (with its last summary, when it had
    /// one).
    Deleted(Key, Option<T>),
}

impl<T> Kind<T> {
    /// The summaries held now, by namespace and name.
    pub fn items(&self) -> &BTreeMap<Key, T> {
        &self.items
    }

    /// Whether a first list has completed (before it, the kind's contents are unknown).
    pub fn is_listed(&self) -> bool {
        self.listed
    }

    /// A counter bumped by every visible change: what was built from the items while it had one
    /// value is still current while it keeps it.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

impl<T: Clone> Kind<T> {
    /// Applies a watch event, each object turned into its summary by `summarize` (`None`: not
    /// held, e.g. an object that no longer counts), and says what visibly changed.
    pub fn apply<K: ResourceExt>(
        &mut self,
        event: watcher::Event<K>,
        summarize: impl Fn(&K) -> Option<T>,
    ) -> Applied<T> {
        let applied = self.apply_event(event, summarize);
        if !matches!(applied, Applied::Nothing) {
            self.generation += 1;
        }
        applied
    }

    fn apply_event<K: ResourceExt>(
        &mut self,
        event: watcher::Event<K>,
        summarize: impl Fn(&K) -> Option<T>,
    ) -> Applied<T> {
        match event {
            watcher::Event::Init => {
                self.relisting = Some(BTreeMap::new());
                Applied::Nothing
            }
            watcher::Event::InitApply(object) => {
                if let (Some(buffer), Some(summary)) = (self.relisting.as_mut(), summarize(&object))
                {
                    buffer.insert(key_of(&object), summary);
                }
                Applied::Nothing
            }
            watcher::Event::InitDone => {
                if let Some(buffer) = self.relisting.take() {
                    self.items = buffer;
                }
                self.listed = true;
                Applied::Relisted
            }
            watcher::Event::Apply(object) => {
                let key = key_of(&object);
                match summarize(&object) {
                    Some(summary) => {
                        self.items.insert(key.clone(), summary.clone());
                        Applied::Upserted(key, summary)
                    }
                    None => {
                        let last = self.items.remove(&key);
                        Applied::Deleted(key, last)
                    }
                }
            }
            watcher::Event::Delete(object) => {
                let key = key_of(&object);
                match self.items.remove(&key) {
                    Some(last) => Applied::Deleted(key, Some(last)),
                    None => Applied::Nothing,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;

    use super::*;

    fn object(namespace: &str, name: &str, value: &str) -> ConfigMap {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": namespace},
            "data": {"v": value}
        }))
        .expect("a ConfigMap")
    }

    fn summary(cm: &ConfigMap) -> Option<String> {
        cm.data
            .as_ref()?
            .get("v")
            .filter(|v| !v.is_empty())
            .cloned()
    }

    #[test]
    fn a_relist_is_buffered_then_replaces_everything() {
        let mut kind = Kind::default();
        assert!(!kind.is_listed());
        assert_eq!(kind.apply(watcher::Event::Init, summary), Applied::Nothing);
        kind.apply(watcher::Event::InitApply(object("a", "x", "1")), summary);
        kind.apply(watcher::Event::InitApply(object("a", "gone", "")), summary);
        assert!(
            kind.items().is_empty(),
            "not visible before the list is done"
        );
        assert_eq!(kind.generation(), 0);
        assert_eq!(
            kind.apply(watcher::Event::InitDone, summary),
            Applied::Relisted
        );
        assert!(kind.is_listed());
        assert_eq!(
            kind.items().len(),
            1,
            "an object without a summary is not held"
        );
        let upserted = kind.apply(watcher::Event::Apply(object("b", "y", "2")), summary);
        assert_eq!(
            upserted,
            Applied::Upserted(("b".into(), "y".into()), "2".into())
        );
        let deleted = kind.apply(watcher::Event::Apply(object("b", "y", "")), summary);
        assert_eq!(
            deleted,
            Applied::Deleted(("b".into(), "y".into()), Some("2".into()))
        );
        assert_eq!(
            kind.apply(watcher::Event::Delete(object("b", "y", "2")), summary),
            Applied::Nothing,
            "already gone"
        );
        let generation = kind.generation();
        // A re-list without "x" forgets it, and is one visible change.
        kind.apply(watcher::Event::Init, summary);
        kind.apply(watcher::Event::InitDone, summary);
        assert!(kind.items().is_empty());
        assert_eq!(kind.generation(), generation + 1);
    }
}
