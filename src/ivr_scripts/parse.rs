//! Parses one script file (TOML) into a source model that remembers the line of every value.
//!
//! Owns: the file format (keys, target forms, prompt references, defaults) and turning
//! TOML byte spans into line numbers. Must not touch: other files, prompt audio, cross-file
//! rules (those are in `validate.rs` and `graph.rs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::Diagnostic;
use crate::engine::ids::{DtmfDigit, Language, PromptId, QueueName};
use crate::engine::ivr::{MenuId, Target, REPEAT_KEY};

/// Used when a menu does not set `timeout_seconds`.
pub(super) const DEFAULT_TIMEOUT_SECONDS: i64 = 5;
/// Used when a menu does not set `retries`.
pub(super) const DEFAULT_RETRIES: i64 = 2;
/// Used when a menu does not set `invalid_prompts`.
pub(super) const DEFAULT_INVALID_PROMPT: &str = "scelta_non_valida";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    language: Spanned<String>,
    entry: Option<Spanned<String>>,
    welcome: Option<Vec<Spanned<String>>>,
    music: Option<Spanned<String>>,
    // Not `Spanned<RawMenu>`: toml 0.8 mis-reports errors inside implicit tables then.
    #[serde(default)]
    menu: BTreeMap<Spanned<String>, RawMenu>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMenu {
    #[serde(default)]
    prompts: Vec<Spanned<String>>,
    timeout_seconds: Option<Spanned<i64>>,
    retries: Option<Spanned<i64>>,
    invalid_prompts: Option<Vec<Spanned<String>>>,
    on_timeout: Option<Spanned<RawTarget>>,
    #[serde(default)]
    options: BTreeMap<Spanned<String>, Spanned<RawTarget>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    menu: Option<Spanned<String>>,
    queue: Option<Spanned<String>>,
    language: Option<Spanned<String>>,
    hangup: Option<Spanned<bool>>,
    #[serde(default)]
    prompts: Vec<Spanned<String>>,
}

/// A value and the line it is on.
#[derive(Clone, Debug)]
pub(super) struct Located<T> {
    pub value: T,
    pub line: usize,
}

/// A prompt named in a script: `name` (the menu's language) or `lang/name` (pinned).
#[derive(Clone, Debug)]
pub(super) struct PromptRef {
    pub id: PromptId,
    pub pinned: bool,
    pub line: usize,
}

/// A target and the prompts it names, with lines.
#[derive(Clone, Debug)]
pub(super) struct TargetSrc {
    pub target: Target,
    pub line: usize,
    pub prompts: Vec<PromptRef>,
}

/// One menu as written.
#[derive(Clone, Debug)]
pub(super) struct MenuSrc {
    pub id: MenuId,
    pub lang: Language,
    pub line: usize,
    pub prompts: Vec<PromptRef>,
    pub options: BTreeMap<char, TargetSrc>,
    pub timeout: Duration,
    pub retries: u32,
    pub invalid_prompts: Vec<PromptRef>,
    pub on_timeout: Option<TargetSrc>,
}

impl MenuSrc {
    /// Every target: the options in key order, then `on_timeout`.
    pub fn targets(&self) -> impl Iterator<Item = &TargetSrc> {
        self.options.values().chain(self.on_timeout.iter())
    }
}

/// One script file as written.
#[derive(Clone, Debug)]
pub(super) struct ScriptFile {
    pub path: PathBuf,
    pub entry: Option<Located<MenuId>>,
    pub welcome: Option<Vec<PromptRef>>,
    pub music: Option<Located<String>>,
    pub menus: Vec<MenuSrc>,
}

/// Byte offset → 1-based line number.
struct Lines(Vec<usize>);

impl Lines {
    fn new(text: &str) -> Lines {
        Lines(text.match_indices('\n').map(|(i, _)| i).collect())
    }

    fn of(&self, offset: usize) -> usize {
        self.0.partition_point(|&nl| nl < offset) + 1
    }
}

