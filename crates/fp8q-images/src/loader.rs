//! Batches decoded and transformed ahead of the consumer, so that loading overlaps with the
//! forward pass.
//!
//! The images are decoded on a pool of their own whose threads run at idle priority
//! (`SCHED_IDLE` on Linux): they take the cycles the model leaves (its serial stretches, the ends
//! of its parallel loops) and yield a core the moment the model wants it. Sharing the model's
//! rayon pool instead let a worker that had picked up a 2 ms decode hold up a parallel loop the
//! other worker was waiting on; measured with `examples/end_to_end.rs`, that cost the model about
//! twice the data path's own share (docs/reproduce.md, "The data path").
//!
//! When the consumer asks for a batch the pool has not finished, the consumer's threads load the
//! rest at their own priority (`data/pending.rs`), so on a machine busy with other work
//! the loader is never slower than loading on demand by more than a short wait.
//!
//! ```no_run
//! use fp8q_images::{BatchLoader, ImageFolder, LoaderOptions, Transform};
//! let ds = ImageFolder::open("imagenet/val").unwrap();
//! let loader = BatchLoader::new(&ds, LoaderOptions::new(32, Transform::val()));
//! for batch in loader {
//!     let batch = batch.unwrap();
//!     println!("{} images", batch.labels.len());
//! }
//! ```

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use rayon::prelude::*;

use super::cache::ImageCache;
use super::folder::ImageFolder;
use super::pending::{Pending, Source};
use super::rng::Rng;
use super::transform::Transform;
use crate::error::Result;
use fp8q_tensors::feature_map::FeatureMap;

/// How to load.
#[derive(Debug, Clone)]
pub struct LoaderOptions {
    /// Images per batch (the last batch may be smaller).
    pub batch_size: usize,
    /// The transform.
    pub transform: Transform,
    /// Shuffle the samples with this seed (`None`: dataset order).
    pub shuffle_seed: Option<u64>,
    /// Skip (and report) images that cannot be decoded instead of failing.
    pub skip_bad_images: bool,
    /// Batches prepared ahead of the consumer, on the idle-priority loading pool. With 0, each
    /// batch is loaded when the consumer asks for it, on the caller's rayon pool.
    pub prefetch: usize,
    /// Keep transformed images here and take them from here (deterministic transforms only;
    /// `fp8q sweep --cache-mb`).
    pub cache: Option<Arc<ImageCache>>,
}

impl LoaderOptions {
    /// Dataset order, no skipping, two batches ahead.
    pub fn new(batch_size: usize, transform: Transform) -> Self {
        LoaderOptions {
            batch_size,
            transform,
            shuffle_seed: None,
            skip_bad_images: false,
            prefetch: 2,
            cache: None,
        }
    }
}

/// One batch.
#[derive(Debug)]
pub struct Batch {
    /// `[n, 3, size, size]` normalized images.
    pub images: FeatureMap,
    /// Class index per image.
    pub labels: Vec<usize>,
    /// Index of each image in the dataset's sample list.
    pub indices: Vec<usize>,
    /// Images skipped in this batch (`--skip-bad-images`), with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

/// An iterator of batches loaded ahead on the loading pool.
pub struct BatchLoader {
    source: Arc<Source>,
    /// Sample indices in loading order.
    order: Vec<usize>,
    batch_size: usize,
    prefetch: usize,
    /// Start (in `order`) of the next batch to put in the window.
    next_start: usize,
    /// The next batches, in order: up to `prefetch` of them, being loaded by the loading pool.
    window: VecDeque<Arc<Pending>>,
    /// A batch failed: nothing more is handed out.
    stopped: bool,
    num_batches: usize,
}

impl BatchLoader {
    /// Start loading `dataset` (its sample list is copied).
    pub fn new(dataset: &ImageFolder, opts: LoaderOptions) -> Self {
        let samples = dataset.samples.clone();
        let mut order: Vec<usize> = (0..samples.len()).collect();
        if let Some(seed) = opts.shuffle_seed {
            Rng::new(seed).shuffle(&mut order);
        }
        let batch_size = opts.batch_size.max(1);
        let num_batches = order.len().div_ceil(batch_size);
        let mut loader = BatchLoader {
            source: Arc::new(Source {
                samples,
                transform: opts.transform,
                cache: opts.cache,
                skip_bad_images: opts.skip_bad_images,
                stats: Default::default(),
            }),
            order,
            batch_size,
            prefetch: opts.prefetch,
            next_start: 0,
            window: VecDeque::new(),
            stopped: false,
            num_batches,
        };
        loader.fill_window();
        loader
    }

