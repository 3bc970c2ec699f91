//! Code cards: the challenge → response pairs a user holds, and their text form.
//!
//! `kasane-host user add` issues a card and writes its text (this module's
//! [`CodeCard::to_text`]); the `kasane` client reads the same text back with
//! [`CodeCard::from_text`] to answer the challenges it is shown. One format, one parser, here.
//!
//! The standard card is a grid of [`CARD_COLUMNS`] × [`CARD_ROWS`] prompts (`A1` … `E8`):
//!
//! ```text
//! Kasane code card for alice
//!      A    B    C    D    E
//!   1  KM4Q TX7W HH3R PV9C ...
//! ```
//!
//! A card of custom pairs is one `PROMPT<TAB>RESPONSE` per line under the same title line.
//!
//! ```
//! use kasane_protocol::card::CodeCard;
//! let card = CodeCard::generate("alice");
//! let back = CodeCard::from_text(&card.to_text())?;
//! assert_eq!(back.user, "alice");
//! assert_eq!(back.response("C3"), card.response("C3"));
//! # Ok::<(), kasane_protocol::card::CardError>(())
//! ```

use rand::Rng;
use rand_core::OsRng;
use zeroize::Zeroizing;

use crate::wire::{MAX_PROMPT_LEN, is_user_name};

/// Columns of the standard code card.
pub const CARD_COLUMNS: &str = "ABCDE";
/// Rows of the standard code card.
pub const CARD_ROWS: u32 = 8;
/// The title line's prefix.
pub const TITLE: &str = "Kasane code card for ";
/// Longest card text [`CodeCard::from_text`] reads, bytes.
pub const MAX_CARD_TEXT: usize = 64 * 1024;

/// Every prompt of the standard code card, in card order (`A1`, `B1`, … `E8`).
#[must_use]
pub fn card_prompts() -> Vec<String> {
    (1..=CARD_ROWS)
        .flat_map(|r| CARD_COLUMNS.chars().map(move |c| format!("{c}{r}")))
        .collect()
}

/// Why a card's text was refused. Messages name the line, never a response.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CardError {
    /// A pairs line is not `PROMPT RESPONSE`.
    #[error("card line {0}: expected `PROMPT RESPONSE`")]
    Line(usize),
    /// No pairs at all.
    #[error("the card has no pairs")]
    Empty,
    /// The text does not start with the card's title line.
    #[error(
        "not a Kasane code card (the first line must be `{TITLE}<user>`, a user name of 1 to \
         256 bytes without control, bidirectional or invisible characters)"
    )]
    Title,
    /// A grid row has the wrong number of cells or a wrong row number.
    #[error("card line {0}: a grid row needs its number and {n} responses", n = CARD_COLUMNS.len())]
    GridRow(usize),
    /// The text is longer than [`MAX_CARD_TEXT`].
    #[error("card text over {MAX_CARD_TEXT} bytes")]
    TooLong,
}

/// A user's code card: challenge → response, as issued.
pub struct CodeCard {
    /// The user.
    pub user: String,
    /// (prompt, response) in card order.
    pub pairs: Vec<(String, Zeroizing<String>)>,
}

impl std::fmt::Debug for CodeCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeCard")
            .field("user", &self.user)
            .field("pairs", &self.pairs.len())
            .finish()
    }
}

/// Characters of generated responses: no look-alikes (0/O, 1/I/L, 2/Z, 5/S, 8/B).
const RESPONSE_ALPHABET: &[u8] = b"ACDEFGHJKMNPQRTUVWXY34679";
/// Length of a generated response.
pub const RESPONSE_LEN: usize = 4;

impl CodeCard {
    /// A fresh card on the standard grid (`A1`…`E8`) with random responses.
    #[must_use]
    pub fn generate(user: &str) -> Self {
        let pairs = card_prompts()
            .into_iter()
            .map(|p| {
                let r: String = (0..RESPONSE_LEN)
                    .map(|_| {
                        char::from(RESPONSE_ALPHABET[OsRng.gen_range(0..RESPONSE_ALPHABET.len())])
                    })
                    .collect();
                (p, Zeroizing::new(r))
            })
            .collect();
        Self {
            user: user.to_owned(),
            pairs,
        }
    }

