//! One batch being loaded, image by image.
//!
//! The loading pool's idle-priority threads claim images ahead of time ([`Pending::work`]). When
//! the consumer needs the batch first, its own threads claim what is left and then load again
//! the images a pool thread is still on ([`Pending::finish_here`]): on a machine busy with other
//! work an idle-priority thread may not run for a long time, and the consumer must not wait for
//! it. Each image is loaded into a per-thread buffer and copied into its slot of the batch by
//! the first thread to finish it (a copy costs about 4% of a JPEG's decode).

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::cache::ImageCache;
use super::transform::Transform;
use crate::error::{ImageError, Result};
use fp8q_tensors::feature_map::FeatureMap;

/// The sample list and how to load, shared by every batch of one loader.
pub(crate) struct Source {
    pub samples: Vec<(PathBuf, usize)>,
    pub transform: Transform,
    pub cache: Option<std::sync::Arc<ImageCache>>,
    pub skip_bad_images: bool,
    /// Loads so far and their total time, for [`Source::grace`].
    pub stats: LoadTimes,
}

/// How long loads take, on average.
#[derive(Default)]
pub(crate) struct LoadTimes {
    count: AtomicU64,
    nanos: AtomicU64,
}

impl Source {
    fn per_image(&self) -> usize {
        let size = self.transform.size();
        3 * size * size
    }

    /// How long to wait for an image a pool thread is on before loading it again: three times
    /// the mean load time so far, plus a millisecond.
    pub fn grace(&self) -> Duration {
        let count = self.stats.count.load(Ordering::Relaxed).max(1);
        let mean = self.stats.nanos.load(Ordering::Relaxed) / count;
        Duration::from_nanos(3 * mean + 1_000_000)
    }

    /// Load sample `i` into `out`, and count the time; `Some(hit)` when the cache was consulted.
    /// `looked(hit)` is called as soon as the cache has answered, before the image is loaded
    /// and stored.
    fn load(&self, i: usize, out: &mut [f32], looked: &dyn Fn(bool)) -> Result<Option<bool>> {
        let start = Instant::now();
        let r = self.load_uncounted(i, out, looked);
        let nanos = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.stats.count.fetch_add(1, Ordering::Relaxed);
        self.stats.nanos.fetch_add(nanos, Ordering::Relaxed);
        r
    }

    /// Load sample `i` into `out`, from the cache when it has it; `Some(hit)` when the cache
    /// was consulted (the caller counts it once the image has its slot).
    fn load_uncounted(&self, i: usize, out: &mut [f32], on_lookup: &dyn Fn(bool)) -> Result<Option<bool>> {
        let path = &self.samples[i].0;
        let Some(cache) = &self.cache else {
            self.transform.load(path, i as u64, out)?;
            return Ok(None);
        };
        let looked = cache.lookup(path, &self.transform, out);
        if let Some(hit) = looked {
            on_lookup(hit);
        }
        if looked == Some(true) {
            return Ok(looked);
        }
        self.transform.load(path, i as u64, out)?;
        cache.store(path, &self.transform, out);
        Ok(looked)
    }
}

/// One batch of the loader, loaded image by image.
pub(crate) struct Pending {
    /// Indices into the sample list, in batch order.
    chunk: Vec<usize>,
    /// The next image to claim.
    next: AtomicUsize,
    /// No further claims (the loader is gone or has failed).
    cancelled: AtomicBool,
    done: Mutex<Done>,
    all_done: Condvar,
}

struct Done {
    /// The batch's images, slot `k` at `k * per_image`; written only under the lock.
    data: Vec<f32>,
    count: usize,
    results: Vec<Option<Result<()>>>,
    /// Image `k` is being loaded again by the consumer.
    again: Vec<bool>,
    /// What the cache said to the first load of image `k` that asked it: the slot's count. A
    /// second load (the consumer taking over a stalled claim) may find the image the first one
    /// stored in the meantime, and finish first; the image was still not in the cache when its
    /// slot began loading.
    first_look: Vec<Option<bool>>,
    /// The batch has been assembled (and `data`, `results` taken out).
    taken: bool,
}

