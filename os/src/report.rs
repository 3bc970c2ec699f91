//! An error with its sources on one line, `outer: cause: root cause`: how Kasane's libraries
//! write an error into a log line or an answer, and its binaries print a failure (an
//! `anyhow::Error` as `Chain(err.as_ref())`; std's `Report` is not stable yet).
//!
//! ```
//! use kasane_os::report::Chain;
//! let e = std::io::Error::other("disk gone");
//! assert_eq!(Chain(&e).to_string(), "disk gone");
//! ```

use std::error::Error;
use std::fmt;

/// Displays an error and each of its sources, joined by `: `. A source whose text the error
/// before it already shows (one that prints its cause inline, like `malformed JSON: {0}`,
/// and also returns it from `source()`) is left out, so nothing is said twice.
#[derive(Debug, Clone, Copy)]
pub struct Chain<'a>(pub &'a dyn Error);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut previous = self.0.to_string();
        f.write_str(&previous)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            let text = s.to_string();
            if !previous.contains(&text) {
                write!(f, ": {text}")?;
            }
            previous = text;
            source = s.source();
        }
        Ok(())
    }
}

impl Chain<'_> {
    /// The chain as one line (a message's own line breaks become spaces), for a binary's
    /// one-line failure report.
    #[must_use]
    pub fn one_line(self) -> String {
        self.to_string().replace('\n', " ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("outer")
        }
    }

    impl Error for Outer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn every_source_is_written_in_order() {
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(Chain(&e).to_string(), "outer: inner");
    }

    /// Prints its cause inline and returns it from `source()` too.
    #[derive(Debug)]
    struct Inline(Outer);

    impl fmt::Display for Inline {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "inline: {}", self.0)
        }
    }

    impl Error for Inline {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_source_its_parent_shows_is_not_written_again() {
        let e = Inline(Outer(std::io::Error::other("inner")));
        assert_eq!(Chain(&e).to_string(), "inline: outer: inner");
    }
}
