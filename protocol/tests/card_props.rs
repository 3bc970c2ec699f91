//! Code-card text: from_text(to_text(card)) == card for every card the format can hold (the
//! standard grid and custom pairs), any text the parser accepts is written back to the same
//! card, and no text makes the parser panic.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failure is a test failure (clippy only exempts #[test] fns)"
)]

use kasane_protocol::card::{CARD_COLUMNS, CodeCard, MAX_CARD_TEXT, TITLE, card_prompts};
use proptest::prelude::*;
use zeroize::Zeroizing;

/// A card as plain values, to compare.
fn plain(card: &CodeCard) -> (String, Vec<(String, String)>) {
    let pairs = card
        .pairs
        .iter()
        .map(|(p, r)| (p.clone(), r.as_str().to_owned()))
        .collect();
    (card.user.clone(), pairs)
}

/// A user id: printable (no control or format characters: `is_user_name`), not starting or ending with
/// white space (the title line is trimmed at its end), at most 256 bytes; inner spaces allowed.
fn user() -> impl Strategy<Value = String> {
    "[^\\s\\p{Cc}\\p{Cf}]{1,24}( [^\\s\\p{Cc}\\p{Cf}]{1,24})?"
        .prop_filter("user id length", |u| u.len() <= 256)
}

/// A response: one token of anything but white space.
fn response() -> impl Strategy<Value = Zeroizing<String>> {
    "\\S{1,12}".prop_map(Zeroizing::new)
}

/// The standard grid with arbitrary responses.
fn grid_card() -> impl Strategy<Value = CodeCard> {
    let n = card_prompts().len();
    (user(), proptest::collection::vec(response(), n)).prop_map(|(user, responses)| CodeCard {
        user,
        pairs: card_prompts().into_iter().zip(responses).collect(),
    })
}

/// Custom pairs: prompts are one token that does not start a comment (`#`).
fn pairs_card() -> impl Strategy<Value = CodeCard> {
    let prompt = "[^\\s#]\\S{0,15}";
    (
        user(),
        proptest::collection::vec((prompt, response()), 1..=50),
    )
        .prop_map(|(user, pairs)| CodeCard { user, pairs })
}

/// Text that gets past the title line, often a well-formed grid or pair list, sometimes with
/// one junk line spliced in: so the accepting paths and every refusal are both exercised.
fn card_like_text() -> impl Strategy<Value = String> {
    let header = CARD_COLUMNS
        .chars()
        .map(String::from)
        .collect::<Vec<_>>()
        .join(" ");
    let grid_rows = proptest::collection::vec(proptest::collection::vec("\\S{1,6}", 5), 0..=8)
        .prop_map(move |rows| {
            let mut lines = vec![header.clone()];
            for (i, cells) in rows.iter().enumerate() {
                lines.push(format!(" {} {}", i + 1, cells.join("  ")));
            }
            lines
        });
    let pair_lines = proptest::collection::vec(
        prop_oneof![
            4 => " *[^\\s#]\\S{0,6}[ \\t]+\\S{1,6} *",
            1 => "#\\PC{0,10}",
            1 => "[ \\t]{0,3}",
        ],
        0..12,
    );
    (
        "\\PC{0,40}",
        prop_oneof![grid_rows, pair_lines],
        proptest::option::of((any::<prop::sample::Index>(), "[ \\t0-9A-E#\\PC]{0,30}")),
    )
        .prop_map(|(user, mut lines, junk)| {
            if let Some((at, line)) = junk {
                lines.insert(at.index(lines.len() + 1), line);
            }
            let mut text = format!("{TITLE}{user}\n");
            for l in lines {
                text.push_str(&l);
                text.push('\n');
            }
            text
        })
}

fn assert_round_trips(card: &CodeCard) {
    let text = card.to_text();
    let back = CodeCard::from_text(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(plain(&back), plain(card), "{text}");
}

proptest! {
    #[test]
    fn a_grid_card_round_trips(card in grid_card()) {
        assert_round_trips(&card);
        // And it is written as the grid, not as 40 pair lines.
        prop_assert!(card.to_text().lines().count() < card.pairs.len());
    }

    #[test]
    fn a_card_of_custom_pairs_round_trips(card in pairs_card()) {
        assert_round_trips(&card);
    }

    #[test]
    fn custom_pairs_parse_into_the_card_they_write(card in pairs_card()) {
        let body: String = card
            .pairs
            .iter()
            .map(|(p, r)| format!("{p} {}\n", r.as_str()))
            .collect();
        let parsed = CodeCard::parse(&card.user, &body).unwrap();
        prop_assert_eq!(plain(&parsed), plain(&card));
    }

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = CodeCard::from_text(&text);
        let _ = CodeCard::parse("u", &text);
    }

    /// Whatever the parser accepts, it writes back as text that parses to the same card.
    #[test]
    fn accepted_text_is_written_back_to_the_same_card(text in card_like_text()) {
        if let Ok(card) = CodeCard::from_text(&text) {
            assert_round_trips(&card);
        }
    }
}

#[test]
fn text_over_the_limit_is_refused_before_parsing() {
    let card = CodeCard::generate("alice");
    let mut text = card.to_text();
    text.push_str(&"#".repeat(MAX_CARD_TEXT - text.len()));
    assert!(CodeCard::from_text(&text).is_ok());
    text.push('#');
    assert_eq!(
        CodeCard::from_text(&text).unwrap_err(),
        kasane_protocol::card::CardError::TooLong
    );
}
