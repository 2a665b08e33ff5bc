//! How guessable a topic is (TOP-02). A topic is a bearer ticket: whoever knows it and holds
//! any valid token (under `--topic-binding none`), or a token naming it, reaches the session.
//! Topics the hub mints carry 256 random bits; a topic an EHR supplies is checked here, and
//! the gateway refuses one estimated below [`MIN_TOPIC_BITS`] unless the operator allows weak
//! topics.
//!
//! The estimate is a heuristic that recognises common structured shapes, not a proof of
//! randomness:
//!
//! - a UUID anywhere in the topic counts 122 bits if it is version 4 (RFC 9562 variant),
//!   and nothing otherwise (versions 1, 6 and 7 carry a timestamp, 3 and 5 are derived from
//!   a name);
//! - the rest is cut into runs of `A–Z a–z 0–9 - _`; a run counts only if it looks random:
//!   with at least 3 letters of each case it is read as base64url (6 bits a character, `-`
//!   and `_` included). Otherwise `-` and `_` are separators; digits with letters that are
//!   all `a–f` are read as hexadecimal (4 bits a character), and digits with other letters,
//!   alternating at least 3 times, as base 36 (5.17 bits). A run of one class (a number, a
//!   word), words and numbers run together (`encounter20261203`), a run holding 8 equal or
//!   consecutive characters (`00000000`, `12345678`), and a run with far fewer distinct
//!   characters than chance gives (`a1a1a1…`) count nothing.
//!
//! So `patient-123`, `2024-01-01-000042`, counters and time-based UUIDs are weak, while a
//! UUID v4, 32 random hex digits or 32 random base64url characters are strong. Give topics
//! margin: 22 base64url characters hold 128 bits, but about one draw in 400 has fewer than
//! 3 letters of one case, is read as base 36 and falls short. A long run of mixed letters
//! and digits that is nevertheless structured (a name and a date run together, or
//! `CamelCaseWords` long enough) can pass: the check catches mistakes, it cannot vouch for
//! a generator.

/// The least estimated entropy a topic from outside must carry: what a UUID v4 has.
pub const MIN_TOPIC_BITS: u32 = 122;
/// The bits a version 4 UUID carries.
const UUID_V4_BITS: f64 = 122.0;
/// A run of this many equal or consecutive characters is a pattern, not chance.
const PATTERN_RUN: usize = 8;
/// Letters of each case a run needs to be read as base64url.
const MIN_OF_EACH_CASE: usize = 3;
/// Switches between letters and digits a run of one letter case needs to count: fewer is
/// words and numbers run together (`encounter20261203`).
const MIN_TRANSITIONS: usize = 3;

/// The estimate for one topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicStrength {
    /// Estimated random bits.
    pub bits: u32,
    /// Whether the topic holds a UUID of a version other than 4.
    pub non_random_uuid: bool,
}

impl TopicStrength {
    /// Whether the topic carries at least [`MIN_TOPIC_BITS`].
    pub fn is_strong(self) -> bool {
        self.bits >= MIN_TOPIC_BITS
    }
}

/// Estimates how many random bits `topic` carries.
pub fn assess(topic: &str) -> TopicStrength {
    let bytes = topic.as_bytes();
    let mut bits = 0.0;
    let mut non_random_uuid = false;
    let mut run_start = None;
    let mut index = 0;
    while index < bytes.len() {
        if let Some(version) = uuid_version_at(bytes, index) {
            if let Some(start) = run_start.take() {
                bits += run_bits(&bytes[start..index]);
            }
            if version == Some(4) {
                bits += UUID_V4_BITS;
            } else {
                non_random_uuid = true;
            }
            index += UUID_LEN;
            continue;
        }
        if is_run_byte(bytes[index]) {
            run_start.get_or_insert(index);
        } else if let Some(start) = run_start.take() {
            bits += run_bits(&bytes[start..index]);
        }
        index += 1;
    }
    if let Some(start) = run_start {
        bits += run_bits(&bytes[start..]);
    }
    TopicStrength {
        // Saturating: at most a few thousand bits for the longest topic a body holds.
        bits: bits.min(f64::from(u32::MAX)) as u32,
        non_random_uuid,
    }
}

