//! Calendar time for display: UTC, no time zone database needed.

/// A UTC calendar date and time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    pub year: i64,
    pub month: i64,
    pub day: i64,
    pub hour: i64,
    pub minute: i64,
    pub second: i64,
}

impl Utc {
    /// The calendar time of `unix` seconds since the epoch (Howard Hinnant's
    /// civil-from-days algorithm; exact for every date in the proleptic Gregorian calendar).
    pub fn from_unix(unix: i64) -> Utc {
        let days = unix.div_euclid(86_400);
        let secs = unix.rem_euclid(86_400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        Utc {
            year: yoe + era * 400 + i64::from(month <= 2),
            month,
            day,
            hour: secs / 3600,
            minute: secs % 3600 / 60,
            second: secs % 60,
        }
    }

    /// `YYYY-MM-DD HH:MM:SS`.
    pub fn date_time(&self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

#[cfg(test)]
mod tests {
    use super::Utc;

    #[test]
    fn known_instants_read_right() {
        assert_eq!(Utc::from_unix(0).date_time(), "1970-01-01 00:00:00");
        assert_eq!(
            Utc::from_unix(951_782_400).date_time(),
            "2000-02-29 00:00:00"
        );
        assert_eq!(
            Utc::from_unix(1_795_304_228).date_time(),
            "2026-11-21 23:37:08"
        );
        assert_eq!(Utc::from_unix(-1).date_time(), "1969-12-31 23:59:59");
    }
}
