//! Rules across script files: one entry, unique menus, known targets, queues and prompts;
//! then builds the engine's [`IvrScripts`] from the checked source.
//!
//! Owns: the messages for those rules. Must not touch: the menu graph's shape (reachability,
//! loops, the English mirror: `graph.rs`), file reading, audio.

use std::collections::{BTreeMap, BTreeSet};

use super::parse::{Located, MenuSrc, PromptRef, ScriptFile, TargetSrc};
use super::prompts::{language_name, Inventory};
use super::Diagnostic;
use crate::engine::ids::{Language, PromptId, QueueName};
use crate::engine::ivr::{IvrScripts, Menu, MenuId, Target};

/// Every menu of every file, by id, with the file it is in.
pub(super) type MenuIndex<'a> = BTreeMap<&'a MenuId, (&'a ScriptFile, &'a MenuSrc)>;

/// What the files say about the whole tree once checked.
pub(super) struct Checked<'a> {
    pub menus: MenuIndex<'a>,
    pub entry: Option<&'a MenuId>,
    pub welcome: Vec<PromptRef>,
    pub music: Option<&'a Located<String>>,
    /// Every prompt name a script uses (for the unused-prompt language check).
    pub named: BTreeSet<String>,
}

/// Applies the per-menu rules; diagnostics go to `diags`.
pub(super) fn check<'a>(
    files: &'a [ScriptFile],
    inv: &Inventory,
    known_queues: &[QueueName],
    diags: &mut Vec<Diagnostic>,
) -> Checked<'a> {
    let menus = index(files, diags);
    let entry_file = single(files, diags, "entry", |f| f.entry.as_ref().map(|e| e.line));
    let entry = entry_file.and_then(|f| f.entry.as_ref().map(|e| (f, e)));
    let welcome_file = single(files, diags, "welcome", |f| f.welcome.as_ref().and_then(|w| w.first()).map(|p| p.line));
    let music = single(files, diags, "music", |f| f.music.as_ref().map(|m| m.line)).and_then(|f| f.music.as_ref());
    match (entry, files.first()) {
        (Some((file, e)), _) if !menus.contains_key(&e.value) => {
            diags.push(Diagnostic::new(&file.path, e.line, format!("the entry menu '{}' does not exist", e.value)));
        }
        (None, Some(first)) => {
            let msg = "no script sets `entry = \"...\"`: which menu starts every call?";
            diags.push(Diagnostic::new(&first.path, 1, msg));
        }
        _ => {}
    }
    let mut named = BTreeSet::new();
    let welcome = welcome_file.and_then(|f| f.welcome.clone()).unwrap_or_default();
    if let Some(f) = welcome_file {
        for p in &welcome {
            check_prompt(f, p, inv, &mut named, diags);
        }
    }
    for (file, menu) in menus.values() {
        check_menu(file, menu, &menus, inv, known_queues, &mut named, diags);
    }
    let entry = entry.map(|(_, e)| &e.value);
    Checked { menus, entry, welcome, music, named }
}

fn index<'a>(files: &'a [ScriptFile], diags: &mut Vec<Diagnostic>) -> MenuIndex<'a> {
    let mut menus: MenuIndex<'a> = BTreeMap::new();
    for file in files {
        for menu in &file.menus {
            if let Some((first_file, first)) = menus.get(&menu.id) {
                let msg =
                    format!("menu '{}' is already defined at {}:{}", menu.id, first_file.path.display(), first.line);
                diags.push(Diagnostic::new(&file.path, menu.line, msg));
                continue;
            }
            menus.insert(&menu.id, (file, menu));
        }
    }
    menus
}

/// The one file that sets a top-level key; a second one is an error.
fn single<'a>(
    files: &'a [ScriptFile],
    diags: &mut Vec<Diagnostic>,
    key: &str,
    line_of: impl Fn(&ScriptFile) -> Option<usize>,
) -> Option<&'a ScriptFile> {
    let mut found: Option<(&ScriptFile, usize)> = None;
    for file in files {
        let Some(line) = line_of(file) else { continue };
        match found {
            None => found = Some((file, line)),
            Some((first, first_line)) => {
                let msg = format!("`{key}` is already set at {}:{first_line}", first.path.display());
                diags.push(Diagnostic::new(&file.path, line, msg));
            }
        }
    }
    found.map(|(f, _)| f)
}

