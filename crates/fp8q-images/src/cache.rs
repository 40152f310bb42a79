//! Decoded and transformed images kept in memory across runs (`fp8q sweep --all --cache-mb`).
//!
//! The validation transform is deterministic, so the normalized CHW values of an image depend on
//! its file and the transform alone: a sweep that evaluates many configurations on the same
//! validation list decodes each image once while the cache has room, and copies the values out
//! afterwards. Images are kept first come, first kept, until the byte budget is spent (nothing
//! is evicted: in a sweep every run reads the list in the same order, so the images that fit
//! are always the first ones). The random training transform is never cached.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::transform::Transform;

/// What identifies a cached image: its file and the deterministic transform (its debug form,
/// which names the size and filter).
type Key = (PathBuf, String);

/// A shared, bounded store of transformed images.
#[derive(Debug)]
pub struct ImageCache {
    budget: usize,
    inner: Mutex<Inner>,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Debug, Default)]
struct Inner {
    used: usize,
    images: HashMap<Key, Arc<[f32]>>,
}

impl ImageCache {
    /// A cache holding at most `budget_bytes` of image values.
    pub fn new(budget_bytes: usize) -> Arc<Self> {
        Arc::new(ImageCache {
            budget: budget_bytes,
            inner: Mutex::new(Inner::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        })
    }

    /// A cache of `mb` mebibytes.
    pub fn with_mib(mb: usize) -> Arc<Self> {
        Self::new(mb.saturating_mul(1 << 20))
    }

    /// The key of `path` under `transform`, or `None` when the transform is random.
    fn key(path: &Path, transform: &Transform) -> Option<Key> {
        match transform {
            Transform::Val { .. } => Some((path.to_path_buf(), format!("{transform:?}"))),
            Transform::Train { .. } => None,
        }
    }

    /// Copy the cached values of `path` under `transform` into `out`; false when absent. The
    /// lookup is counted as a hit or a miss.
    pub fn fetch(&self, path: &Path, transform: &Transform, out: &mut [f32]) -> bool {
        match self.lookup(path, transform, out) {
            Some(hit) => {
                self.count(hit);
                hit
            }
            None => false,
        }
    }

    /// Copy the cached values of `path` under `transform` into `out`, without counting:
    /// `Some(true)` when found, `Some(false)` when absent, `None` when the transform is random
    /// (never cached). The loader counts only the load that fills an image's slot, so that an
    /// image loaded twice (a pool thread and the consumer racing for it) counts once.
    pub fn lookup(&self, path: &Path, transform: &Transform, out: &mut [f32]) -> Option<bool> {
        let key = Self::key(path, transform)?;
        let found = self.lock().images.get(&key).cloned();
        Some(match found {
            Some(v) if v.len() == out.len() => {
                out.copy_from_slice(&v);
                true
            }
            _ => false,
        })
    }

    /// Count one lookup as a hit or a miss.
    pub fn count(&self, hit: bool) {
        let counter = if hit { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Keep a copy of `values` for `path` under `transform`, if it is deterministic and the
    /// budget allows.
    pub fn store(&self, path: &Path, transform: &Transform, values: &[f32]) {
        let Some(key) = Self::key(path, transform) else {
            return;
        };
        let bytes = std::mem::size_of_val(values);
        let mut inner = self.lock();
        if inner.images.contains_key(&key) || inner.used + bytes > self.budget {
            return;
        }
        inner.used += bytes;
        inner.images.insert(key, Arc::from(values));
    }

    /// Bytes held.
    pub fn used_bytes(&self) -> usize {
        self.lock().used
    }

    /// Images held.
    pub fn len(&self) -> usize {
        self.lock().images.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Lookups answered from the cache and lookups that missed.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (self.hits.load(Ordering::Relaxed), self.misses.load(Ordering::Relaxed))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // a panic while holding the lock leaves consistent data (inserts are single calls)
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Filter;

    #[test]
    fn keeps_what_fits_and_only_deterministic_transforms() {
        let cache = ImageCache::new(8 * 4);
        let val = Transform::Val {
            size: 2,
            filter: Filter::Bilinear,
        };
        let other = Transform::Val {
            size: 2,
            filter: Filter::Bicubic,
        };
        let train = Transform::Train {
            size: 2,
            filter: Filter::Bilinear,
            seed: 1,
        };
        let a = [1.0f32, 2.0, 3.0, 4.0];
        cache.store(Path::new("a.png"), &val, &a);
        cache.store(Path::new("b.png"), &train, &a);
        cache.store(Path::new("c.png"), &val, &a);
        cache.store(Path::new("d.png"), &val, &a); // over budget
        assert_eq!((cache.len(), cache.used_bytes()), (2, 32));
        let mut out = [0f32; 4];
        assert!(cache.fetch(Path::new("a.png"), &val, &mut out));
        assert_eq!(out, a);
        assert!(!cache.fetch(Path::new("a.png"), &other, &mut out));
        assert!(!cache.fetch(Path::new("b.png"), &train, &mut out));
        assert!(!cache.fetch(Path::new("d.png"), &val, &mut out));
        assert_eq!(cache.hits_and_misses(), (1, 2));
    }
}