/// The line a TOML error points at (line 1 when it carries no span).
pub(super) fn error_line(text: &str, err: &toml::de::Error) -> usize {
    err.span().map_or(1, |s| Lines::new(text).of(s.start))
}

/// Parses `text` (the contents of `path`). Returns the file when its shape is right, plus
/// every problem found; a syntax error stops at the first one.
pub(super) fn parse_file(path: &Path, text: &str) -> (Option<ScriptFile>, Vec<Diagnostic>) {
    let raw: RawFile = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let message = e.message().replace('\n', ": ");
            return (None, vec![Diagnostic::new(path, error_line(text, &e), message)]);
        }
    };
    let mut p = Parser { path, lines: Lines::new(text), diags: Vec::new(), lang: Language::It };
    let lang_line = p.line(&raw.language);
    match Language::from_code(raw.language.get_ref()) {
        Some(lang) => p.lang = lang,
        None => p.error(lang_line, format!("unknown language '{}': use \"it\" or \"en\"", raw.language.get_ref())),
    }
    let entry = raw.entry.map(|e| Located { line: p.line(&e), value: MenuId::new(e.into_inner()) });
    let welcome = raw.welcome.map(|w| w.iter().filter_map(|r| p.prompt(r, p.lang)).collect());
    let music = raw.music.map(|m| Located { line: p.line(&m), value: m.into_inner() });
    if let Some(m) = &music {
        if !is_name(&m.value) {
            p.error(m.line, format!("'{}' is not a valid file name (letters, digits, _ and - only)", m.value));
        }
    }
    let menus = raw.menu.into_iter().map(|(id, raw)| p.menu(id, raw)).collect();
    let file = ScriptFile { path: path.to_path_buf(), entry, welcome, music, menus };
    (Some(file), p.diags)
}

/// Prompt and file names: what is safe as a file stem.
pub(super) fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

struct Parser<'a> {
    path: &'a Path,
    lines: Lines,
    diags: Vec<Diagnostic>,
    lang: Language,
}