thread_local! {
    /// Where this thread loads an image before it is copied into its slot.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Pending {
    pub fn new(chunk: Vec<usize>, source: &Source) -> Self {
        let n = chunk.len();
        Pending {
            next: AtomicUsize::new(0),
            cancelled: AtomicBool::new(false),
            done: Mutex::new(Done {
                data: vec![0f32; n * source.per_image()],
                count: 0,
                results: (0..n).map(|_| None).collect(),
                again: vec![false; n],
                first_look: vec![None; n],
                taken: false,
            }),
            all_done: Condvar::new(),
            chunk,
        }
    }

    /// Claim and load images until none is left to claim; returns how many this call loaded.
    pub fn work(&self, source: &Source) -> usize {
        let mut loaded = 0;
        while let Some(k) = self.claim() {
            self.load_one(k, source);
            loaded += 1;
        }
        loaded
    }

    /// Stop handing out images (those being loaded finish).
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    fn claim(&self) -> Option<usize> {
        if self.cancelled.load(Ordering::Relaxed) {
            return None;
        }
        let k = self.next.fetch_add(1, Ordering::Relaxed);
        (k < self.chunk.len()).then_some(k)
    }

    /// Load image `k` and, unless another thread finished it first, put it in its slot.
    fn load_one(&self, k: usize, source: &Source) {
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut buf) => self.load_via(k, source, &mut buf),
            // only if loading ever re-entered this thread's loading (it does not today)
            Err(_) => self.load_via(k, source, &mut Vec::new()),
        })
    }

    /// Keep the cache's first answer for image `k`.
    fn note_lookup(&self, k: usize, hit: bool) {
        let mut done = lock(&self.done);
        if done.first_look[k].is_none() {
            done.first_look[k] = Some(hit);
        }
    }

    fn load_via(&self, k: usize, source: &Source, buf: &mut Vec<f32>) {
        let per_image = source.per_image();
        let i = self.chunk[k];
        buf.resize(per_image, 0.0);
        let looked = |hit: bool| self.note_lookup(k, hit);
        let result = catch_unwind(AssertUnwindSafe(|| source.load(i, buf, &looked))).unwrap_or_else(|_| {
            Err(ImageError::BadImage {
                path: source.samples[i].0.clone(),
                why: "the decoder panicked".into(),
            })
        });
        let mut done = lock(&self.done);
        if done.taken || done.results[k].is_some() {
            return; // loaded again elsewhere, and finished there first
        }
        let result = match result {
            Ok(_) => {
                done.data[k * per_image..(k + 1) * per_image].copy_from_slice(buf);
                // counted once per slot, when it is filled, as the slot's first lookup answered
                if let (Some(hit), Some(cache)) = (done.first_look[k], &source.cache) {
                    cache.count(hit);
                }
                Ok(())
            }
            Err(e) => Err(e),
        };
        done.results[k] = Some(result);
        done.count += 1;
        if done.count == self.chunk.len() {
            self.all_done.notify_all();
        }
    }

    /// Wait up to `limit` for every image to be finished; true if they all are.
    pub fn wait_all(&self, limit: Duration) -> bool {
        let done = lock(&self.done);
        let (done, _) = self
            .all_done
            .wait_timeout_while(done, limit, |d| d.count < self.chunk.len())
            .unwrap_or_else(PoisonError::into_inner);
        done.count == self.chunk.len()
    }

    /// Load, on the calling thread, the images that are claimed but not finished and that no
    /// other consumer thread is loading again; returns how many.
    pub fn load_unfinished(&self, source: &Source) -> usize {
        let mut loaded = 0;
        loop {
            let k = {
                let mut done = lock(&self.done);
                let claimed = self.next.load(Ordering::Relaxed).min(self.chunk.len());
                let open = |k: usize| !done.taken && done.results[k].is_none() && !done.again[k];
                let Some(k) = (0..claimed).find(|&k| open(k)) else {
                    return loaded;
                };
                done.again[k] = true;
                k
            };
            self.load_one(k, source);
            loaded += 1;
        }
    }

    /// Wait until every image is loaded (the caller has claimed and loaded again what was left),
    /// then assemble the batch: skipped images leave no gap, and the first error fails the batch unless bad images
    /// are skipped.
    pub fn finish(&self, source: &Source) -> Result<super::loader::Batch> {
        let mut done = lock(&self.done);
        while done.count < self.chunk.len() {
            done = self.all_done.wait(done).unwrap_or_else(PoisonError::into_inner);
        }
        done.taken = true;
        let results = std::mem::take(&mut done.results);
        let mut data = std::mem::take(&mut done.data);
        drop(done);
        let per_image = source.per_image();
        let mut labels = Vec::with_capacity(self.chunk.len());
        let mut indices = Vec::with_capacity(self.chunk.len());
        let mut skipped = Vec::new();
        for (slot, (&i, r)) in self.chunk.iter().zip(results).enumerate() {
            match r.expect("every image has a result once all are done") {
                Ok(()) => {
                    // close the gaps left by skipped images
                    let kept = labels.len();
                    if kept != slot {
                        data.copy_within(slot * per_image..(slot + 1) * per_image, kept * per_image);
                    }
                    labels.push(source.samples[i].1);
                    indices.push(i);
                }
                Err(e) if source.skip_bad_images => skipped.push((source.samples[i].0.clone(), e.to_string())),
                Err(e) => return Err(e),
            }
        }
        data.truncate(labels.len() * per_image);
        let size = source.transform.size();
        let n = labels.len();
        let images = FeatureMap::from_vec(data, n, 3, size, size)?;
        Ok(super::loader::Batch {
            images,
            labels,
            indices,
            skipped,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resize::Filter;

    fn source(tag: &str, greys: &[Option<u8>]) -> (std::path::PathBuf, Source) {
        let dir = std::env::temp_dir().join(format!("fp8q_pending_{tag}_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let samples = greys
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let path = dir.join(format!("{i}.png"));
                match g {
                    Some(v) => image::RgbImage::from_pixel(10, 10, image::Rgb([*v; 3]))
                        .save(&path)
                        .unwrap(),
                    None => std::fs::write(&path, b"not an image").unwrap(),
                }
                (path, i)
            })
            .collect();
        let transform = Transform::Val {
            size: 4,
            filter: Filter::Bilinear,
        };
        let src = Source {
            samples,
            transform,
            cache: None,
            skip_bad_images: false,
            stats: LoadTimes::default(),
        };
        (dir, src)
    }

    fn red(batch: &super::super::loader::Batch, k: usize) -> f32 {
        batch.images.data[k * 48]
    }

    /// Images a pool thread claimed but never finished are loaded again by the consumer, and a
    /// pool thread that finishes after the batch was assembled changes nothing.
    #[test]
    fn unfinished_claims_are_loaded_again() {
        let (dir, src) = source("again", &[Some(10), Some(20), Some(30), Some(40)]);
        let p = Pending::new(vec![0, 1, 2, 3], &src);
        // a stalled pool thread: claims images 0 and 1, finishes neither
        assert_eq!((p.claim(), p.claim()), (Some(0), Some(1)));
        assert_eq!(p.work(&src), 2); // the consumer: images 2 and 3
        assert!(!p.wait_all(Duration::from_millis(1)));
        assert_eq!(p.load_unfinished(&src), 2); // and 0 and 1 again
        assert!(p.wait_all(Duration::ZERO));
        let b = p.finish(&src).unwrap();
        assert_eq!(b.labels, vec![0, 1, 2, 3]);
        for (k, v) in [10.0f32, 20.0, 30.0, 40.0].into_iter().enumerate() {
            assert_eq!(red(&b, k), (v / 255.0 - 0.485) / 0.229, "image {k}");
        }
        // the stalled thread wakes up and finishes image 0 late
        p.load_one(0, &src);
        assert_eq!(p.load_unfinished(&src), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A cancelled batch hands out no more images; a failed image fails the batch.
    #[test]
    fn cancel_and_failure() {
        let (dir, src) = source("cancel", &[Some(1), None]);
        let p = Pending::new(vec![0, 1], &src);
        p.cancel();
        assert_eq!(p.work(&src), 0);
        let p = Pending::new(vec![0, 1], &src);
        assert_eq!(p.work(&src), 2);
        let err = p.finish(&src).unwrap_err().to_string();
        assert!(err.contains("1.png"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// With a cache, each image's slot counts one lookup, however many threads loaded it: the
    /// sweep's "hits, misses" line does not depend on which thread won a race.
    #[test]
    fn a_twice_loaded_image_counts_once() {
        let (dir, mut src) = source("count", &[Some(10), Some(20)]);
        let cache = ImageCache::with_mib(1);
        src.cache = Some(cache.clone());
        for pass in 1..=2u64 {
            let p = Pending::new(vec![0, 1], &src);
            assert_eq!(p.claim(), Some(0)); // a pool thread claims image 0 and stalls
            assert_eq!(p.work(&src), 1);
            assert_eq!(p.load_unfinished(&src), 1);
            p.load_one(0, &src); // and finishes it late
            p.finish(&src).unwrap();
            p.load_one(1, &src); // a load after the batch was taken
            let expected = if pass == 1 { (0, 2) } else { (2, 2) };
            assert_eq!(cache.hits_and_misses(), expected, "pass {pass}");
        }
        // a pool thread asks the cache first (a miss) and is still loading when the consumer's
        // load finds the image it stored and fills the slot: the slot counts the miss
        let p = Pending::new(vec![0], &src);
        p.note_lookup(0, false);
        p.load_one(0, &src);
        p.finish(&src).unwrap();
        assert_eq!(cache.hits_and_misses(), (2, 3));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
