//! [`Responder`]: where the password and the challenge answers come from.

use kasane_protocol::card::CodeCard;
use zeroize::Zeroizing;

use crate::{ClientError, InputError};

/// Supplies the password and the answers to the host's prompts during a login.
pub trait Responder: Send {
    /// The password of `user`.
    fn password(&mut self, user: &str) -> Result<Zeroizing<String>, ClientError>;
    /// The answer to one challenge prompt (for a code card: the code in that cell).
    fn answer(&mut self, prompt: &str) -> Result<Zeroizing<String>, ClientError>;
}

/// A [`Responder`] from a password and a code card (non-interactive logins, tests).
pub struct CardResponder {
    password: Zeroizing<String>,
    card: CodeCard,
}

impl CardResponder {
    /// Answers with `password` and the cells of `card`.
    pub fn new(password: Zeroizing<String>, card: CodeCard) -> Self {
        Self { password, card }
    }
}

impl std::fmt::Debug for CardResponder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardResponder").finish_non_exhaustive()
    }
}

impl Responder for CardResponder {
    fn password(&mut self, _user: &str) -> Result<Zeroizing<String>, ClientError> {
        Ok(self.password.clone())
    }

    fn answer(&mut self, prompt: &str) -> Result<Zeroizing<String>, ClientError> {
        self.card
            .response(prompt)
            .map(|code| Zeroizing::new(code.to_owned()))
            .ok_or_else(|| {
                InputError::NoCell {
                    prompt: prompt.to_owned(),
                }
                .into()
            })
    }
}
