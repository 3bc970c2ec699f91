//! How a command fails: the error chain, and the exit code it maps to.

/// A failure, with the exit code it maps to.
pub(crate) enum Failure {
    /// Bad arguments or input: exit 2.
    Usage(anyhow::Error),
    /// A refused module, file or signature: exit 1.
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Failed(e)
    }
}

/// Bad arguments or input (exit 2).
pub(crate) fn usage(e: anyhow::Error) -> Failure {
    Failure::Usage(e)
}

/// The error and its causes on one line, `a: b: c`, nothing said twice
/// ([`kasane_os::report::Chain`]).
pub(crate) fn one_line(e: &anyhow::Error) -> String {
    kasane_os::report::Chain(&**e).one_line()
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[derive(Debug)]
    struct Inner;
    impl std::fmt::Display for Inner {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("bad byte")
        }
    }
    impl std::error::Error for Inner {}

    #[derive(Debug)]
    struct Outer(Inner);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "malformed JSON: {}", self.0)
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn one_line_says_each_cause_once() {
        let e = anyhow::Error::new(Outer(Inner)).context("reading x.json");
        assert_eq!(one_line(&e), "reading x.json: malformed JSON: bad byte");
        let e = anyhow::Error::new(Inner).context("line one\nline two");
        assert_eq!(one_line(&e), "line one line two: bad byte");
    }
}
