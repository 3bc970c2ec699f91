//! The password and challenge answers: prompted on the terminal without echo (`rpassword`
//! reads `/dev/tty` with echo off), or, for scripts, the password from standard input's
//! first line and the answers from a code card file.

use std::io::BufRead;

use anyhow::{Context, anyhow};
use kasane_client::{CardResponder, ClientError, InputError, Responder};
use kasane_protocol::card::CodeCard;
use zeroize::Zeroizing;

use crate::fail::{Class, Failure, OrFail};
use crate::settings::Settings;

/// Asks on the terminal, without echo: the password unless given, each challenge shown.
pub(crate) struct TtyResponder {
    password: Option<Zeroizing<String>>,
}

fn prompt(text: &str) -> Result<Zeroizing<String>, ClientError> {
    let line = Zeroizing::new(rpassword::prompt_password(text).map_err(|source| {
        ClientError::Input(InputError::Read {
            what: "no terminal to ask on: give --password-stdin, and --card for the challenges",
            source,
        })
    })?);
    Ok(Zeroizing::new(
        line.trim_end_matches(['\r', '\n']).to_owned(),
    ))
}

impl Responder for TtyResponder {
    fn password(&mut self, user: &str) -> Result<Zeroizing<String>, ClientError> {
        match self.password.take() {
            Some(p) => Ok(p),
            None => prompt(&format!("Password for {user}: ")),
        }
    }

    fn answer(&mut self, prompt_text: &str) -> Result<Zeroizing<String>, ClientError> {
        prompt(&format!("Challenge {prompt_text}: "))
    }
}

/// The new password for `kasane passwd`: standard input's next line with `--password-stdin`,
/// else asked twice on the terminal (the two must match).
pub(crate) fn new_password(s: &Settings) -> Result<Zeroizing<String>, Failure> {
    let pw = if s.password_stdin {
        password_from_stdin()?
    } else {
        let a = prompt("New password: ").or_fail(Class::Config)?;
        let b = prompt("New password again: ").or_fail(Class::Config)?;
        if a != b {
            return Err(Failure::new(
                Class::Config,
                anyhow!("the new passwords differ"),
            ));
        }
        a
    };
    if pw.is_empty() || pw.len() > kasane_protocol::wire::MAX_PASSWORD_LEN {
        return Err(Failure::new(
            Class::Config,
            anyhow!(
                "the new password must be 1 to {} bytes",
                kasane_protocol::wire::MAX_PASSWORD_LEN
            ),
        ));
    }
    Ok(pw)
}

/// Reads the first line of standard input as the password (the rest stays for the message).
pub(crate) fn password_from_stdin() -> Result<Zeroizing<String>, Failure> {
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")
        .or_fail(Class::Config)?;
    let pw = Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned());
    if pw.is_empty() {
        return Err(Failure::new(
            Class::Config,
            anyhow!("--password-stdin: the first line of standard input is empty"),
        ));
    }
    Ok(pw)
}

/// What a login answers with, kept for logging in again (`kasane proxy` after the host's
/// time-out): the password (zeroizing memory) and the card, or the terminal asked again.
pub(crate) enum Credentials {
    /// A code card answers the challenges.
    Card {
        /// The password.
        password: Zeroizing<String>,
        /// The card.
        card: CodeCard,
    },
    /// The terminal answers the challenges (and the password, unless it was given).
    Terminal {
        /// The user.
        user: String,
        /// The password from standard input, if it was given there.
        password: Option<Zeroizing<String>>,
    },
}

impl Credentials {
    /// The user logged in as.
    pub(crate) fn user(&self) -> &str {
        match self {
            Self::Card { card, .. } => &card.user,
            Self::Terminal { user, .. } => user,
        }
    }

    /// A responder for one login.
    pub(crate) fn responder(&self) -> Box<dyn Responder> {
        match self {
            Self::Card { password, card } => {
                let card = CodeCard {
                    user: card.user.clone(),
                    pairs: card.pairs.clone(),
                };
                Box::new(CardResponder::new(password.clone(), card))
            }
            Self::Terminal { password, .. } => Box::new(TtyResponder {
                password: password.clone(),
            }),
        }
    }

    /// The credentials the settings ask for: a card file answers challenges; the password
    /// comes from standard input with `--password-stdin`, else from the terminal. The user
    /// is `--user`, else the card's, else `$USER`.
    pub(crate) fn read(s: &Settings) -> Result<Self, Failure> {
        let password = if s.password_stdin {
            Some(password_from_stdin()?)
        } else {
            None
        };
        match &s.card {
            Some(path) => {
                let card = read_card(path, s.user.as_deref())?;
                let password = match password {
                    Some(p) => p,
                    None => {
                        prompt(&format!("Password for {}: ", card.user)).or_fail(Class::Config)?
                    }
                };
                Ok(Self::Card { password, card })
            }
            None => {
                let user = s
                    .user
                    .clone()
                    .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
                    .ok_or_else(|| anyhow!("no user: give --user NAME"))
                    .or_fail(Class::Config)?;
                Ok(Self::Terminal { user, password })
            }
        }
    }
}

/// The card in `path`, refused if it is not `user`'s (when a user is given).
fn read_card(path: &std::path::Path, user: Option<&str>) -> Result<CodeCard, Failure> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("reading the card file {}", path.display()))
            .or_fail(Class::Config)?,
    );
    let card = CodeCard::from_text(&text)
        .with_context(|| format!("reading the card file {}", path.display()))
        .or_fail(Class::Config)?;
    if let Some(user) = user
        && card.user != user
    {
        return Err(Failure::new(
            Class::Config,
            anyhow!(
                "the card file {} is {}'s, not {user}'s",
                path.display(),
                card.user
            ),
        ));
    }
    Ok(card)
}

/// The user and a responder for one login ([`Credentials::read`]).
pub(crate) fn responder(s: &Settings) -> Result<(String, Box<dyn Responder>), Failure> {
    let c = Credentials::read(s)?;
    Ok((c.user().to_owned(), c.responder()))
}
