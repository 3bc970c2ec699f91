//! How a login and a time are shown to a person: the same lines in `kasane` and in
//! `kasane-demo`, so what a login ran (transform, hash, signer, cache) is reported one way.

use crate::LoginReport;

impl LoginReport {
    /// The lines that say what this login ran, each prefixed with `indent`.
    pub fn lines(&self, indent: &str) -> Vec<String> {
        let prompts = if self.prompts.is_empty() {
            "none".to_owned()
        } else {
            self.prompts.join(", ")
        };
        let cache = if self.from_cache {
            "yes"
        } else {
            "no (downloaded and verified)"
        };
        vec![
            format!("{indent}logged in as {}", self.user),
            format!(
                "{indent}transform: {} (sha256 {})",
                self.transform,
                hex::encode(self.sha256)
            ),
            format!("{indent}signed by: {}", self.signed_by),
            format!("{indent}module from cache: {cache}"),
            format!(
                "{indent}access counter: {}; challenges asked: {prompts}; fuel used: {}",
                self.counter, self.fuel_used
            ),
        ]
    }
}

/// `secs` (unix time) as `YYYY-MM-DD hh:mm:ss UTC`, without a time-zone database.
pub fn utc(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
    }
}
