//! Size limits shared by the wire format, the key schedule and sealing. A leaf: the modules
//! that need these import them from here, so none of them imports another for a number.
//! [`wire`](crate::wire) and [`seal`](crate::seal) re-export them where they always were.

/// Longest user id, bytes.
pub const MAX_USER_ID_LEN: usize = 256;

/// Whether `name` can be a user name (a login's `user_id`, a message's recipient, a card's
/// user): 1..=[`MAX_USER_ID_LEN`] bytes of UTF-8 with no character [`is_hidden`] — no control
/// character, no bidirectional control, nothing invisible. A name a client chose reaches the
/// host's throttle table before any authentication (an unknown name is counted like a known
/// one), and from there `kasane-host throttle list` and the logs: a newline or an escape
/// sequence there would let an attacker forge lines on an operator's terminal, a
/// right-to-left override or a zero-width space a name that reads as another user's.
#[must_use]
pub fn is_user_name(name: &str) -> bool {
    (1..=MAX_USER_ID_LEN).contains(&name.len()) && !name.chars().any(is_hidden)
}

/// Whether `name` can be a sealed message's recipient: a user name ([`is_user_name`]), or empty
/// for the host itself.
#[must_use]
pub fn is_recipient(name: &str) -> bool {
    name.is_empty() || is_user_name(name)
}

/// Whether `c` changes how the text around it is shown, or shows as nothing: a control
/// character (Unicode `Cc`: U+0000–U+001F, U+007F–U+009F, tab and newline included), a
/// bidirectional control (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069) or an
/// invisible format character (U+00AD, U+180E, U+200B–U+200D, U+2060–U+2064,
/// U+206A–U+206F, U+FEFF, U+FFF9–U+FFFB). The list is written out here because std has no
/// Unicode category lookup past `Cc` and this is the part of `Cf` that matters on a
/// terminal.
#[must_use]
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{ad}'
                | '\u{61c}'
                | '\u{180e}'
                | '\u{200b}'..='\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206f}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
        )
}

/// Text someone else chose, shown on a terminal or in a listing: every [`is_hidden`]
/// character printed as its Rust escape (`\n`, `\u{202e}`), everything else as is.
///
/// ```
/// use kasane_protocol::wire::Shown;
/// assert_eq!(Shown("user:root\n\u{1b}[2J").to_string(), "user:root\\n\\u{1b}[2J");
/// assert_eq!(Shown("ålice").to_string(), "ålice");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Shown<'a>(pub &'a str);

impl core::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        use core::fmt::Write as _;
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_debug())?;
            } else if is_hidden(c) {
                write!(f, "{}", c.escape_unicode())?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

/// Length of a login id, bundle id or session id, bytes.
pub const ID_LEN: usize = 16;
/// Longest password, bytes (the client refuses longer ones before OPAQUE).
pub const MAX_PASSWORD_LEN: usize = 1024;
/// Longest recipient of a sealed message, bytes.
pub const MAX_RECIPIENT_LEN: usize = MAX_USER_ID_LEN;
/// Longest ciphertext of a sealed message (padded plaintext plus the 16-byte tag): the
/// Padmé bucket of [`MAX_PLAINTEXT_LEN`] + 1 is 1 MiB + 32 KiB.
pub const MAX_CIPHERTEXT_LEN: usize = 1024 * 1024 + 32 * 1024 + 16;
/// Longest message body a client may send (a host may configure less).
pub const MAX_BODY_LEN: usize = 1024 * 1024;
/// Longest plaintext of one sealed message: a body of [`MAX_BODY_LEN`] and room for the
/// [`Delivery`](crate::wire::Delivery) frame a relayed body travels in to its recipient.
pub const MAX_PLAINTEXT_LEN: usize = MAX_BODY_LEN + 1024;
