//! An error with its sources on one line, `outer: cause: root cause`: how Kasane's libraries
//! write an error into a log line or an answer (the binaries use `anyhow`'s `{:#}`, which
//! reads the same; std's `Report` is not stable yet).
//!
//! ```
//! use kasane_os::report::Chain;
//! let e = std::io::Error::other("disk gone");
//! assert_eq!(Chain(&e).to_string(), "disk gone");
//! ```

use std::error::Error;
use std::fmt;

/// Displays an error and each of its sources, joined by `: `.
#[derive(Debug, Clone, Copy)]
pub struct Chain<'a>(pub &'a dyn Error);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
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
}
