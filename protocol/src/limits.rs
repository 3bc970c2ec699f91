//! Size limits shared by the wire format, the key schedule and sealing. A leaf: the modules
//! that need these import them from here, so none of them imports another for a number.
//! [`wire`](crate::wire) and [`seal`](crate::seal) re-export them where they always were.

/// Longest user id, bytes.
pub const MAX_USER_ID_LEN: usize = 256;

/// Whether `name` can be a user name (a login's `user_id`, a message's recipient, a card's
/// user): 1..=[`MAX_USER_ID_LEN`] bytes of UTF-8 without control characters (Unicode `Cc`:
/// U+0000–U+001F, U+007F–U+009F). A name a client chose reaches the host's throttle table
/// before any authentication (an unknown name is counted like a known one), and from there
/// `kasane-host throttle list` and the logs: a tab, a newline or an escape sequence there
/// would let an attacker forge lines on an operator's terminal.
#[must_use]
pub fn is_user_name(name: &str) -> bool {
    (1..=MAX_USER_ID_LEN).contains(&name.len()) && !name.chars().any(char::is_control)
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
