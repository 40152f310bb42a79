//! One PTQ run as a library call: a [`RunConfig`] value in, a [`RunReport`] value out.
//! `validate-quantized`, `sweep`, `analyze` and the bindings all go through [`run`] (or its
//! steps), so a run means the same thing from every front end.
//!
//! ```no_run
//! use fp8q_nn::models::Architecture;
//! use fp8q_ptq::run::{run, RunConfig};
//! let mut cfg = RunConfig::new(Architecture::Resnet18, "imagenet");
//! cfg.model_dir = Some("resnet18.pth".into());
//! cfg.batch_size = 32;
//! let report = run(&cfg, &mut |_| {}).unwrap();
//! println!("{}", report.summary());
//! ```
//!
//! * [`config`]: the configuration value, its JSON form and data-loader options.
//! * [`events`]: notes and progress reported while running.
//! * [`pipeline`]: the steps and [`run`].
//! * [`report`]: the report value and its JSON form.
//! * [`merge`]: the shards' reports combined into the unsharded run's (`fp8q merge`).
//! * [`store`]: results written through a temporary file and a rename.

pub mod config;
pub mod events;
pub mod merge;
pub mod pipeline;
pub mod report;
pub mod store;

pub use config::{CalibTransform, RunConfig, Shard};
pub use events::{Event, Observer, Stage};
pub use pipeline::{load_model, quantize, reestimate_bn, run, run_with, Quantized, TrainingSet, ValidationSet};
pub use report::{peak_memory_mib, RunReport, Timings};
