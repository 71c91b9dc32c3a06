//! Progress of long work (builds, imports) as [`ProgressEvent`]s, which the transport streams.

use verse_api::ProgressEvent;

/// Turns a store's per-file progress into `count` events, a few per second at most.
pub struct Counts<'a> {
    pub emit: &'a mut dyn FnMut(ProgressEvent),
    pub last: std::time::Instant,
}

impl<'a> Counts<'a> {
    pub fn new(emit: &'a mut dyn FnMut(ProgressEvent)) -> Self {
        Counts {
            emit,
            last: std::time::Instant::now(),
        }
    }
}

impl verse_store::Progress for Counts<'_> {
    fn update(&mut self, files: u64, bytes: u64) {
        if self.last.elapsed().as_millis() >= 100 {
            self.last = std::time::Instant::now();
            (self.emit)(ProgressEvent::Count { files, bytes });
        }
    }
}
