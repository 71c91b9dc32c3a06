//! Printing for humans: tables, sizes, durations, errors with hints.

use verse_api::ClientError;

/// Prints an error the way a user can act on it: what, where, and a hint.
pub fn report(error: &anyhow::Error) {
    if let Some(ClientError::Api { body, .. }) = error.downcast_ref::<ClientError>() {
        if body.diagnostics.is_empty() {
            eprintln!("error: {}", body.error);
        } else {
            for d in &body.diagnostics {
                eprintln!("{}:{}:{}: {}", d.file, d.line, d.column, d.message);
            }
        }
        for change in &body.changes {
            eprintln!("  {:<8} {}  {}", change.kind, change.path, change.detail);
        }
        if let Some(hint) = &body.hint {
            eprintln!("hint: {hint}");
        }
        return;
    }
    eprintln!("error: {error}");
    for cause in error.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
}

/// A plain left-aligned table.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        println!("{}", out.trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n}B")
    } else if value >= 10.0 {
        format!("{value:.0}{}", UNITS[unit])
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

pub fn duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 86400 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
    }
}

pub fn json<T: serde::Serialize>(value: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("serialisable")
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_and_durations_read_naturally() {
        assert_eq!(super::bytes(512), "512B");
        assert_eq!(super::bytes(512 * 1024 * 1024), "512MiB");
        assert_eq!(super::bytes(1536), "1.5KiB");
        assert_eq!(super::duration(75), "1m15s");
        assert_eq!(super::duration(7300), "2h1m");
    }
}