    /// Custom pairs: one `PROMPT RESPONSE` per line; blank lines and `#` comments skipped.
    pub fn parse(user: &str, text: &str) -> Result<Self, CardError> {
        let mut pairs = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut it = line.split_whitespace();
            match (it.next(), it.next(), it.next()) {
                (Some(p), Some(r), None) if p.len() <= MAX_PROMPT_LEN => {
                    pairs.push((p.to_owned(), Zeroizing::new(r.to_owned())));
                }
                _ => {
                    return Err(CardError::Line(i + 1));
                }
            }
        }
        if pairs.is_empty() {
            return Err(CardError::Empty);
        }
        Ok(Self {
            user: user.to_owned(),
            pairs,
        })
    }

    /// The response to `prompt`, if the card has one.
    #[must_use]
    pub fn response(&self, prompt: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(p, _)| p == prompt)
            .map(|(_, r)| r.as_str())
    }

    /// Reads the text [`CodeCard::to_text`] writes (either form).
    ///
    /// # Errors
    /// [`CardError`] naming the first line that does not fit.
    pub fn from_text(text: &str) -> Result<Self, CardError> {
        if text.len() > MAX_CARD_TEXT {
            return Err(CardError::TooLong);
        }
        let mut lines = text.lines().enumerate();
        let user = lines
            .next()
            .and_then(|(_, l)| l.trim_end().strip_prefix(TITLE))
            .filter(|u| is_user_name(u))
            .ok_or(CardError::Title)?
            .to_owned();
        let rest: Vec<(usize, &str)> = lines
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
            .collect();
        let header: Vec<String> = CARD_COLUMNS.chars().map(String::from).collect();
        let is_grid = rest.first().is_some_and(|(_, l)| {
            l.split_whitespace().map(str::to_owned).collect::<Vec<_>>() == header
        });
        let mut pairs = Vec::new();
        if is_grid {
            for (row, (line_no, line)) in rest.iter().skip(1).enumerate() {
                let cells: Vec<&str> = line.split_whitespace().collect();
                let expected = (row + 1).to_string();
                match cells.split_first() {
                    Some((n, responses))
                        if *n == expected && responses.len() == CARD_COLUMNS.len() =>
                    {
                        for (c, r) in CARD_COLUMNS.chars().zip(responses) {
                            pairs.push((format!("{c}{n}"), Zeroizing::new((*r).to_owned())));
                        }
                    }
                    _ => return Err(CardError::GridRow(*line_no)),
                }
            }
        } else {
            for (line_no, line) in &rest {
                let mut it = line.split_whitespace();
                match (it.next(), it.next(), it.next()) {
                    (Some(p), Some(r), None) if p.len() <= MAX_PROMPT_LEN => {
                        pairs.push((p.to_owned(), Zeroizing::new(r.to_owned())));
                    }
                    _ => return Err(CardError::Line(*line_no)),
                }
            }
        }
        if pairs.is_empty() {
            return Err(CardError::Empty);
        }
        Ok(Self { user, pairs })
    }

    /// The card as text: a grid when it is the standard card, else one pair per line.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut s = format!("Kasane code card for {}\n", self.user);
        let standard: Vec<String> = card_prompts();
        let is_grid = self.pairs.len() == standard.len()
            && self.pairs.iter().zip(&standard).all(|((p, _), q)| p == q);
        if is_grid {
            s.push_str("    ");
            for c in CARD_COLUMNS.chars() {
                s.push_str(&format!(" {c:<width$}", width = RESPONSE_LEN));
            }
            s.push('\n');
            for (row, chunk) in self.pairs.chunks(CARD_COLUMNS.len()).enumerate() {
                s.push_str(&format!("{:>3} ", row + 1));
                for (_, r) in chunk {
                    s.push_str(&format!(" {:<width$}", r.as_str(), width = RESPONSE_LEN));
                }
                s.push('\n');
            }
        } else {
            for (p, r) in &self.pairs {
                s.push_str(&format!("{p}\t{}\n", r.as_str()));
            }
        }
        s
    }

    /// The card as an SVG image (a table of prompt → response).
    #[must_use]
    pub fn to_svg(&self) -> String {
        let cols = 5usize;
        let rows = self.pairs.len().div_ceil(cols);
        let (cw, ch) = (130, 28);
        let w = cols * cw + 20;
        let h = rows * ch + 50;
        let esc = |t: &str| {
            t.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
        };
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"monospace\" font-size=\"16\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\" stroke=\"black\"/>\n<text x=\"10\" y=\"24\" font-weight=\"bold\">Kasane code card: {}</text>\n",
            esc(&self.user)
        );
        for (i, (p, r)) in self.pairs.iter().enumerate() {
            let x = 10 + (i % cols) * cw;
            let y = 50 + (i / cols) * ch;
            s.push_str(&format!(
                "<text x=\"{x}\" y=\"{y}\"><tspan fill=\"gray\">{}</tspan> {}</text>\n",
                esc(p),
                esc(r)
            ));
        }
        s.push_str("</svg>\n");
        s
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn generated_card_is_the_standard_grid() {
        let c = CodeCard::generate("alice");
        assert_eq!(c.pairs.len(), 40);
        assert!(c.pairs.iter().all(|(_, r)| r.len() == RESPONSE_LEN));
        let back = CodeCard::from_text(&c.to_text()).unwrap();
        assert_eq!(back.user, "alice");
        assert_eq!(
            back.pairs
                .iter()
                .map(|(p, r)| (p.clone(), r.to_string()))
                .collect::<Vec<_>>(),
            c.pairs
                .iter()
                .map(|(p, r)| (p.clone(), r.to_string()))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn custom_pairs_parse_and_roundtrip() {
        let c = CodeCard::parse("bob", "# card\nA1 xy12\n\nB2  QQ99\n").unwrap();
        assert_eq!(c.pairs.len(), 2);
        assert_eq!(c.response("B2"), Some("QQ99"));
        assert!(CodeCard::parse("bob", "A1\n").is_err());
        assert_eq!(CodeCard::parse("bob", "").unwrap_err(), CardError::Empty);
        let back = CodeCard::from_text(&c.to_text()).unwrap();
        assert_eq!(back.response("A1"), Some("xy12"));
    }

    #[test]
    fn bad_card_text_names_the_line() {
        assert_eq!(
            CodeCard::from_text("A1 KM4Q\n").unwrap_err(),
            CardError::Title
        );
        // A user name with a control character in it is no user name.
        let text = CodeCard::generate("carol").to_text();
        let escaped = text.replacen("carol", "car\u{1b}[2Jol", 1);
        assert_eq!(CodeCard::from_text(&escaped).unwrap_err(), CardError::Title);
        let grid = CodeCard::generate("carol").to_text();
        let broken: String = grid
            .lines()
            .take(3)
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            + "  2  AAAA\n";
        assert_eq!(
            CodeCard::from_text(&broken).unwrap_err(),
            CardError::GridRow(4)
        );
        assert_eq!(
            CodeCard::from_text(&"x".repeat(MAX_CARD_TEXT + 1)).unwrap_err(),
            CardError::TooLong
        );
    }
}
