//! Exit codes by class of failure (listed in `kasane --help`), and the one-line report.

use std::process::ExitCode;

/// What kind of failure, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// Anything not below (1).
    Other,
    /// Configuration or a local file: config, `--ca`, `--root`, `--card`, state dir (3).
    Config,
    /// Reaching or trusting the host: connection, TLS, registry, module (4).
    Connect,
    /// The login was refused (5).
    Login,
    /// Messaging after login (6).
    Message,
}

impl Class {
    fn code(self) -> u8 {
        match self {
            Class::Other => 1,
            Class::Config => 3,
            Class::Connect => 4,
            Class::Login => 5,
            Class::Message => 6,
        }
    }
}

/// A failure: its class and the whole cause chain.
#[derive(Debug)]
pub(crate) struct Failure {
    class: Class,
    error: anyhow::Error,
}

impl Failure {
    pub(crate) fn new(class: Class, error: anyhow::Error) -> Self {
        Self { class, error }
    }

    /// The cause chain on one line, nothing said twice ([`kasane_os::report::Chain`]).
    /// Whether the host refused the login (exit 5): trying again would not help.
    pub(crate) fn is_login_refusal(&self) -> bool {
        matches!(self.class, Class::Login)
    }

    pub(crate) fn line(&self) -> String {
        kasane_os::report::Chain(&*self.error).one_line()
    }

    /// Prints `kasane: error: <cause chain>` on one line of stderr; the exit code of the class.
    pub(crate) fn report(self) -> ExitCode {
        eprintln!("kasane: error: {}", self.line());
        ExitCode::from(self.class.code())
    }
}

/// `.or_fail(Class::X)` on any result whose error converts to `anyhow::Error`.
pub(crate) trait OrFail<T> {
    fn or_fail(self, class: Class) -> Result<T, Failure>;
}

impl<T, E: Into<anyhow::Error>> OrFail<T> for Result<T, E> {
    fn or_fail(self, class: Class) -> Result<T, Failure> {
        self.map_err(|e| Failure::new(class, e.into()))
    }
}

/// The class of a library error: a refused login apart from reaching or trusting the host.
pub(crate) fn classify(e: &kasane_client::ClientError) -> Class {
    use kasane_client::ClientError as E;
    match e {
        E::Config(_) | E::Io(_) | E::Input(_) => Class::Config,
        E::PasswordRefused | E::LoginRefused | E::Revoked(_) => Class::Login,
        E::Refused(_) | E::Incoming(_) => Class::Message,
        // Reaching or trusting the host: certificate, connection, time-out, registry,
        // module, host key, confirm, sandbox, protocol; and whatever a later version adds.
        _ => Class::Connect,
    }
}

/// The class of a library error after login (send, inbox): messaging, unless the host
/// could not be reached at all.
pub(crate) fn classify_messaging(e: &kasane_client::ClientError) -> Class {
    use kasane_client::ClientError as E;
    match e {
        E::Connect(_) | E::TimedOut | E::BadCertificate(_) => Class::Connect,
        _ => Class::Message,
    }
}
