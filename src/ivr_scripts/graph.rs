//! Rules on the shape of the menu graph: every menu reachable from the entry, every menu
//! able to reach a queue or a hang-up, and each other-language tree mirroring the entry's.
//!
//! Owns: those three rules and their messages. Must not touch: per-value rules
//! (`validate.rs`), files, audio.
//!
//! Mirroring: a language switch from menu M to menu X (e.g. `principale` key 9 → `main`)
//! says X mirrors M. Mirrored menus must offer the same keys leading to the same kind of
//! place: the same queue, a hang-up, or menus that mirror each other in turn. Language
//! switches themselves are not compared.

use std::collections::{BTreeSet, VecDeque};

use super::parse::{ScriptFile, TargetSrc};
use super::prompts::language_name;
use super::validate::MenuIndex;
use super::Diagnostic;
use crate::engine::ivr::{MenuId, Target};

/// Applies the graph rules from `entry`.
pub(super) fn check(menus: &MenuIndex<'_>, entry: &MenuId, diags: &mut Vec<Diagnostic>) {
    unreachable(menus, entry, diags);
    without_exit(menus, diags);
    mirrors(menus, entry, diags);
}

fn unreachable(menus: &MenuIndex<'_>, entry: &MenuId, diags: &mut Vec<Diagnostic>) {
    let mut seen: BTreeSet<&MenuId> = BTreeSet::new();
    let mut todo = VecDeque::from([entry]);
    while let Some(id) = todo.pop_front() {
        let Some((_, menu)) = menus.get(id) else { continue };
        if !seen.insert(&menu.id) {
            continue;
        }
        todo.extend(menu.targets().filter_map(|t| t.target.menu()));
    }
    for (file, menu) in menus.values().filter(|(_, m)| !seen.contains(&m.id)) {
        let msg = format!("menu '{}' is unreachable: no choice leads to it from '{entry}'", menu.id);
        diags.push(Diagnostic::new(&file.path, menu.line, msg));
    }
}

/// A menu "exits" if some target is a queue or a hang-up, or a menu that exits. A target
/// naming an unknown menu counts as an exit here: it is already reported as unknown.
fn without_exit(menus: &MenuIndex<'_>, diags: &mut Vec<Diagnostic>) {
    let mut exits: BTreeSet<&MenuId> = BTreeSet::new();
    loop {
        let before = exits.len();
        for (_, m) in menus.values() {
            let out = m.targets().any(|t| match t.target.menu() {
                None => true,
                Some(to) => exits.contains(to) || !menus.contains_key(to),
            });
            if out {
                exits.insert(&m.id);
            }
        }
        if exits.len() == before {
            break;
        }
    }
    for (file, m) in menus.values() {
        if exits.contains(&m.id) || m.targets().next().is_none() {
            continue; // a menu with no targets at all is reported as a dead end
        }
        let detail = match cycle_from(menus, &m.id) {
            Some(cycle) => format!("loop without exit: {}", cycle.join(" → ")),
            None => "it only leads to menus without an exit".to_string(),
        };
        let msg = format!("menu '{}' never leads to a queue or a hang-up ({detail})", m.id);
        diags.push(Diagnostic::new(&file.path, m.line, msg));
    }
}

/// A path of menu ids from `start` back to `start`, if there is one (depth-first).
fn cycle_from(menus: &MenuIndex<'_>, start: &MenuId) -> Option<Vec<String>> {
    let mut path = vec![start.clone()];
    let mut seen = BTreeSet::from([start.clone()]);
    // Each frame: the menu's targets still to try.
    let mut stack: Vec<Vec<MenuId>> = vec![next_menus(menus, start)];
    while let Some(frame) = stack.last_mut() {
        let Some(to) = frame.pop() else {
            stack.pop();
            path.pop();
            continue;
        };
        if &to == start {
            path.push(to);
            return Some(path.iter().map(|m| m.to_string()).collect());
        }
        if seen.insert(to.clone()) {
            stack.push(next_menus(menus, &to));
            path.push(to);
        }
    }
    None
}

fn next_menus(menus: &MenuIndex<'_>, id: &MenuId) -> Vec<MenuId> {
    let Some((_, m)) = menus.get(id) else { return Vec::new() };
    let mut next: Vec<MenuId> = m.targets().filter_map(|t| t.target.menu().cloned()).collect();
    next.reverse(); // popped from the back: try keys in order
    next
}

fn mirrors(menus: &MenuIndex<'_>, entry: &MenuId, diags: &mut Vec<Diagnostic>) {
    let Some((_, entry_menu)) = menus.get(entry) else { return };
    let base = entry_menu.lang;
    let mut pairs = BTreeSet::new();
    for (_, m) in menus.values().filter(|(_, m)| m.lang == base) {
        for t in m.targets() {
            if let Target::Language { lang, menu } = &t.target {
                if *lang != base {
                    mirror(menus, &m.id, menu, &mut pairs, diags);
                }
            }
        }
    }
}

