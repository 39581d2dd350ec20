//! Test driver: a small copy of the Bari menu tree and one IVR run on simulated time.
//!
//! Owns: fixtures for the interpreter's tests (compiled only with `cfg(test)`).
//! Must not touch: the wall clock beyond one arbitrary origin instant; only differences matter.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::model::{IvrScripts, Menu, MenuId, Target};
use super::run::{IvrAction, IvrRun};
use crate::engine::ids::{DtmfDigit, Language, PromptId, QueueName};

pub(crate) const TIMEOUT: Duration = Duration::from_secs(6);

pub(crate) fn it(name: &str) -> PromptId {
    PromptId::new(Language::It, name)
}

pub(crate) fn en(name: &str) -> PromptId {
    PromptId::new(Language::En, name)
}

pub(crate) fn queue(name: &str, lang: Language) -> Target {
    Target::Queue { queue: QueueName(name.into()), prompts: vec![PromptId::new(lang, "trasferimento")] }
}

/// A menu with prompt `menu_<id>`, a 6 s timeout, 2 retries and the general queue on timeout.
pub(crate) fn menu(id: &str, lang: Language, options: Vec<(char, Target)>) -> Menu {
    Menu {
        id: MenuId::new(id),
        lang,
        prompts: vec![PromptId::new(lang, format!("menu_{id}"))],
        options: options.into_iter().collect::<BTreeMap<_, _>>(),
        timeout: TIMEOUT,
        retries: 2,
        on_timeout: queue("generale", lang),
        invalid_prompts: vec![PromptId::new(lang, "scelta_non_valida")],
    }
}

/// Main menu (1 sub-menu, 2 queue, 8 goodbye, 9 English), one sub-menu, an English mirror.
pub(crate) fn scripts() -> IvrScripts {
    use Language::{En, It};
    let menus = [
        menu(
            "principale",
            It,
            vec![
                ('1', Target::Menu(MenuId::new("demografici"))),
                ('2', queue("tributi", It)),
                ('8', Target::Hangup { prompts: vec![it("arrivederci")] }),
                ('9', Target::Language { lang: En, menu: MenuId::new("main") }),
            ],
        ),
        menu("demografici", It, vec![('2', queue("demografici_cie", It))]),
        menu("main", En, vec![('2', queue("tributi", En))]),
    ];
    match IvrScripts::new(MenuId::new("principale"), vec![it("benvenuto")], menus) {
        Ok(s) => s,
        Err(e) => panic!("fixture is consistent: {e}"),
    }
}

pub(crate) fn play(seq: u64, prompts: Vec<PromptId>) -> IvrAction {
    IvrAction::Play { seq, prompts }
}

pub(crate) fn enter(q: &str) -> IvrAction {
    IvrAction::EnterQueue(QueueName(q.into()))
}

/// Drives one run on simulated time, remembering the playback in progress.
pub(crate) struct Sim {
    pub(crate) scripts: IvrScripts,
    pub(crate) run: IvrRun,
    pub(crate) now: Instant,
    pub(crate) playing: Option<u64>,
}

impl Sim {
    /// An arbitrary origin for simulated time.
    #[allow(clippy::disallowed_methods)] // tests need some Instant; only differences matter
    pub(crate) fn origin() -> Instant {
        Instant::now()
    }

    /// Starts a run over [`scripts`]; returns the start actions too.
    pub(crate) fn new() -> (Sim, Vec<IvrAction>) {
        let scripts = scripts();
        let now = Sim::origin();
        let (run, actions) = IvrRun::start(&scripts, now);
        let mut sim = Sim { scripts, run, now, playing: None };
        sim.note(&actions);
        (sim, actions)
    }

    fn note(&mut self, actions: &[IvrAction]) {
        for a in actions {
            if let IvrAction::Play { seq, .. } = a {
                self.playing = Some(*seq);
            }
        }
    }

    /// Presses a key now.
    pub(crate) fn digit(&mut self, c: char) -> Vec<IvrAction> {
        let Some(d) = DtmfDigit::from_char(c) else { panic!("not a key: {c}") };
        let out = self.run.handle_digit(&self.scripts, self.now, d);
        self.note(&out);
        out
    }

    /// Lets the latest playback finish after `secs` seconds.
    pub(crate) fn finish_playback(&mut self, secs: u64) -> Vec<IvrAction> {
        self.now += Duration::from_secs(secs);
        let Some(seq) = self.playing.take() else { panic!("nothing is playing") };
        let out = self.run.handle_playback_finished(&self.scripts, self.now, seq);
        self.note(&out);
        out
    }

    /// Jumps to the no-input deadline and fires it.
    pub(crate) fn fire_timeout(&mut self) -> Vec<IvrAction> {
        let Some(due) = self.run.poll_timeout() else { panic!("no timer armed") };
        self.now = due;
        let out = self.run.handle_timeout(&self.scripts, self.now);
        self.note(&out);
        out
    }
}
