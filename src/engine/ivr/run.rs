//! One caller's walk through the IVR menus, as a sans-IO state machine.
//!
//! ```text
//!  start ──▶ Playing(menu, seq) ──PlaybackFinished(seq)──▶ Waiting(menu, due)
//!               │  ▲                                          │
//!               │  └──── `*`, invalid key, timeout (retry) ◀──┤
//!               │                                             │
//!               └──key (barge-in: StopPlayback first)─────────┴──key──▶ target
//!  target: Menu ──▶ Playing(new menu) · Language ──▶ SetLanguage + Playing(menu)
//!          Queue ──▶ Play(prompts) + EnterQueue ──▶ Finished
//!          Hangup ──▶ Leaving(seq) ──PlaybackFinished(seq)──▶ Hangup ──▶ Finished
//! ```
//! Owns: the current menu, retries used, the caller's language and the path of choices.
//! Must not touch: the clock (every input carries `now`), media, queues.

use std::time::Instant;

use super::model::{IvrScripts, Menu, MenuId, Target, REPEAT_KEY};
use crate::engine::ids::{DtmfDigit, Language, PromptId, QueueName};

/// The longest path kept for records; later choices are still acted on, not recorded.
const MAX_PATH: usize = 32;

/// What the IVR wants done, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IvrAction {
    /// Play these prompts in order; report `PlaybackFinished(seq)` when done.
    Play {
        /// Identifies this playback; strictly increasing within a run.
        seq: u64,
        /// The prompts, in order.
        prompts: Vec<PromptId>,
    },
    /// Stop whatever is playing (the caller pressed a key during a prompt).
    StopPlayback,
    /// From now on the caller is served in this language.
    SetLanguage(Language),
    /// Put the caller in this queue. The run is finished; a `Play` just before it (the
    /// transfer prompt) is meant to be heard while the caller waits in the queue.
    EnterQueue(QueueName),
    /// Hang up the call. The run is finished.
    Hangup,
}

#[derive(Clone, Debug)]
enum State {
    /// In `menu`, its prompts playing as playback `seq`.
    Playing { menu: MenuId, seq: u64 },
    /// In `menu`, prompts done, waiting for a key until `due`.
    Waiting { menu: MenuId, due: Instant },
    /// Playing a hang-up target's prompts; `Hangup` follows when playback `seq` finishes.
    Leaving { seq: u64 },
    /// Queued or hung up: every input is ignored.
    Finished,
}

/// One caller's walk through the menus. Feed it keys, playback completions and timeouts
/// with `now`; act on the returned [`IvrAction`]s in order; wake it at [`IvrRun::poll_timeout`].
#[derive(Clone, Debug)]
pub struct IvrRun {
    state: State,
    lang: Language,
    path: Vec<String>,
    last_seq: u64,
    retries_used: u32,
}

impl IvrRun {
    /// Starts a run: plays the welcome prompts followed by the entry menu.
    pub fn start(scripts: &IvrScripts, now: Instant) -> (IvrRun, Vec<IvrAction>) {
        let mut run = IvrRun {
            state: State::Finished,
            lang: Language::default(),
            path: Vec::new(),
            last_seq: 0,
            retries_used: 0,
        };
        let actions = match scripts.menu(scripts.entry()) {
            Some(menu) => {
                run.lang = menu.lang;
                run.play_menu(menu, scripts.welcome(), now)
            }
            // IvrScripts::new guarantees the entry exists; hang up rather than panic.
            None => vec![IvrAction::Hangup],
        };
        (run, actions)
    }

