//! The typed IVR model: menus, their choices and where each choice leads.
//!
//! Owns: `MenuId`, `Menu`, `Target`, `IvrScripts` and the invariants the interpreter relies on
//! (the entry menu exists, every menu a target names exists, menu ids are unique).
//! Must not touch: files, TOML, audio. `ivr_scripts/` parses and validates the data, then
//! builds this model with [`IvrScripts::new`]; tests build it directly.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::engine::ids::{Language, PromptId, QueueName};

/// A menu's id as written in the scripts, e.g. `principale` or `demografici`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MenuId(pub String);

impl MenuId {
    /// Builds a menu id.
    pub fn new(id: impl Into<String>) -> Self {
        MenuId(id.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MenuId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a choice (or running out of retries) takes the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Another menu in the same language.
    Menu(MenuId),
    /// A queue: `prompts` (e.g. "la stiamo trasferendo") are played as the caller enters it.
    Queue {
        /// The queue, as named in the config.
        queue: QueueName,
        /// Played while the caller joins the queue; may be empty.
        prompts: Vec<PromptId>,
    },
    /// Switch the caller's language, then enter `menu` (a menu in that language).
    Language {
        /// The caller's new language.
        lang: Language,
        /// The menu to enter.
        menu: MenuId,
    },
    /// Play `prompts` (if any), then hang up.
    Hangup {
        /// The goodbye message; may be empty.
        prompts: Vec<PromptId>,
    },
}

impl Target {
    /// The menu this target enters, if it enters one.
    pub fn menu(&self) -> Option<&MenuId> {
        match self {
            Target::Menu(m) | Target::Language { menu: m, .. } => Some(m),
            Target::Queue { .. } | Target::Hangup { .. } => None,
        }
    }

    /// True when the target ends the IVR (queue or hang-up).
    pub fn is_exit(&self) -> bool {
        matches!(self, Target::Queue { .. } | Target::Hangup { .. })
    }
}

/// One menu: what it says, which keys it accepts and what happens when the caller is silent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Menu {
    /// The menu's id.
    pub id: MenuId,
    /// The language its prompts are in.
    pub lang: Language,
    /// Played on entry and on every repeat.
    pub prompts: Vec<PromptId>,
    /// Accepted keys, by key character (`DtmfDigit::as_char`). `*` always repeats the menu.
    pub options: BTreeMap<char, Target>,
    /// How long to wait for a key after the prompts finished.
    pub timeout: Duration,
    /// How many times the menu is repeated after no input or an invalid key.
    pub retries: u32,
    /// Where the caller goes when the retries are used up.
    pub on_timeout: Target,
    /// Played before the menu prompts after an invalid key.
    pub invalid_prompts: Vec<PromptId>,
}

/// The key that always repeats the current menu; scripts may not assign it.
pub const REPEAT_KEY: char = '*';

/// Why a set of menus cannot form [`IvrScripts`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    /// The entry menu is not among the menus.
    #[error("the entry menu '{0}' does not exist")]
    UnknownEntry(MenuId),
    /// Two menus share an id.
    #[error("menu '{0}' is defined twice")]
    DuplicateMenu(MenuId),
    /// A target names a menu that does not exist.
    #[error("menu '{from}' leads to menu '{to}', which does not exist")]
    UnknownMenu {
        /// The menu holding the target.
        from: MenuId,
        /// The missing menu.
        to: MenuId,
    },
    /// A menu assigns the repeat key.
    #[error("menu '{0}' assigns '*', which always repeats the menu")]
    RepeatKeyAssigned(MenuId),
}

/// A complete, consistent set of menus with an entry point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IvrScripts {
    entry: MenuId,
    welcome: Vec<PromptId>,
    menus: BTreeMap<MenuId, Menu>,
}

impl IvrScripts {
    /// Builds the model. `welcome` is played once, before the entry menu's prompts.
    /// Fails if the entry or a target menu is missing, an id repeats, or `*` is assigned.
    pub fn new(
        entry: MenuId,
        welcome: Vec<PromptId>,
        menus: impl IntoIterator<Item = Menu>,
    ) -> Result<IvrScripts, ScriptError> {
        let mut by_id = BTreeMap::new();
        for menu in menus {
            if by_id.contains_key(&menu.id) {
                return Err(ScriptError::DuplicateMenu(menu.id));
            }
            by_id.insert(menu.id.clone(), menu);
        }
        if !by_id.contains_key(&entry) {
            return Err(ScriptError::UnknownEntry(entry));
        }
        for menu in by_id.values() {
            if menu.options.contains_key(&REPEAT_KEY) {
                return Err(ScriptError::RepeatKeyAssigned(menu.id.clone()));
            }
            let targets = menu.options.values().chain(std::iter::once(&menu.on_timeout));
            for to in targets.filter_map(Target::menu) {
                if !by_id.contains_key(to) {
                    return Err(ScriptError::UnknownMenu { from: menu.id.clone(), to: to.clone() });
                }
            }
        }
        Ok(IvrScripts { entry, welcome, menus: by_id })
    }

    /// The menu every call starts in.
    pub fn entry(&self) -> &MenuId {
        &self.entry
    }

    /// Prompts played once before the entry menu.
    pub fn welcome(&self) -> &[PromptId] {
        &self.welcome
    }

    /// A menu by id.
    pub fn menu(&self, id: &MenuId) -> Option<&Menu> {
        self.menus.get(id)
    }

    /// Every menu, by id.
    pub fn menus(&self) -> impl Iterator<Item = &Menu> {
        self.menus.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn menu(id: &str, options: &[(char, Target)]) -> Menu {
        Menu {
            id: MenuId::new(id),
            lang: Language::It,
            prompts: vec![PromptId::new(Language::It, id)],
            options: options.iter().cloned().collect(),
            timeout: Duration::from_secs(5),
            retries: 2,
            on_timeout: Target::Hangup { prompts: vec![] },
            invalid_prompts: vec![],
        }
    }

    #[test]
    fn consistent_menus_build() {
        let sub = Target::Menu(MenuId::new("sub"));
        let scripts =
            IvrScripts::new(MenuId::new("main"), vec![], [menu("main", &[('1', sub)]), menu("sub", &[])]).unwrap();
        assert_eq!(scripts.entry().as_str(), "main");
        assert_eq!(scripts.menus().count(), 2);
        assert!(scripts.menu(&MenuId::new("sub")).is_some());
    }

    #[test]
    fn missing_entry_is_rejected() {
        let err = IvrScripts::new(MenuId::new("x"), vec![], [menu("main", &[])]).unwrap_err();
        assert_eq!(err, ScriptError::UnknownEntry(MenuId::new("x")));
    }

    #[test]
    fn target_to_missing_menu_is_rejected() {
        let to = Target::Language { lang: Language::En, menu: MenuId::new("main_en") };
        let err = IvrScripts::new(MenuId::new("main"), vec![], [menu("main", &[('9', to)])]).unwrap_err();
        assert!(matches!(err, ScriptError::UnknownMenu { .. }), "{err}");
    }

    #[test]
    fn duplicate_menu_and_star_are_rejected() {
        let err = IvrScripts::new(MenuId::new("main"), vec![], [menu("main", &[]), menu("main", &[])]).unwrap_err();
        assert_eq!(err, ScriptError::DuplicateMenu(MenuId::new("main")));
        let star = [menu("main", &[('*', Target::Hangup { prompts: vec![] })])];
        let err = IvrScripts::new(MenuId::new("main"), vec![], star).unwrap_err();
        assert_eq!(err, ScriptError::RepeatKeyAssigned(MenuId::new("main")));
    }
}