fn mirror(
    menus: &MenuIndex<'_>,
    a: &MenuId,
    b: &MenuId,
    pairs: &mut BTreeSet<(MenuId, MenuId)>,
    diags: &mut Vec<Diagnostic>,
) {
    let (Some((_, ma)), Some((fb, mb))) = (menus.get(a), menus.get(b)) else { return };
    if !pairs.insert((a.clone(), b.clone())) {
        return;
    }
    let theirs = format!("the {} menu '{}'", language_name(ma.lang), ma.id);
    let mut todo = Vec::new();
    for (key, ta) in ma.options.iter().filter(|(_, t)| !is_switch(t)) {
        match mb.options.get(key) {
            None => {
                let msg = format!("menu '{}' must mirror {theirs}: key {key} is missing", mb.id);
                diags.push(Diagnostic::new(&fb.path, mb.line, msg));
            }
            Some(tb) => compare(fb, &format!("key {key}"), ta, tb, &theirs, &mut todo, diags),
        }
    }
    for (key, tb) in mb.options.iter().filter(|(_, t)| !is_switch(t)) {
        if !ma.options.contains_key(key) {
            let msg = format!("key {key} is not in {theirs}, which this menu mirrors");
            diags.push(Diagnostic::new(&fb.path, tb.line, msg));
        }
    }
    if let (Some(ta), Some(tb)) = (&ma.on_timeout, &mb.on_timeout) {
        compare(fb, "on_timeout", ta, tb, &theirs, &mut todo, diags);
    }
    for (x, y) in todo {
        mirror(menus, &x, &y, pairs, diags);
    }
}

fn is_switch(t: &TargetSrc) -> bool {
    matches!(t.target, Target::Language { .. })
}

fn compare(
    fb: &ScriptFile,
    what: &str,
    ta: &TargetSrc,
    tb: &TargetSrc,
    theirs: &str,
    todo: &mut Vec<(MenuId, MenuId)>,
    diags: &mut Vec<Diagnostic>,
) {
    let problem = match (&ta.target, &tb.target) {
        (Target::Menu(x), Target::Menu(y)) => {
            todo.push((x.clone(), y.clone()));
            None
        }
        (Target::Queue { queue: qa, .. }, Target::Queue { queue: qb, .. }) if qa != qb => {
            Some(format!("{what} leads to queue '{qb}' here but to queue '{qa}' in {theirs}"))
        }
        (Target::Queue { .. }, Target::Queue { .. }) | (Target::Hangup { .. }, Target::Hangup { .. }) => None,
        (a, b) => Some(format!("{what} leads to {} here but to {} in {theirs}", kind(b), kind(a))),
    };
    if let Some(msg) = problem {
        diags.push(Diagnostic::new(&fb.path, tb.line, msg));
    }
}

fn kind(t: &Target) -> String {
    match t {
        Target::Menu(m) => format!("menu '{m}'"),
        Target::Queue { queue, .. } => format!("queue '{queue}'"),
        Target::Language { lang, menu } => format!("the {} menu '{menu}'", language_name(*lang)),
        Target::Hangup { .. } => "a hang-up".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::Fixture;

    #[test]
    fn unreachable_menu_is_reported_at_its_header() {
        let f = Fixture::new();
        f.append("principale.toml", "\n[menu.orfano]\nprompts = []\non_timeout = { queue = \"generale\" }\n");
        assert_eq!(f.errors().len(), 1);
        f.expect(
            "principale.toml",
            "[menu.orfano]",
            "menu 'orfano' is unreachable: no choice leads to it from 'principale'",
        );
    }

    #[test]
    fn loop_without_exit_is_reported_with_the_cycle() {
        let f = Fixture::new();
        f.append("principale.toml", "\n[menu.giro]\nprompts = []\non_timeout = { menu = \"demografici\" }\n");
        f.edit(
            "principale.toml",
            "2 = { queue = \"demografici_cie\", prompts = [\"trasferimento\"] }",
            "2 = { menu = \"giro\" }",
        );
        f.edit(
            "principale.toml",
            "on_timeout = { queue = \"generale\" } # demografici",
            "on_timeout = { menu = \"giro\" }",
        );
        f.expect(
            "principale.toml",
            "[menu.demografici]",
            "menu 'demografici' never leads to a queue or a hang-up (loop without exit: demografici → giro → demografici)",
        );
        f.expect("principale.toml", "[menu.giro]", "(loop without exit: giro → demografici → giro)");
    }

    #[test]
    fn english_menu_must_lead_where_the_italian_one_does() {
        let f = Fixture::new();
        f.edit("english.toml", "2 = { queue = \"demografici_cie\"", "2 = { queue = \"generale\"");
        f.expect(
            "english.toml",
            "2 = { queue = \"generale\"",
            "key 2 leads to queue 'generale' here but to queue 'demografici_cie' in the Italian menu 'demografici'",
        );
    }

    #[test]
    fn english_menu_must_offer_the_italian_keys() {
        let f = Fixture::new();
        f.edit("english.toml", "1 = { menu = \"registry\" }\n", "");
        f.append("english.toml", "\n[menu.main.options.7]\nhangup = true\n");
        f.expect(
            "english.toml",
            "[menu.main]",
            "menu 'main' must mirror the Italian menu 'principale': key 1 is missing",
        );
        f.expect("english.toml", "[menu.main.options.7]", "key 7 is not in the Italian menu 'principale'");
    }

    #[test]
    fn english_on_timeout_must_match() {
        let f = Fixture::new();
        f.edit("english.toml", "on_timeout = { queue = \"generale\" }", "on_timeout = { hangup = true }");
        f.expect(
            "english.toml",
            "on_timeout = { hangup",
            "on_timeout leads to a hang-up here but to queue 'generale' in the Italian menu 'demografici'",
        );
    }
}
