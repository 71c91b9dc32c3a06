//! Diagnostics: every problem in a spec, with the position it was found at.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One problem in a spec file.
///
/// `line` and `column` are 1-based; `column` counts characters (not bytes).
/// Both are 0 when the problem has no position (the file could not be read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecError {
    /// The file name as given to [`crate::parse_str`] or [`crate::load`].
    pub file: String,
    /// 1-based line, 0 when unknown.
    pub line: usize,
    /// 1-based column in characters, 0 when unknown.
    pub column: usize,
    /// What is wrong and what would be right; no position prefix.
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        }
    }
}

impl std::error::Error for SpecError {}

/// All the problems found in a spec, in source order. Never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(transparent)]
pub struct SpecErrors {
    /// The individual diagnostics, sorted by position.
    pub errors: Vec<SpecError>,
}

impl SpecErrors {
    /// Number of diagnostics.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// True when there are no diagnostics (never the case for a returned error).
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Iterate over the diagnostics.
    pub fn iter(&self) -> std::slice::Iter<'_, SpecError> {
        self.errors.iter()
    }
}

impl<'a> IntoIterator for &'a SpecErrors {
    type Item = &'a SpecError;
    type IntoIter = std::slice::Iter<'a, SpecError>;
    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}

impl fmt::Display for SpecErrors {
    /// One diagnostic per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Maps byte offsets in a source text to 1-based line and character columns.
pub(crate) struct LineIndex<'s> {
    source: &'s str,
    line_starts: Vec<usize>,
}

impl<'s> LineIndex<'s> {
    pub(crate) fn new(source: &'s str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex {
            source,
            line_starts,
        }
    }

    /// 1-based (line, column) of a byte offset; offsets past the end clamp to the end.
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.source.len());
        while !self.source.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        let column = self.source[start..offset].chars().count() + 1;
        (line + 1, column)
    }
}

/// Collects diagnostics while walking a document.
pub(crate) struct Diagnostics<'s> {
    file: String,
    index: LineIndex<'s>,
    found: Vec<(usize, SpecError)>,
}

impl<'s> Diagnostics<'s> {
    pub(crate) fn new(file: &str, source: &'s str) -> Self {
        Diagnostics {
            file: file.to_string(),
            index: LineIndex::new(source),
            found: Vec::new(),
        }
    }

    /// Record a problem at byte offset `at`.
    pub(crate) fn error(&mut self, at: usize, message: impl Into<String>) {
        let (line, column) = self.index.position(at);
        self.found.push((
            at,
            SpecError {
                file: self.file.clone(),
                line,
                column,
                message: message.into(),
            },
        ));
    }

    pub(crate) fn len(&self) -> usize {
        self.found.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// The diagnostics sorted by position (stable, so same-position errors keep their order).
    pub(crate) fn finish(mut self) -> SpecErrors {
        self.found.sort_by_key(|(at, _)| *at);
        SpecErrors {
            errors: self.found.into_iter().map(|(_, e)| e).collect(),
        }
    }
}
