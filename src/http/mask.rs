//! What a read-scope client sees of a caller's number.
//!
//! Owns: the masking rule. Must not touch: the engine's views (masking happens on the
//! copy the admin API serializes).

/// Characters kept at the end of a masked number: enough to tell callers apart on a
/// wallboard, too few to call anyone back.
const KEPT: usize = 3;

/// `3331234567` → `*******567`. A number of 6 characters or fewer (an internal extension)
/// would be mostly revealed by its last 3, so it is masked whole.
pub fn caller(number: &str) -> String {
    let count = number.chars().count();
    let kept = if count > 2 * KEPT { KEPT } else { 0 };
    number.chars().enumerate().map(|(i, c)| if i + kept < count { '*' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_three_characters_of_a_number_stay() {
        assert_eq!(caller("3331234567"), "*******567");
        assert_eq!(caller("+390801234567"), "**********567");
        assert_eq!(caller("1234567"), "****567");
        assert_eq!(caller("anonymous"), "******ous");
    }

    #[test]
    fn short_numbers_are_masked_whole() {
        assert_eq!(caller("123456"), "******");
        assert_eq!(caller("101"), "***");
        assert_eq!(caller(""), "");
        assert_eq!(caller("àèìòùé"), "******", "characters, not bytes");
    }
}
