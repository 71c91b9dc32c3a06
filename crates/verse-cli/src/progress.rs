//! Progress of long builds and imports: a bar on a terminal (steps, files, bytes), plain
//! lines otherwise, both fed by the daemon's streamed [`ProgressEvent`]s.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use verse_api::ProgressEvent;

use crate::output::bytes;

/// Shows progress events as they arrive.
pub struct Progress {
    bar: Option<ProgressBar>,
    image: String,
}

impl Progress {
    /// A bar when stderr is a terminal; plain lines on stdout otherwise.
    pub fn new() -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{pos}/{len}] {wide_msg} {elapsed}")
                    .expect("a valid template"),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        Progress {
            bar,
            image: String::new(),
        }
    }

    fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => println!("{line}"),
        }
    }

    pub fn event(&mut self, event: &ProgressEvent) {
        match event {
            ProgressEvent::Step {
                image,
                step,
                steps,
                text,
            } => {
                let line = format!("{image} [{step}/{steps}] {text}");
                if let Some(bar) = &self.bar {
                    if *image != self.image {
                        self.image = image.clone();
                    }
                    bar.set_length(*steps as u64);
                    // A step counts as done once it says so (or came from the cache).
                    let done = text.ends_with(": cached")
                        || text.ends_with(": ready")
                        || text.contains(": done");
                    bar.set_position(if done { *step } else { step - 1 } as u64);
                    if !text.contains(": | ") {
                        bar.set_message(format!("{image}: {text}"));
                    }
                }
                self.println(&line);
            }
            ProgressEvent::Line { text } => self.println(text),
            ProgressEvent::Count { files, bytes: b } => match &self.bar {
                Some(bar) => bar.set_message(format!("{files} files, {}", bytes(*b))),
                None => println!("{files} files, {}", bytes(*b)),
            },
            ProgressEvent::Done { .. } | ProgressEvent::Error { .. } => {}
        }
    }

    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