impl Parser<'_> {
    fn line<T>(&self, s: &Spanned<T>) -> usize {
        self.lines.of(s.span().start)
    }

    fn error(&mut self, line: usize, message: String) {
        self.diags.push(Diagnostic::new(self.path, line, message));
    }

    fn prompt(&mut self, raw: &Spanned<String>, lang: Language) -> Option<PromptRef> {
        let line = self.line(raw);
        let text = raw.get_ref();
        let (lang, name, pinned) = match text.split_once('/') {
            Some((code, name)) => match Language::from_code(code) {
                Some(l) => (l, name, true),
                None => {
                    self.error(line, format!("prompt '{text}': unknown language '{code}' (use it/ or en/)"));
                    return None;
                }
            },
            None => (lang, text.as_str(), false),
        };
        if !is_name(name) {
            self.error(line, format!("prompt '{text}' is not a valid name (letters, digits, _ and - only)"));
            return None;
        }
        Some(PromptRef { id: PromptId::new(lang, name), pinned, line })
    }

    fn prompts(&mut self, raw: &[Spanned<String>]) -> Vec<PromptRef> {
        raw.iter().filter_map(|r| self.prompt(r, self.lang)).collect()
    }

    fn bounded(&mut self, raw: Option<Spanned<i64>>, default: i64, key: &str, range: (i64, i64)) -> i64 {
        let Some(raw) = raw else { return default };
        let v = *raw.get_ref();
        if v < range.0 || v > range.1 {
            let line = self.line(&raw);
            self.error(line, format!("{key} = {v} is out of range: use {} to {}", range.0, range.1));
            return default;
        }
        v
    }

    fn menu(&mut self, id: Spanned<String>, raw: RawMenu) -> MenuSrc {
        let line = self.line(&id);
        let id = MenuId::new(id.into_inner());
        let timeout = self.bounded(raw.timeout_seconds, DEFAULT_TIMEOUT_SECONDS, "timeout_seconds", (1, 60));
        let retries = self.bounded(raw.retries, DEFAULT_RETRIES, "retries", (0, 9));
        let prompts = self.prompts(&raw.prompts);
        let invalid_prompts = match &raw.invalid_prompts {
            Some(list) => self.prompts(list),
            None => vec![PromptRef { id: PromptId::new(self.lang, DEFAULT_INVALID_PROMPT), pinned: false, line }],
        };
        let on_timeout = raw.on_timeout.and_then(|t| self.target(&t));
        let mut options = BTreeMap::new();
        let mut key_lines: BTreeMap<char, usize> = BTreeMap::new();
        let mut raw_options: Vec<_> = raw.options.iter().collect();
        raw_options.sort_by_key(|(k, _)| k.span().start); // report a repeat at its second line
        for (key, target) in raw_options {
            let key_line = self.line(key);
            let Some(c) = self.key(key.get_ref(), key_line) else { continue };
            if let Some(first) = key_lines.insert(c, key_line) {
                self.error(key_line, format!("menu '{id}': key {c} is assigned twice (also on line {first})"));
                continue;
            }
            if let Some(t) = self.target(target) {
                options.insert(c, t);
            }
        }
        MenuSrc {
            id,
            lang: self.lang,
            line,
            prompts,
            options,
            timeout: Duration::from_secs(timeout.unsigned_abs()),
            retries: u32::try_from(retries).unwrap_or(0), // bounded to 0..=9 above
            invalid_prompts,
            on_timeout,
        }
    }

    /// A key as written (`1`, `"#"`, `"A"`) → its canonical character.
    fn key(&mut self, raw: &str, line: usize) -> Option<char> {
        let mut chars = raw.chars();
        let digit = match (chars.next(), chars.next()) {
            (Some(c), None) => DtmfDigit::from_char(c),
            _ => None,
        };
        match digit {
            Some(d) if d.as_char() == REPEAT_KEY => {
                self.error(line, "key * is reserved: it always repeats the menu".into());
                None
            }
            Some(d) => Some(d.as_char()),
            None => {
                self.error(line, format!("'{raw}' is not a phone key: use 0-9, \"#\" or A-D"));
                None
            }
        }
    }

    fn target(&mut self, raw: &Spanned<RawTarget>) -> Option<TargetSrc> {
        let line = self.line(raw);
        let t = raw.get_ref();
        let prompts = self.prompts(&t.prompts);
        let ids = || prompts.iter().map(|p| p.id.clone()).collect::<Vec<_>>();
        let hangup = t.hangup.as_ref().map(|h| *h.get_ref());
        let target = match (&t.menu, &t.queue, &t.language, hangup) {
            (None, Some(q), None, None) => Target::Queue { queue: QueueName(q.get_ref().clone()), prompts: ids() },
            (None, None, None, Some(true)) => Target::Hangup { prompts: ids() },
            (Some(m), None, lang, None) if prompts.is_empty() => {
                let menu = MenuId::new(m.get_ref().clone());
                match lang {
                    None => Target::Menu(menu),
                    Some(code) => match Language::from_code(code.get_ref()) {
                        Some(lang) => Target::Language { lang, menu },
                        None => {
                            let msg = format!("unknown language '{}': use \"it\" or \"en\"", code.get_ref());
                            self.error(self.line(code), msg);
                            return None;
                        }
                    },
                }
            }
            (Some(_), None, _, None) => {
                self.error(line, "prompts here are played only before a queue or a hang-up".into());
                return None;
            }
            (None, None, None, Some(false)) => {
                self.error(line, "hangup = false means nothing: say where the caller goes instead".into());
                return None;
            }
            (None, None, None, None) => {
                let msg = "say where this leads: { menu = \"...\" }, { queue = \"...\" }, \
                           { language = \"en\", menu = \"...\" } or { hangup = true }";
                self.error(line, msg.into());
                return None;
            }
            _ => {
                let msg = "choose one destination: menu (with an optional language), queue, or hangup";
                self.error(line, msg.into());
                return None;
            }
        };
        Some(TargetSrc { target, line, prompts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Option<ScriptFile>, Vec<String>) {
        let (file, diags) = parse_file(Path::new("m.toml"), text);
        (file, diags.iter().map(|d| d.to_string()).collect())
    }

    const MENU: &str = r#"
language = "it"
entry = "principale"
welcome = ["benvenuto"]

[menu.principale]
prompts = ["menu_principale", "en/for_english"]
timeout_seconds = 6
on_timeout = { queue = "generale", prompts = ["trasferimento"] }

[menu.principale.options]
1 = { menu = "demografici" }
"#;

    #[test]
    fn well_formed_file_keeps_lines_and_defaults() {
        let (file, diags) = parse(MENU);
        assert!(diags.is_empty(), "{diags:?}");
        let file = file.unwrap();
        assert_eq!(file.entry.as_ref().unwrap().line, 3);
        let m = &file.menus[0];
        assert_eq!((m.id.as_str(), m.line), ("principale", 6));
        assert_eq!(m.timeout, Duration::from_secs(6));
        assert_eq!(m.retries, 2);
        assert!(m.prompts[1].pinned);
        assert_eq!(m.prompts[1].id, PromptId::new(Language::En, "for_english"));
        assert_eq!(m.invalid_prompts[0].id.name, "scelta_non_valida");
        assert_eq!(m.on_timeout.as_ref().unwrap().line, 9);
        assert_eq!(m.options[&'1'].line, 12);
    }

    #[test]
    fn syntax_error_reports_its_line() {
        let (file, diags) = parse("language = \"it\"\n[menu.a]\nprompts = [\"x\" \"y\"]\n");
        assert!(file.is_none());
        assert_eq!(diags.len(), 1);
        assert!(diags[0].starts_with("m.toml:3: "), "{diags:?}");
    }

    #[test]
    fn duplicate_digit_reports_the_second_line() {
        let (_, diags) = parse("language = \"it\"\n[menu.a.options]\n1 = { menu = \"x\" }\n1 = { queue = \"t\" }\n");
        assert_eq!(diags.len(), 1);
        assert!(diags[0].starts_with("m.toml:4: ") && diags[0].contains("duplicate key"), "{diags:?}");
        // Keys that differ in TOML but are the same phone key.
        let (_, diags) = parse("language = \"it\"\n[menu.a.options]\na = { menu = \"x\" }\nA = { queue = \"t\" }\n");
        assert_eq!(diags, ["m.toml:4: menu 'a': key A is assigned twice (also on line 3)"]);
    }

    #[test]
    fn bad_keys_targets_and_values_are_reported() {
        let text = r#"language = "it"
[menu.a]
retries = 12
[menu.a.options]
"*" = { menu = "x" }
12 = { menu = "x" }
3 = { menu = "x", queue = "y" }
4 = { }
5 = { menu = "x", prompts = ["p"] }
6 = { queue = "../etc" , prompts = ["../p"] }
"#;
        let (_, diags) = parse(text);
        let lines: Vec<&str> = diags.iter().map(|d| d.split(": ").next().unwrap()).collect();
        assert_eq!(lines, ["m.toml:3", "m.toml:5", "m.toml:6", "m.toml:7", "m.toml:8", "m.toml:9", "m.toml:10"]);
    }

    #[test]
    fn unknown_key_and_missing_language_have_lines() {
        let (_, diags) = parse("language = \"it\"\n[menu.a]\npromtps = []\n");
        assert!(diags[0].starts_with("m.toml:3: unknown field `promtps`"), "{diags:?}");
        let (_, diags) = parse("[menu.a]\nprompts = []\n");
        assert!(diags[0].starts_with("m.toml:1: missing field `language`"), "{diags:?}");
        let (_, diags) = parse("language = \"fr\"\n");
        assert!(diags[0].starts_with("m.toml:1: unknown language 'fr'"), "{diags:?}");
    }
}
