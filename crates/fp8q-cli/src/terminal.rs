//! How the CLI shows a library run's events: notes on stderr, stages and downloads as
//! progress bars.

use fp8q_ptq::run::Event;

/// Draws a run's events on stderr: notes as lines, stages and downloads as
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
    pub fn show(&mut self, event: fp8q_ptq::run::Event<'_>) {
        match event {
            Event::Note(text) => match &self.bar {
                Some(bar) => bar.suspend(|| eprintln!("{text}")),
                None => eprintln!("{text}"),
            },
            Event::Begin { stage, total } => {
                self.finish();
                self.bar = Some(self.new_bar(
                    Some(total),
                    &format!(
                        "{{msg}} [{{bar:30}}] {{pos}}/{{len}} {}  {{per_sec}}  eta {{eta}}",
                        stage.unit()
                    ),
                    stage.label(),
                ));
            }
            Event::Advance { done } => {
                if let Some(bar) = &self.bar {
                    bar.inc(done);
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