    /// The caller pressed a key. During a prompt the key barges in: `StopPlayback` comes first.
    pub fn handle_digit(&mut self, scripts: &IvrScripts, now: Instant, digit: DtmfDigit) -> Vec<IvrAction> {
        let (menu_id, playing) = match &self.state {
            State::Playing { menu, .. } => (menu.clone(), true),
            State::Waiting { menu, .. } => (menu.clone(), false),
            State::Leaving { .. } | State::Finished => return Vec::new(),
        };
        let mut out = Vec::new();
        if playing {
            out.push(IvrAction::StopPlayback);
        }
        let Some(menu) = scripts.menu(&menu_id) else {
            out.extend(self.abort());
            return out;
        };
        let key = digit.as_char();
        if key == REPEAT_KEY {
            out.extend(self.play_menu(menu, &[], now));
        } else if let Some(target) = menu.options.get(&key) {
            self.record(&menu.id, &key.to_string());
            out.extend(self.go(scripts, now, target));
        } else if self.retries_used < menu.retries {
            self.retries_used += 1;
            out.extend(self.play_menu(menu, &menu.invalid_prompts, now));
        } else {
            self.record(&menu.id, "invalid");
            out.extend(self.go(scripts, now, &menu.on_timeout));
        }
        out
    }

    /// Media finished playback `seq`. Starts the no-input timer after a menu's prompts, or
    /// hangs up after a goodbye. A stale `seq` (already replaced by a newer playback) is ignored.
    pub fn handle_playback_finished(&mut self, scripts: &IvrScripts, now: Instant, seq: u64) -> Vec<IvrAction> {
        match &self.state {
            State::Playing { menu, seq: current } if *current == seq => {
                let Some(menu) = scripts.menu(menu) else { return self.abort() };
                self.state = State::Waiting { menu: menu.id.clone(), due: now + menu.timeout };
                Vec::new()
            }
            State::Leaving { seq: current } if *current == seq => {
                self.state = State::Finished;
                vec![IvrAction::Hangup]
            }
            _ => Vec::new(),
        }
    }

    /// The no-input timer may be due. Does nothing unless `now` has reached
    /// [`IvrRun::poll_timeout`]. Repeats the menu while retries remain, else takes `on_timeout`.
    pub fn handle_timeout(&mut self, scripts: &IvrScripts, now: Instant) -> Vec<IvrAction> {
        let menu_id = match &self.state {
            State::Waiting { menu, due } if now >= *due => menu.clone(),
            _ => return Vec::new(),
        };
        let Some(menu) = scripts.menu(&menu_id) else { return self.abort() };
        if self.retries_used < menu.retries {
            self.retries_used += 1;
            self.play_menu(menu, &[], now)
        } else {
            self.record(&menu.id, "timeout");
            self.go(scripts, now, &menu.on_timeout)
        }
    }