fn check_menu(
    file: &ScriptFile,
    menu: &MenuSrc,
    menus: &MenuIndex<'_>,
    inv: &Inventory,
    known_queues: &[QueueName],
    named: &mut BTreeSet<String>,
    diags: &mut Vec<Diagnostic>,
) {
    for p in menu.prompts.iter().chain(&menu.invalid_prompts) {
        check_prompt(file, p, inv, named, diags);
    }
    if menu.on_timeout.is_none() {
        let msg = if menu.options.is_empty() {
            format!("dead end: menu '{}' has no options and no on_timeout, so callers are stuck in it", menu.id)
        } else {
            format!(
                "menu '{}' has no on_timeout: say where callers go when they do not choose, \
                 e.g. on_timeout = {{ queue = \"generale\" }}",
                menu.id
            )
        };
        diags.push(Diagnostic::new(&file.path, menu.line, msg));
    }
    for t in menu.targets() {
        for p in &t.prompts {
            check_prompt(file, p, inv, named, diags);
        }
        check_target(file, menu, t, menus, known_queues, diags);
    }
}

fn check_target(
    file: &ScriptFile,
    menu: &MenuSrc,
    t: &TargetSrc,
    menus: &MenuIndex<'_>,
    known_queues: &[QueueName],
    diags: &mut Vec<Diagnostic>,
) {
    let mut error = |msg: String| diags.push(Diagnostic::new(&file.path, t.line, msg));
    match &t.target {
        Target::Queue { queue, .. } if !known_queues.contains(queue) => {
            let known: Vec<&str> = known_queues.iter().map(|q| q.0.as_str()).collect();
            error(format!("unknown queue '{queue}' (queues in the config: {})", known.join(", ")));
        }
        Target::Queue { .. } | Target::Hangup { .. } => {}
        Target::Menu(to) | Target::Language { menu: to, .. } => {
            let Some((_, dest)) = menus.get(to) else {
                error(format!("unknown menu '{to}'"));
                return;
            };
            let wanted = match &t.target {
                Target::Language { lang, .. } => *lang,
                _ => menu.lang,
            };
            if dest.lang != wanted {
                error(format!(
                    "menu '{to}' is in {}: to switch language write {{ language = \"{}\", menu = \"{to}\" }}",
                    language_name(dest.lang),
                    dest.lang.code(),
                ));
            }
        }
    }
}

/// A prompt without a pinned language must exist in every language; a pinned one in its own.
fn check_prompt(
    file: &ScriptFile,
    p: &PromptRef,
    inv: &Inventory,
    named: &mut BTreeSet<String>,
    diags: &mut Vec<Diagnostic>,
) {
    named.insert(p.id.name.clone());
    if !inv.has(&p.id) {
        let msg = format!("unknown prompt '{}': there is no prompts/{}.wav", p.id.name, p.id);
        diags.push(Diagnostic::new(&file.path, p.line, msg));
        return;
    }
    if p.pinned {
        return;
    }
    for lang in Language::ALL {
        let other = PromptId::new(lang, p.id.name.clone());
        if !inv.has(&other) {
            let msg = format!(
                "prompt '{}' has no {} version: missing prompts/{other}.wav (every prompt needs one file per language)",
                p.id.name,
                language_name(lang)
            );
            diags.push(Diagnostic::new(&file.path, p.line, msg));
        }
    }
}

