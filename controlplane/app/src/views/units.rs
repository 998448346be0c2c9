//! Sizes and durations as people read them: one formatter shared by the CLI's text
//! output and the console's pages, so both say `0.1 MB` and `1.2s` for the same value.

/// Bytes in megabytes (10^6), one decimal: `0.1 MB`.
pub fn size(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// Milliseconds in seconds, one decimal: `1.2s`.
pub fn seconds(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

/// An uptime in its largest whole unit: `40s`, `12m`, `3h`, `2d`; `-` when unknown.
pub fn uptime(secs: Option<u64>) -> String {
    match secs {
        None => "-".into(),
        Some(s) if s < 120 => format!("{s}s"),
        Some(s) if s < 7200 => format!("{}m", s / 60),
        Some(s) if s < 172_800 => format!("{}h", s / 3600),
        Some(s) => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(size(57_519), "0.1 MB");
        assert_eq!(size(0), "0.0 MB");
        assert_eq!(size(1_234_567_890), "1234.6 MB");
        assert_eq!(seconds(1_234), "1.2s");
        assert_eq!(seconds(0), "0.0s");
        assert_eq!(uptime(None), "-");
        assert_eq!(uptime(Some(119)), "119s");
        assert_eq!(uptime(Some(7_199)), "119m");
        assert_eq!(uptime(Some(172_799)), "47h");
        assert_eq!(uptime(Some(172_800)), "2d");
    }
}
