//! What a host's steady-state polls would otherwise read from the database every time: its
//! dial target, its threshold rules, the counters the next rates need, its newest snapshot,
//! and when its pinned key was last recorded as seen. One entry per host.
//!
//! The database stays the source of truth. An entry's cached rows go whenever the host, its
//! credentials, thresholds or host key change ([`HostCache::invalidate`], called by the one
//! place that changes hosts, `registry`) and after a failed poll. The newest snapshot is the
//! exception: it is newer than the database (see [`super::LATEST_ROW_EVERY_MS`]) and outlives
//! invalidation, until the host is deleted ([`HostCache::forget`]).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Instant,
};

use crate::{
    alerts::{evaluate::ThresholdRule, forecast::DiskTrend},
    probe::Counters,
};

use super::Prepared;

/// A host's newest successful poll, and when its rows were last written.
#[derive(Debug, Clone)]
pub(super) struct Newest {
    /// When the poll started (the host's `last_poll_at`, unless a failed poll came since).
    pub polled_at: i64,
    /// When its snapshot was taken (the host's `last_ok_at`).
    pub taken_at: i64,
    pub snapshot_json: Arc<str>,
    pub row_written_at: Option<i64>,
}

/// Everything kept in memory about one host.
#[derive(Debug, Default)]
pub(super) struct HostEntry {
    /// Counts the host's invalidations, so that rows read before one are not cached after it.
    generation: u64,
    pub target: Option<Arc<Prepared>>,
    pub rules: Option<Arc<Vec<ThresholdRule>>>,
    pub counters: Option<Counters>,
    pub newest: Option<Newest>,
    /// The fingerprint last recorded as seen, and when (its `last_seen_at` need not move per
    /// poll).
    pub key_seen: Option<(String, Instant)>,
    /// Its mounts' recent use, for the disk-full forecast (kept like the newest snapshot).
    pub disk_trend: Option<DiskTrend>,
}

/// The per-host entries.
#[derive(Default)]
pub(super) struct HostCache {
    entries: Mutex<HashMap<i64, HostEntry>>,
}

impl std::fmt::Debug for HostCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HostCache({} hosts)", self.lock().len())
    }
}

impl HostCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, HostEntry>> {
        self.entries.lock().expect("not poisoned")
    }

    /// Reads from the host's entry (an empty one when it has none).
    pub fn read<R>(&self, host_id: i64, f: impl FnOnce(&HostEntry) -> R) -> R {
        match self.lock().get(&host_id) {
            Some(entry) => f(entry),
            None => f(&HostEntry::default()),
        }
    }

    /// Changes the host's entry, creating it when needed.
    pub fn update<R>(&self, host_id: i64, f: impl FnOnce(&mut HostEntry) -> R) -> R {
        f(self.lock().entry(host_id).or_default())
    }

    /// Changes the host's entry only when it has one.
    pub fn update_existing(&self, host_id: i64, f: impl FnOnce(&mut HostEntry)) {
        if let Some(entry) = self.lock().get_mut(&host_id) {
            f(entry);
        }
    }

    /// The host's invalidation count now: take it before reading rows to cache, and cache
    /// them with [`HostCache::update_unless_invalidated`].
    pub fn generation(&self, host_id: i64) -> u64 {
        self.lock().get(&host_id).map_or(0, |e| e.generation)
    }

    /// Changes the host's entry, unless the host was invalidated since `generation` was taken
    /// (what was read then may be stale: it is used once, not kept).
    pub fn update_unless_invalidated(
        &self,
        host_id: i64,
        generation: u64,
        f: impl FnOnce(&mut HostEntry),
    ) {
        let mut entries = self.lock();
        let entry = entries.entry(host_id).or_default();
        if entry.generation == generation {
            f(entry);
        }
    }

    /// Drops what was read from the database about a host; its newest snapshot stays.
    pub fn invalidate(&self, host_id: i64) {
        let mut entries = self.lock();
        let entry = entries.entry(host_id).or_default();
        *entry = HostEntry {
            generation: entry.generation + 1,
            newest: entry.newest.take(),
            disk_trend: entry.disk_trend.take(),
            ..Default::default()
        };
    }

    /// Drops every host's threshold rules (a fleet-wide rule changed); nothing else.
    pub fn invalidate_rules(&self) {
        for entry in self.lock().values_mut() {
            entry.generation += 1;
            entry.rules = None;
        }
    }

    /// Forgets every host, newest snapshots too (another node may have polled them since),
    /// keeping the invalidation counts.
    pub fn invalidate_all(&self) {
        for entry in self.lock().values_mut() {
            *entry = HostEntry {
                generation: entry.generation + 1,
                ..Default::default()
            };
        }
    }

    /// Forgets a deleted host, its newest snapshot too. What is left is its invalidation
    /// count, so a read that began before the deletion is not cached under its id (which a new
    /// host may be given).
    pub fn forget(&self, host_id: i64) {
        let mut entries = self.lock();
        let entry = entries.entry(host_id).or_default();
        *entry = HostEntry {
            generation: entry.generation + 1,
            ..Default::default()
        };
    }

    /// Every host's newest snapshot with its counters (when in memory), for the shutdown flush.
    pub fn newest_all(&self) -> Vec<(i64, Newest, Option<Counters>)> {
        self.lock()
            .iter()
            .filter_map(|(id, e)| Some((*id, e.newest.clone()?, e.counters.clone())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn newest(at: i64) -> Newest {
        Newest {
            polled_at: at,
            taken_at: at + 5,
            snapshot_json: Arc::from("{}"),
            row_written_at: None,
        }
    }

    #[test]
    fn invalidation_keeps_only_the_newest_snapshot() {
        let cache = HostCache::default();
        cache.update(1, |e| {
            e.counters = Some(Counters::default());
            e.key_seen = Some(("SHA256:x".into(), Instant::now()));
            e.newest = Some(newest(10));
        });
        cache.update(2, |e| e.counters = Some(Counters::default()));
        cache.invalidate(1);
        cache.invalidate(2);
        cache.read(1, |e| {
            assert!(e.counters.is_none() && e.key_seen.is_none());
            assert_eq!(e.newest.as_ref().map(|n| n.taken_at), Some(15));
        });
        assert_eq!(cache.newest_all().len(), 1);
        cache.forget(1);
        assert!(cache.newest_all().is_empty());
        cache.update_existing(3, |e| e.newest = Some(newest(1)));
        assert!(
            !cache.lock().contains_key(&3),
            "no entry is made for an unknown host"
        );
    }

    #[test]
    fn rows_read_before_an_invalidation_are_not_kept() {
        let cache = HostCache::default();
        let before = cache.generation(4);
        let other = cache.generation(5);
        cache.invalidate(4);
        cache.update_unless_invalidated(4, before, |e| e.counters = Some(Counters::default()));
        cache.read(4, |e| assert!(e.counters.is_none()));
        // Another host's invalidation does not hold this one's back.
        cache.update_unless_invalidated(5, other, |e| e.counters = Some(Counters::default()));
        cache.read(5, |e| assert!(e.counters.is_some()));
        let now = cache.generation(4);
        cache.update_unless_invalidated(4, now, |e| e.counters = Some(Counters::default()));
        cache.read(4, |e| assert!(e.counters.is_some()));
    }
}
