//! Progress reporting for long operations.

/// Receives progress of a long import: files and content bytes processed so far.
pub trait Progress {
    fn update(&mut self, files_done: u64, bytes_done: u64);
}

impl<F: FnMut(u64, u64)> Progress for F {
    fn update(&mut self, files_done: u64, bytes_done: u64) {
        self(files_done, bytes_done)
    }
}

/// Ignores progress.
pub struct NoProgress;

impl Progress for NoProgress {
    fn update(&mut self, _files_done: u64, _bytes_done: u64) {}
}
