//! Identifiers and small value types shared by every part of the engine.
//!
//! Owns: newtypes for calls, queues and prompts; DTMF digits; languages.
//! Must not touch: anything outside plain data.

use std::fmt;

/// A call's id, unique across nodes (the node name is part of it).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub String);

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A queue's configured name, e.g. `tributi`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueName(pub String);

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An operator's username (their SIP user, e.g. `op1`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OperatorId(pub String);

impl fmt::Display for OperatorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The language a caller is served in. Italian first; English on request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Language {
    /// Italian, the default.
    #[default]
    It,
    /// English.
    En,
}

impl Language {
    /// Every supported language, Italian first.
    pub const ALL: [Language; 2] = [Language::It, Language::En];

    /// The ISO 639-1 code, also the prompt folder name.
    pub fn code(self) -> &'static str {
        match self {
            Language::It => "it",
            Language::En => "en",
        }
    }

    /// Parses an ISO 639-1 code (`it`, `en`).
    pub fn from_code(code: &str) -> Option<Language> {
        match code {
            "it" => Some(Language::It),
            "en" => Some(Language::En),
            _ => None,
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A prompt: a recording's name inside a language folder, e.g. `it` + `benvenuto`
/// is `ivr-scripts/prompts/it/benvenuto.wav`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PromptId {
    /// The language folder.
    pub lang: Language,
    /// The file stem.
    pub name: String,
}

impl PromptId {
    /// Builds a prompt id.
    pub fn new(lang: Language, name: impl Into<String>) -> Self {
        PromptId { lang, name: name.into() }
    }
}

impl fmt::Display for PromptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.lang, self.name)
    }
}

/// A DTMF key: `0-9 * # A-D` (RFC 4733 events 0–15).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DtmfDigit {
    /// Digit keys 0–9.
    Digit(u8),
    /// `*`
    Star,
    /// `#`
    Pound,
    /// The fourth-column keys A–D (rare on phones; accepted, never in menus by default).
    Letter(char),
}

impl DtmfDigit {
    /// From an RFC 4733 event code (0–15); other codes are not DTMF.
    pub fn from_event(code: u8) -> Option<DtmfDigit> {
        match code {
            0..=9 => Some(DtmfDigit::Digit(code)),
            10 => Some(DtmfDigit::Star),
            11 => Some(DtmfDigit::Pound),
            12..=15 => Some(DtmfDigit::Letter((b'A' + code - 12) as char)),
            _ => None,
        }
    }

    /// From a key character as written in scripts and SIP INFO bodies.
    pub fn from_char(c: char) -> Option<DtmfDigit> {
        match c {
            '0'..='9' => Some(DtmfDigit::Digit(c as u8 - b'0')),
            '*' => Some(DtmfDigit::Star),
            '#' => Some(DtmfDigit::Pound),
            'A'..='D' => Some(DtmfDigit::Letter(c)),
            'a'..='d' => Some(DtmfDigit::Letter(c.to_ascii_uppercase())),
            _ => None,
        }
    }

    /// The key character.
    pub fn as_char(self) -> char {
        match self {
            DtmfDigit::Digit(d) => (b'0' + d) as char,
            DtmfDigit::Star => '*',
            DtmfDigit::Pound => '#',
            DtmfDigit::Letter(c) => c,
        }
    }
}

impl fmt::Display for DtmfDigit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_char())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtmf_event_codes_round_trip_through_chars() {
        for code in 0..16u8 {
            let d = DtmfDigit::from_event(code).expect("0-15 are DTMF");
            assert_eq!(DtmfDigit::from_char(d.as_char()), Some(d));
        }
        assert_eq!(DtmfDigit::from_event(16), None);
        assert_eq!(DtmfDigit::from_char('x'), None);
    }
}