    /// When [`IvrRun::handle_timeout`] must be called next, if at all.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Waiting { due, .. } => Some(*due),
            _ => None,
        }
    }

    /// The caller's language now.
    pub fn language(&self) -> Language {
        self.lang
    }

    /// The choices that moved the caller, as `menu:key` (`menu:timeout`, `menu:invalid` when
    /// the retries ran out), e.g. `["principale:1", "demografici:2"]`. At most 32 entries.
    pub fn path(&self) -> &[String] {
        &self.path
    }

    /// The menu the caller is in, if still in one.
    pub fn current_menu(&self) -> Option<&MenuId> {
        match &self.state {
            State::Playing { menu, .. } | State::Waiting { menu, .. } => Some(menu),
            State::Leaving { .. } | State::Finished => None,
        }
    }

    /// True once the run emitted `EnterQueue` or `Hangup`.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Finished)
    }

    fn next_seq(&mut self) -> u64 {
        self.last_seq += 1;
        self.last_seq
    }

    fn record(&mut self, menu: &MenuId, choice: &str) {
        if self.path.len() < MAX_PATH {
            self.path.push(format!("{menu}:{choice}"));
        }
    }

    /// Plays `prefix` then the menu's prompts; with nothing to play, the timer starts now.
    fn play_menu(&mut self, menu: &Menu, prefix: &[PromptId], now: Instant) -> Vec<IvrAction> {
        let prompts: Vec<PromptId> = prefix.iter().chain(&menu.prompts).cloned().collect();
        if prompts.is_empty() {
            self.state = State::Waiting { menu: menu.id.clone(), due: now + menu.timeout };
            return Vec::new();
        }
        let seq = self.next_seq();
        self.state = State::Playing { menu: menu.id.clone(), seq };
        vec![IvrAction::Play { seq, prompts }]
    }

    fn go(&mut self, scripts: &IvrScripts, now: Instant, target: &Target) -> Vec<IvrAction> {
        match target {
            Target::Menu(id) => self.enter(scripts, now, id),
            Target::Language { lang, menu } => {
                self.lang = *lang;
                let mut out = vec![IvrAction::SetLanguage(*lang)];
                out.extend(self.enter(scripts, now, menu));
                out
            }
            Target::Queue { queue, prompts } => {
                let mut out = Vec::new();
                if !prompts.is_empty() {
                    out.push(IvrAction::Play { seq: self.next_seq(), prompts: prompts.clone() });
                }
                out.push(IvrAction::EnterQueue(queue.clone()));
                self.state = State::Finished;
                out
            }
            Target::Hangup { prompts } if prompts.is_empty() => self.abort(),
            Target::Hangup { prompts } => {
                let seq = self.next_seq();
                self.state = State::Leaving { seq };
                vec![IvrAction::Play { seq, prompts: prompts.clone() }]
            }
        }
    }

    fn enter(&mut self, scripts: &IvrScripts, now: Instant, id: &MenuId) -> Vec<IvrAction> {
        self.retries_used = 0;
        match scripts.menu(id) {
            Some(menu) => self.play_menu(menu, &[], now),
            // IvrScripts::new guarantees targets exist; hang up rather than panic.
            None => self.abort(),
        }
    }

    fn abort(&mut self) -> Vec<IvrAction> {
        self.state = State::Finished;
        vec![IvrAction::Hangup]
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::sim::{en, enter, it, menu, play, Sim, TIMEOUT};
    use super::*;

    #[test]
    fn start_plays_welcome_then_entry_menu_and_waits_for_the_prompt() {
        let (sim, actions) = Sim::new();
        assert_eq!(actions, vec![play(1, vec![it("benvenuto"), it("menu_principale")])]);
        assert_eq!(sim.run.current_menu(), Some(&MenuId::new("principale")));
        assert_eq!(sim.run.language(), Language::It);
        assert_eq!(sim.run.poll_timeout(), None, "the timer starts when the prompt ends");
    }

    #[test]
    fn valid_digit_enters_its_queue_with_transfer_prompt() {
        let (mut sim, _) = Sim::new();
        assert!(sim.finish_playback(10).is_empty());
        assert_eq!(sim.run.poll_timeout(), Some(sim.now + TIMEOUT));
        let out = sim.digit('2');
        assert_eq!(out, vec![play(2, vec![it("trasferimento")]), enter("tributi")]);
        assert!(sim.run.is_finished());
        assert_eq!(sim.run.path(), ["principale:2"]);
        assert_eq!(sim.run.poll_timeout(), None);
    }

    #[test]
    fn sub_menu_choice_reaches_its_own_queue() {
        let (mut sim, _) = Sim::new();
        sim.finish_playback(10);
        assert_eq!(sim.digit('1'), vec![play(2, vec![it("menu_demografici")])]);
        assert_eq!(sim.run.current_menu(), Some(&MenuId::new("demografici")));
        sim.finish_playback(5);
        assert_eq!(sim.digit('2'), vec![play(3, vec![it("trasferimento")]), enter("demografici_cie")]);
        assert_eq!(sim.run.path(), ["principale:1", "demografici:2"]);
    }

    #[test]
    fn nine_switches_to_english_and_marks_the_language() {
        let (mut sim, _) = Sim::new();
        sim.finish_playback(10);
        let out = sim.digit('9');
        assert_eq!(out, vec![IvrAction::SetLanguage(Language::En), play(2, vec![en("menu_main")])]);
        assert_eq!(sim.run.language(), Language::En);
        sim.finish_playback(5);
        assert_eq!(sim.digit('2'), vec![play(3, vec![en("trasferimento")]), enter("tributi")]);
        assert_eq!(sim.run.path(), ["principale:9", "main:2"]);
        assert_eq!(sim.run.language(), Language::En);
    }

    #[test]
    fn star_repeats_the_menu_without_using_a_retry() {
        let (mut sim, _) = Sim::new();
        sim.finish_playback(10);
        for seq in 2..6 {
            assert_eq!(sim.digit('*'), vec![play(seq, vec![it("menu_principale")])]);
            sim.finish_playback(10);
        }
        // Both retries are still available: two repeats on timeout, then the general queue.
        assert_eq!(sim.fire_timeout(), vec![play(6, vec![it("menu_principale")])]);
        sim.finish_playback(10);
        assert_eq!(sim.fire_timeout(), vec![play(7, vec![it("menu_principale")])]);
        sim.finish_playback(10);
        assert_eq!(sim.fire_timeout(), vec![play(8, vec![it("trasferimento")]), enter("generale")]);
        assert_eq!(sim.run.path(), ["principale:timeout"]);
    }

    #[test]
    fn invalid_digit_plays_invalid_prompt_then_menu_then_valid_choice_works() {
        let (mut sim, _) = Sim::new();
        sim.finish_playback(10);
        assert_eq!(sim.digit('5'), vec![play(2, vec![it("scelta_non_valida"), it("menu_principale")])]);
        sim.finish_playback(12);
        assert_eq!(sim.digit('2'), vec![play(3, vec![it("trasferimento")]), enter("tributi")]);
        assert_eq!(sim.run.path(), ["principale:2"]);
    }

    #[test]
    fn too_many_invalid_digits_go_to_the_timeout_target() {
        let (mut sim, _) = Sim::new();
        sim.finish_playback(10);
        sim.digit('5');
        sim.finish_playback(10);
        sim.digit('#');
        sim.finish_playback(10);
        assert_eq!(sim.digit('7'), vec![play(4, vec![it("trasferimento")]), enter("generale")]);
        assert_eq!(sim.run.path(), ["principale:invalid"]);
    }

    #[test]
    fn no_input_repeats_up_to_retries_then_goes_to_the_general_queue() {
        let (mut sim, _) = Sim::new();
        sim.finish_playback(10);
        let finished_at = sim.now;
        assert_eq!(sim.run.handle_timeout(&sim.scripts, finished_at + TIMEOUT / 2), vec![], "not due yet");
        assert_eq!(sim.fire_timeout(), vec![play(2, vec![it("menu_principale")])]);
        assert_eq!(sim.now, finished_at + TIMEOUT);
        assert_eq!(sim.run.poll_timeout(), None, "no timer while the menu plays again");
        sim.finish_playback(10);
        assert_eq!(sim.fire_timeout(), vec![play(3, vec![it("menu_principale")])]);
        sim.finish_playback(10);
        assert_eq!(sim.fire_timeout(), vec![play(4, vec![it("trasferimento")]), enter("generale")]);
        assert_eq!(sim.run.path(), ["principale:timeout"]);
        assert!(sim.run.is_finished());
    }

    #[test]
    fn retries_restart_in_each_menu() {
        let (mut sim, _) = Sim::new();
        sim.finish_playback(10);
        sim.fire_timeout();
        sim.finish_playback(10);
        sim.fire_timeout();
        sim.finish_playback(10);
        sim.digit('1');
        sim.finish_playback(5);
        assert_eq!(sim.fire_timeout(), vec![play(5, vec![it("menu_demografici")])]);
    }

    #[test]
    fn digit_during_prompt_barges_in() {
        let (mut sim, _) = Sim::new();
        sim.now += Duration::from_secs(2);
        let out = sim.digit('1');
        assert_eq!(out, vec![IvrAction::StopPlayback, play(2, vec![it("menu_demografici")])]);
        let out = sim.digit('2');
        assert_eq!(out[0], IvrAction::StopPlayback);
        assert_eq!(out[2], enter("demografici_cie"));
    }

    #[test]
    fn stale_playback_finished_is_ignored() {
        let (mut sim, _) = Sim::new();
        sim.digit('*'); // barge in: seq 1 replaced by seq 2
        assert!(sim.run.handle_playback_finished(&sim.scripts, sim.now, 1).is_empty());
        assert_eq!(sim.run.poll_timeout(), None, "seq 1 is stale: no timer");
        sim.finish_playback(10);
        assert!(sim.run.poll_timeout().is_some());
    }

    #[test]
    fn inputs_after_finish_are_ignored() {
        let (mut sim, _) = Sim::new();
        sim.digit('2');
        assert!(sim.run.is_finished());
        assert!(sim.digit('1').is_empty());
        assert!(sim.run.handle_playback_finished(&sim.scripts, sim.now, 2).is_empty());
        assert!(sim.run.handle_timeout(&sim.scripts, sim.now + TIMEOUT * 10).is_empty());
        assert_eq!(sim.run.current_menu(), None);
    }

    #[test]
    fn hangup_target_plays_goodbye_then_hangs_up() {
        let (mut sim, _) = Sim::new();
        sim.finish_playback(10);
        assert_eq!(sim.digit('8'), vec![play(2, vec![it("arrivederci")])]);
        assert!(!sim.run.is_finished());
        assert!(sim.digit('1').is_empty(), "keys during the goodbye are ignored");
        assert_eq!(sim.finish_playback(3), vec![IvrAction::Hangup]);
        assert!(sim.run.is_finished());
    }

    #[test]
    fn menu_without_prompts_starts_its_timer_at_once() {
        let mut silent = menu("silent", Language::It, vec![]);
        silent.prompts.clear();
        let scripts = IvrScripts::new(MenuId::new("silent"), vec![], [silent]).unwrap();
        let now = Sim::origin();
        let (mut run, actions) = IvrRun::start(&scripts, now);
        assert!(actions.is_empty());
        assert_eq!(run.poll_timeout(), Some(now + TIMEOUT));
        assert_eq!(run.handle_timeout(&scripts, now + TIMEOUT), vec![]);
        assert_eq!(run.poll_timeout(), Some(now + TIMEOUT * 2));
    }

    proptest::proptest! {
        /// Any mix of inputs: no panic, increasing seqs, nothing after the end, bounded path.
        #[test]
        fn arbitrary_inputs_keep_the_run_consistent(events in proptest::collection::vec((0u8..20, 0u64..4, 0u64..30), 0..80)) {
            let (mut sim, first) = Sim::new();
            let mut last_seq = 0;
            let mut all = first;
            for (kind, seq_back, secs) in events {
                sim.now += Duration::from_secs(secs);
                let finished = sim.run.is_finished();
                let out = match kind {
                    0..=15 => {
                        let d = DtmfDigit::from_event(kind).unwrap();
                        sim.run.handle_digit(&sim.scripts, sim.now, d)
                    }
                    16 | 17 => {
                        let seq = sim.run.last_seq.saturating_sub(seq_back);
                        sim.run.handle_playback_finished(&sim.scripts, sim.now, seq)
                    }
                    _ => sim.run.handle_timeout(&sim.scripts, sim.now),
                };
                if finished {
                    proptest::prop_assert!(out.is_empty());
                }
                all.extend(out);
            }
            for a in &all {
                if let IvrAction::Play { seq, prompts } = a {
                    proptest::prop_assert!(*seq > last_seq);
                    proptest::prop_assert!(!prompts.is_empty());
                    last_seq = *seq;
                }
            }
            let ends = all.iter().filter(|a| matches!(a, IvrAction::EnterQueue(_) | IvrAction::Hangup)).count();
            proptest::prop_assert!(ends <= 1);
            proptest::prop_assert_eq!(ends == 1, sim.run.is_finished());
            proptest::prop_assert!(sim.run.path().len() <= MAX_PATH);
        }
    }
}