/// Builds the engine model. Call only when `check` and the graph rules found nothing.
pub(super) fn build(checked: &Checked<'_>) -> Result<IvrScripts, String> {
    let entry = checked.entry.cloned().ok_or("no entry menu")?;
    let welcome = checked.welcome.iter().map(|p| p.id.clone()).collect();
    let mut menus = Vec::new();
    for (_, m) in checked.menus.values() {
        let on_timeout = m.on_timeout.as_ref().ok_or_else(|| format!("menu '{}' has no on_timeout", m.id))?;
        menus.push(Menu {
            id: m.id.clone(),
            lang: m.lang,
            prompts: m.prompts.iter().map(|p| p.id.clone()).collect(),
            options: m.options.iter().map(|(k, t)| (*k, t.target.clone())).collect(),
            timeout: m.timeout,
            retries: m.retries,
            on_timeout: on_timeout.target.clone(),
            invalid_prompts: m.invalid_prompts.iter().map(|p| p.id.clone()).collect(),
        });
    }
    IvrScripts::new(entry, welcome, menus).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::fixture::Fixture;

    #[test]
    fn unknown_prompt_is_reported_at_its_line() {
        let f = Fixture::new();
        f.edit("principale.toml", "\"menu_principale\"", "\"menu_principal\"");
        assert_eq!(f.errors().len(), 1);
        f.expect(
            "principale.toml",
            "menu_principal",
            "unknown prompt 'menu_principal': there is no prompts/it/menu_principal.wav",
        );
    }

    #[test]
    fn missing_english_variant_is_reported() {
        let f = Fixture::new();
        f.remove("prompts/en/menu_demografici.wav");
        f.expect(
            "principale.toml",
            "\"menu_demografici\"",
            "prompt 'menu_demografici' has no English version: missing prompts/en/menu_demografici.wav",
        );
        f.expect("english.toml", "\"menu_demografici\"", "unknown prompt 'menu_demografici'");
        f.expect("prompts/en/prompts.toml", "menu_demografici", "has a text but no recording");
    }

    #[test]
    fn unused_prompt_without_english_variant_is_reported() {
        let f = Fixture::new();
        f.remove("prompts/en/arrivederci.wav");
        f.edit("prompts/en/prompts.toml", "arrivederci = \"arrivederci\"\n", "");
        assert_eq!(f.errors().len(), 1);
        f.expect(
            "prompts/it/prompts.toml",
            "arrivederci",
            "prompt 'arrivederci' has no English version: missing en/arrivederci.wav",
        );
    }

    #[test]
    fn unknown_queue_is_reported() {
        let f = Fixture::new();
        f.edit("principale.toml", "\"tributi\"", "\"tasse\"");
        f.expect(
            "principale.toml",
            "\"tasse\"",
            "unknown queue 'tasse' (queues in the config: generale, tributi, demografici_cie)",
        );
    }

    #[test]
    fn dead_end_menu_is_reported() {
        let f = Fixture::new();
        f.append("principale.toml", "\n[menu.vuoto]\nprompts = [\"menu_demografici\"]\n");
        f.edit("principale.toml", "9 = { language", "3 = { menu = \"vuoto\" }\n9 = { language");
        f.expect("principale.toml", "[menu.vuoto]", "dead end: menu 'vuoto' has no options and no on_timeout");
    }

    #[test]
    fn menu_with_options_but_no_on_timeout_is_reported() {
        let f = Fixture::new();
        f.edit("principale.toml", "on_timeout = { queue = \"generale\" } # demografici\n", "");
        f.expect("principale.toml", "[menu.demografici]", "menu 'demografici' has no on_timeout");
    }

    #[test]
    fn duplicate_menu_entry_and_unknown_menu_are_reported() {
        let f = Fixture::new();
        f.append("english.toml", "\n[menu.demografici]\nprompts = []\non_timeout = { hangup = true }\n");
        f.edit("principale.toml", "\"demografici\" }", "\"demografic\" }");
        f.edit("english.toml", "language = \"en\"", "language = \"en\"\nentry = \"main\"");
        // Files are read in name order: english.toml comes first.
        let first = f.loc("english.toml", "[menu.demografici]");
        f.expect("principale.toml", "[menu.demografici]", &format!("menu 'demografici' is already defined at {first}"));
        f.expect("principale.toml", "\"demografic\"", "unknown menu 'demografic'");
        f.expect("principale.toml", "entry = ", "`entry` is already set at");
    }

    #[test]
    fn switching_language_needs_a_language_target() {
        let f = Fixture::new();
        f.edit("principale.toml", "{ language = \"en\", menu = \"main\" }", "{ menu = \"main\" }");
        f.expect("principale.toml", "9 = { menu", "menu 'main' is in English: to switch language write");
    }
}