/// The length of a canonical UUID (`8-4-4-4-12` hex digits).
const UUID_LEN: usize = 36;

/// If a canonical UUID starts at `at` (and is not the middle of a longer run), returns
/// `Some(version)`, the version being `None` for a version 4 digit with another variant.
fn uuid_version_at(bytes: &[u8], at: usize) -> Option<Option<u8>> {
    let candidate = bytes.get(at..at + UUID_LEN)?;
    if at > 0 && bytes[at - 1].is_ascii_hexdigit() {
        return None;
    }
    if bytes.get(at + UUID_LEN).is_some_and(u8::is_ascii_hexdigit) {
        return None;
    }
    let shaped = candidate.iter().enumerate().all(|(n, byte)| match n {
        8 | 13 | 18 | 23 => *byte == b'-',
        _ => byte.is_ascii_hexdigit(),
    });
    if !shaped {
        return None;
    }
    let version = (candidate[14] as char)
        .to_digit(16)
        .and_then(|v| u8::try_from(v).ok());
    let rfc_variant = matches!(
        candidate[19].to_ascii_lowercase(),
        b'8' | b'9' | b'a' | b'b'
    );
    Some(if rfc_variant { version } else { None })
}

fn is_run_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'
}

/// The bits one run of `A–Z a–z 0–9 - _` counts.
fn run_bits(run: &[u8]) -> f64 {
    let count = |class: fn(&u8) -> bool| run.iter().filter(|byte| class(byte)).count();
    let (digits, lower, upper) = (
        count(u8::is_ascii_digit),
        count(u8::is_ascii_lowercase),
        count(u8::is_ascii_uppercase),
    );
    // Letters of both cases, several of each: base64url, whose alphabet includes `-` and
    // `_`. Otherwise those two separate words and numbers, and count nothing.
    let letters = lower + upper;
    let base64url = lower >= MIN_OF_EACH_CASE && upper >= MIN_OF_EACH_CASE;
    let symbols: Vec<u8> = run
        .iter()
        .copied()
        .filter(|byte| base64url || byte.is_ascii_alphanumeric())
        .collect();
    if symbols.is_empty() || has_pattern(&symbols) {
        return 0.0;
    }
    let alphabet: f64 = if base64url {
        let marks = symbols.iter().any(|byte| matches!(byte, b'-' | b'_'));
        52.0 + if digits > 0 { 10.0 } else { 0.0 } + if marks { 2.0 } else { 0.0 }
    } else if digits > 0 && letters > 0 {
        let hex = symbols
            .iter()
            .filter(|byte| byte.is_ascii_alphabetic())
            .all(|byte| (b'a'..=b'f').contains(&byte.to_ascii_lowercase()));
        if hex {
            16.0
        } else if transitions(&symbols) >= MIN_TRANSITIONS {
            36.0
        } else {
            return 0.0;
        }
    } else {
        // One class (a number, a word), or a few words and numbers run together.
        return 0.0;
    };
    if too_few_distinct(&symbols, alphabet) {
        return 0.0;
    }
    symbols.len() as f64 * alphabet.log2()
}

/// How many times `symbols` switch between a letter and a digit.
fn transitions(symbols: &[u8]) -> usize {
    symbols
        .windows(2)
        .filter(|pair| pair[0].is_ascii_digit() != pair[1].is_ascii_digit())
        .count()
}

/// Whether `symbols` hold [`PATTERN_RUN`] equal or consecutive characters in a row.
fn has_pattern(symbols: &[u8]) -> bool {
    symbols.windows(PATTERN_RUN).any(|window| {
        let step = i16::from(window[1]) - i16::from(window[0]);
        (-1..=1).contains(&step)
            && window
                .windows(2)
                .all(|pair| i16::from(pair[1]) - i16::from(pair[0]) == step)
    })
}

