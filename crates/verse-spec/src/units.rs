//! Sizes and durations as written in `verse.toml`.
//!
//! Sizes: a number (fraction allowed) optionally followed by a unit, with or without a space.
//! Units are case-insensitive. IEC units are powers of 1024, SI units powers of 1000, and a
//! bare letter is the IEC unit (as in systemd and Docker):
//!
//! | unit | bytes |
//! |---|---|
//! | `B` or none | 1 |
//! | `K`, `KiB` | 1024 |
//! | `KB` | 1000 |
//! | `M`, `MiB` | 1024² |
//! | `MB` | 1000² |
//! | `G`, `GiB` | 1024³ |
//! | `GB` | 1000³ |
//! | `T`, `TiB` | 1024⁴ |
//! | `TB` | 1000⁴ |
//!
//! Fractional sizes are rounded down to whole bytes (`"1.5KiB"` is 1536).
//!
//! Durations: a number (fraction allowed) followed by `ms`, `s`, `m` or `h`.

/// The size units accepted, for messages.
pub const SIZE_UNITS: &str = "B, KiB, MiB, GiB, TiB, KB, MB, GB, TB";

/// The duration units accepted, for messages.
pub const DURATION_UNITS: &str = "ms, s, m, h";

/// Why a size or duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// The text is not a number followed by a known unit.
    #[error("not a {0}")]
    Malformed(&'static str),
    /// The number is followed by something that is not a unit.
    #[error("unknown unit `{0}`")]
    UnknownUnit(String),
    /// The value does not fit in 64 bits.
    #[error("too large")]
    TooLarge,
}

fn split_number(text: &str) -> Option<(f64, &str)> {
    let text = text.trim();
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(end);
    let digits: String = number.chars().filter(|&c| c != '_').collect();
    if digits.is_empty() || !digits.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let value: f64 = digits.parse().ok()?;
    Some((value, unit.trim_start()))
}

/// Parse a size such as `"512MiB"`, `"2 GB"` or `"1048576"` into bytes.
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let (value, unit) = split_number(text).ok_or(UnitError::Malformed("size"))?;
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "kb" => 1_000,
        "m" | "mib" => 1 << 20,
        "mb" => 1_000_000,
        "g" | "gib" => 1 << 30,
        "gb" => 1_000_000_000,
        "t" | "tib" => 1 << 40,
        "tb" => 1_000_000_000_000,
        _ if unit.chars().all(|c| c.is_ascii_alphabetic()) => {
            return Err(UnitError::UnknownUnit(unit.to_string()));
        }
        _ => return Err(UnitError::Malformed("size")),
    };
    let bytes = value * multiplier as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(UnitError::TooLarge);
    }
    Ok(bytes.floor() as u64)
}

/// Parse a duration such as `"500ms"`, `"10s"`, `"1.5m"` into milliseconds (rounded down).
pub fn parse_duration_ms(text: &str) -> Result<u64, UnitError> {
    let (value, unit) = split_number(text).ok_or(UnitError::Malformed("duration"))?;
    let multiplier: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "" => return Err(UnitError::Malformed("duration")),
        _ if unit.chars().all(|c| c.is_ascii_alphabetic()) => {
            return Err(UnitError::UnknownUnit(unit.to_string()));
        }
        _ => return Err(UnitError::Malformed("duration")),
    };
    let ms = value * multiplier as f64;
    if !ms.is_finite() || ms >= u64::MAX as f64 {
        return Err(UnitError::TooLarge);
    }
    Ok(ms.floor() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("512 mib"), Ok(512 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
        assert_eq!(parse_size("1_000"), Ok(1000));
        assert_eq!(parse_size("7B"), Ok(7));
        assert_eq!(parse_size("1TiB"), Ok(1 << 40));
        assert_eq!(
            parse_size("2 gigs"),
            Err(UnitError::UnknownUnit("gigs".into()))
        );
        assert_eq!(parse_size("lots"), Err(UnitError::Malformed("size")));
        assert_eq!(parse_size(".5G"), Err(UnitError::Malformed("size")));
        assert_eq!(parse_size("1.2.3G"), Err(UnitError::Malformed("size")));
        assert_eq!(parse_size("99999999TiB"), Err(UnitError::TooLarge));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("10s"), Ok(10_000));
        assert_eq!(parse_duration_ms("2m"), Ok(120_000));
        assert_eq!(parse_duration_ms("1.5s"), Ok(1_500));
        assert_eq!(parse_duration_ms("1h"), Ok(3_600_000));
        assert_eq!(
            parse_duration_ms("10"),
            Err(UnitError::Malformed("duration"))
        );
        assert_eq!(
            parse_duration_ms("10 sec"),
            Err(UnitError::UnknownUnit("sec".into()))
        );
    }
}