    /// Number of batches this loader yields (when nothing fails).
    pub fn num_batches(&self) -> usize {
        self.num_batches
    }

    /// Put batches in the window until it holds `prefetch` of them.
    fn fill_window(&mut self) {
        while self.window.len() < self.prefetch && self.push_next() {}
    }

    /// Put the next batch, if any, in the window; with `prefetch` > 0, the loading pool's threads
    /// start on it once they are done with the batches before it.
    fn push_next(&mut self) -> bool {
        if self.next_start >= self.order.len() {
            return false;
        }
        let end = (self.next_start + self.batch_size).min(self.order.len());
        let pending = Arc::new(Pending::new(self.order[self.next_start..end].to_vec(), &self.source));
        if self.prefetch > 0 {
            if let Some(pool) = loading_pool() {
                for _ in 0..pool.current_num_threads().min(end - self.next_start) {
                    let (p, s) = (pending.clone(), self.source.clone());
                    pool.spawn_fifo(move || {
                        p.work(&s);
                    });
                }
            }
        }
        self.next_start = end;
        self.window.push_back(pending);
        true
    }
}

impl Iterator for BatchLoader {
    type Item = Result<Batch>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.stopped || (self.window.is_empty() && !self.push_next()) {
            return None;
        }
        let pending = self.window.pop_front()?;
        self.fill_window();
        // What the loading pool has not finished is loaded now on the caller's threads, at the
        // caller's priority: first the images nobody has started, then again those a pool
        // thread is still on (on a busy machine it may not get a core for a long time).
        let source = &self.source;
        (0..rayon::current_num_threads().max(1)).into_par_iter().for_each(|_| {
            pending.work(source);
            // a pool thread that has a core finishes its image in about the mean load time
            if !pending.wait_all(source.grace()) {
                pending.load_unfinished(source);
            }
        });
        let batch = pending.finish(source);
        if batch.is_err() {
            self.stopped = true;
            self.window.iter().for_each(|p| p.cancel());
        }
        Some(batch)
    }
}

impl Drop for BatchLoader {
    fn drop(&mut self) {
        // the loading pool's threads finish the images they are on and take no more
        self.window.iter().for_each(|p| p.cancel());
    }
}

/// The process's loading pool: as many threads as the global rayon pool, each at idle priority
/// where the system has one. `None` if the threads cannot be started (the caller's pool is used).
fn loading_pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(rayon::current_num_threads())
            .thread_name(|i| format!("fp8q-load-{i}"))
            .start_handler(|_| lower_priority())
            .build()
            .ok()
    })
    .as_ref()
}

