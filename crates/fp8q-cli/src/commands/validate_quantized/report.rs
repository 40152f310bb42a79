//! How `validate-quantized` shows a run: progress bars and notes on stderr, the logits as `.npy`.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use fp8q_nn::run::Event;

/// A float32 `[rows, cols]` array in NumPy's .npy format (version 1.0, little endian).
pub fn write_npy(path: &Path, data: &[f32], rows: usize, cols: usize) -> anyhow::Result<()> {
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // magic (6) + version (2) + length (2) + header + '\n' must be a multiple of 64
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat(total.div_ceil(64) * 64 - total));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::File::create(path)
        .and_then(|mut f| f.write_all(&out))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Draws a run's events on stderr: notes as `note`-less lines, stages and downloads as
/// progress bars (hidden when `shown` is false).
pub struct Terminal {
    shown: bool,
    bar: Option<indicatif::ProgressBar>,
}

impl Terminal {
    /// A terminal view, with or without progress bars.
    pub fn new(shown: bool) -> Self {
        Terminal { shown, bar: None }
    }

    /// Show one event.
    pub fn show(&mut self, event: fp8q_nn::run::Event<'_>) {
        match event {
            Event::Note(text) => match &self.bar {
                Some(bar) => bar.suspend(|| eprintln!("{text}")),
                None => eprintln!("{text}"),
            },
            Event::Begin { stage, images } => {
                self.finish();
                self.bar = Some(self.new_bar(
                    Some(images),
                    "{msg} [{bar:30}] {pos}/{len} images  {per_sec}  eta {eta}",
                    stage.label(),
                ));
            }
            Event::Advance { images } => {
                if let Some(bar) = &self.bar {
                    bar.inc(images);
                }
            }
            Event::End => self.finish(),
            Event::Download { url, done, total } => {
                if self.bar.is_none() {
                    eprintln!("downloading {url}");
                    self.bar = Some(self.new_bar(
                        total,
                        "downloading [{bar:30}] {bytes}/{total_bytes}  {bytes_per_sec}  eta {eta}",
                        "",
                    ));
                }
                if let Some(bar) = &self.bar {
                    bar.set_position(done);
                }
            }
            Event::Downloaded(path) => {
                self.finish();
                eprintln!("saved {}", path.display());
            }
        }
    }

    fn new_bar(&self, len: Option<u64>, template: &str, msg: &str) -> indicatif::ProgressBar {
        if !self.shown {
            return indicatif::ProgressBar::hidden();
        }
        let bar = match len {
            Some(n) => indicatif::ProgressBar::new(n),
            None => indicatif::ProgressBar::new_spinner(),
        };
        let style = indicatif::ProgressStyle::with_template(template)
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_message(msg.to_string());
        bar
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.finish();
    }
}