/// Whether `symbols` hold fewer than half the distinct characters that as many random draws
/// from `alphabet` characters are expected to give.
fn too_few_distinct(symbols: &[u8], alphabet: f64) -> bool {
    let mut seen = [false; 256];
    for byte in symbols {
        seen[usize::from(*byte)] = true;
    }
    let distinct = seen.iter().filter(|seen| **seen).count() as f64;
    let draws = symbols.len() as f64;
    let expected = alphabet * (1.0 - (1.0 - 1.0 / alphabet).powf(draws));
    distinct < expected / 2.0
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    /// SplitMix64: a fixed sequence, so the sample of random topics is the same every run.
    struct Draws(u64);

    impl Draws {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn bytes<const N: usize>(&mut self) -> [u8; N] {
            let mut bytes = [0_u8; N];
            for chunk in bytes.chunks_mut(8) {
                let word = self.next().to_le_bytes();
                chunk.copy_from_slice(&word[..chunk.len()]);
            }
            bytes
        }

        fn uuid_v4(&mut self) -> uuid::Uuid {
            uuid::Builder::from_random_bytes(self.bytes::<16>()).into_uuid()
        }
    }

    #[test]
    fn random_topics_of_every_usual_shape_are_strong_every_time() {
        let mut draws = Draws(0x5EED);
        for _ in 0..50_000 {
            let v4 = draws.uuid_v4();
            let shapes = [
                URL_SAFE_NO_PAD.encode(draws.bytes::<32>()),
                URL_SAFE_NO_PAD.encode(draws.bytes::<24>()),
                v4.to_string(),
                v4.to_string().to_uppercase(),
                format!("urn:uuid:{v4}"),
                format!("session-{v4}"),
                v4.simple().to_string(),
                hex(&draws.bytes::<16>()),
                hex(&draws.bytes::<16>()).to_uppercase(),
            ];
            for topic in shapes {
                // 32 hex digits without a letter (p = 3e-7) are refused as a number.
                if topic.bytes().all(|byte| byte.is_ascii_digit()) {
                    continue;
                }
                assert!(assess(&topic).is_strong(), "{topic}: {:?}", assess(&topic));
            }
        }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    #[test]
    fn structured_and_short_topics_are_weak() {
        for topic in [
            "",
            "patient-123",
            "DrXRay",
            "topic-0000001",
            "session-000000000000000000000000000000000000000000000001",
            "2024-01-01T00:00:00Z",
            "encounter-20261203-000042-drsmith",
            "encounter_987654321_20261203121314",
            "12345678901234567890123456789012345678901234567890",
            "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz",
            "0123456789abcdef0123456789abcdef0123456789abcdef",
            "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1",
            "deadbeef00000000000000000000000000000000",
            "1.2.840.113619.2.55.3.604688119.868.1234567890.123",
        ] {
            assert!(!assess(topic).is_strong(), "{topic}: {:?}", assess(topic));
        }
    }

    #[test]
    fn uuids_other_than_version_4_count_nothing_and_are_named() {
        for topic in [
            "c232ab00-9414-11ec-b3c8-9e6bdeced846", // v1
            "1ec9414c-232a-6b00-b3c8-9e6bdeced846", // v6
            "017f22e2-79b0-7cc3-98c4-dc0c0c07398f", // v7
            "5df41881-3aed-3515-88a7-2f4a814cf09e", // v3
            "2ed6657d-e927-568b-95e1-2665a8aea6a2", // v5
            "00000000-0000-0000-0000-000000000000", // nil
        ] {
            let strength = assess(topic);
            assert!(!strength.is_strong(), "{topic}: {strength:?}");
            assert!(strength.non_random_uuid, "{topic}");
        }
        // A version digit 4 with a variant other than RFC 9562's is not a v4 UUID.
        assert!(!assess("c232ab00-9414-41ec-f3c8-9e6bdeced846").is_strong());
        assert_eq!(assess("f47ac10b-58cc-4372-a567-0e02b2c3d479").bits, 122);
    }

    #[test]
    fn base64url_counts_six_bits_a_character_only_with_both_letter_cases() {
        // 22 characters, 128 bits: strong with both cases, short of 122 bits without.
        assert_eq!(assess("q3Zr_8vK-1mXpL0aTy9BcW").bits, 132);
        assert!(!assess("Q3ZR_8VK-1MXPL0ATY9BCW").is_strong());
    }
}