/// Run the calling thread only when a core would otherwise be idle. Best effort: where this is
/// refused or unknown, the thread keeps its priority.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: pid 0 is the calling thread; `param` outlives the call.
        let _ = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resize::Filter;

    fn write_png(path: &std::path::Path, w: u32, h: u32, v: u8) {
        let img = image::RgbImage::from_pixel(w, h, image::Rgb([v, v, v]));
        img.save(path).unwrap();
    }

    #[test]
    fn batches_in_order_and_bad_images() {
        let dir = std::env::temp_dir().join(format!("fp8q_loader_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("a")).unwrap();
        std::fs::create_dir_all(dir.join("b")).unwrap();
        write_png(&dir.join("a/1.png"), 20, 30, 0);
        write_png(&dir.join("a/2.png"), 30, 20, 255);
        write_png(&dir.join("b/1.png"), 16, 16, 128);
        std::fs::write(dir.join("b/2.png"), b"not a png at all").unwrap();
        let ds = ImageFolder::open(&dir).unwrap();
        let t = Transform::Val {
            size: 8,
            filter: Filter::Bilinear,
        };

        // ahead on the loading pool, and on demand
        for prefetch in [2, 0] {
            let mut opts = LoaderOptions::new(2, t);
            opts.prefetch = prefetch;
            let mut loader = BatchLoader::new(&ds, opts.clone());
            assert_eq!(loader.num_batches(), 2);
            let b0 = loader.next().unwrap().unwrap();
            assert_eq!(b0.labels, vec![0, 0]);
            assert_eq!(b0.images.dims(), [2, 3, 8, 8]);
            assert_eq!(b0.images.data[0], (0.0 - 0.485) / 0.229);
            assert_eq!(b0.images.data[3 * 64], (1.0 - 0.485) / 0.229);
            let err = loader.next().unwrap().unwrap_err().to_string();
            assert!(err.contains("2.png") && err.contains("cannot decode"), "{err}");
            assert!(loader.next().is_none(), "prefetch {prefetch}");

            opts.skip_bad_images = true;
            let batches: Vec<Batch> = BatchLoader::new(&ds, opts).map(|b| b.unwrap()).collect();
            assert_eq!(batches[1].labels, vec![1]);
            assert_eq!(batches[1].skipped.len(), 1);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A skipped image in the middle of a batch: the images after it move up, intact.
    #[test]
    fn skipped_images_leave_no_gap() {
        let dir = std::env::temp_dir().join(format!("fp8q_loader_gap_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("c")).unwrap();
        std::fs::write(dir.join("c/0.png"), b"broken").unwrap();
        write_png(&dir.join("c/1.png"), 12, 12, 200);
        std::fs::write(dir.join("c/2.png"), b"broken too").unwrap();
        write_png(&dir.join("c/3.png"), 12, 12, 51);
        let ds = ImageFolder::open(&dir).unwrap();
        let mut opts = LoaderOptions::new(
            4,
            Transform::Val {
                size: 8,
                filter: Filter::Bilinear,
            },
        );
        opts.skip_bad_images = true;
        let b = BatchLoader::new(&ds, opts).next().unwrap().unwrap();
        assert_eq!(b.indices, vec![1, 3]);
        assert_eq!(b.skipped.len(), 2);
        assert_eq!(b.images.dims(), [2, 3, 8, 8]);
        // every red-channel value of each image is its grey level, normalized
        let per_image = 3 * 64;
        for (k, v) in [(0, 200.0f32), (1, 51.0)] {
            let red = &b.images.data[k * per_image..k * per_image + 64];
            assert!(
                red.iter().all(|&x| x == (v / 255.0 - 0.485) / 0.229),
                "image {k}: {red:?}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The loading pool's threads run at idle priority (Linux), and only they do.
    #[cfg(target_os = "linux")]
    #[test]
    fn loading_threads_have_idle_priority() {
        let policy = || unsafe { libc::sched_getscheduler(0) };
        let pool = loading_pool().expect("the loading pool starts");
        assert_eq!(pool.install(policy), libc::SCHED_IDLE);
        assert_ne!(policy(), libc::SCHED_IDLE);
    }

    /// With a cache, a second pass takes every image from it, with the same values.
    #[test]
    fn cached_images_are_the_decoded_ones() {
        let dir = std::env::temp_dir().join(format!("fp8q_loader_cache_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("c")).unwrap();
        for (i, v) in [10u8, 90, 170].iter().enumerate() {
            write_png(&dir.join(format!("c/{i}.png")), 9 + i as u32, 12, *v);
        }
        let ds = ImageFolder::open(&dir).unwrap();
        let t = Transform::Val {
            size: 8,
            filter: Filter::Bilinear,
        };
        let plain: Vec<f32> = BatchLoader::new(&ds, LoaderOptions::new(2, t))
            .flat_map(|b| b.unwrap().images.data)
            .collect();
        // on demand, each image is loaded once, so the counts are exact; ahead, an image the
        // consumer loads again while a pool thread is on it counts twice
        for prefetch in [0, 2] {
            let cache = ImageCache::with_mib(1);
            let mut opts = LoaderOptions::new(2, t);
            opts.cache = Some(cache.clone());
            opts.prefetch = prefetch;
            for pass in 0..2 {
                let got: Vec<f32> = BatchLoader::new(&ds, opts.clone())
                    .flat_map(|b| b.unwrap().images.data)
                    .collect();
                assert_eq!(got, plain, "pass {pass}");
            }
            assert_eq!(cache.len(), 3);
            if prefetch == 0 {
                assert_eq!(cache.hits_and_misses(), (3, 3));
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
