//! What a waiting caller hears: the message on entering a queue, the periodic updates between
//! music on hold, and the expected wait they are told.
//!
//! Owns: the `impl Engine` methods that build those messages, the `Announce` timer, the
//! inputs of the estimate (the lines serving a queue, from the board) and the spoken
//! fragments (pure functions at the bottom).
//! Decisions: on entering, `attesa` when no operator of the queue is free, then the position
//! and, when it can be estimated, the expected wait, then the exit key if any. Every
//! `announce_interval` the caller hears the position and wait again only if the spoken
//! position went down (never a higher one: a higher-priority caller or an overflowed caller
//! who joined earlier may go ahead), else the next informational prompt. No update while an
//! operator's phone rings for the caller or a message still plays. The wait is said only when
//! an operator serving the queue is logged in and not paused, the talk time is known (see
//! `estimate.rs`) and it is under an hour; every told estimate is an ANNOUNCE event.
//! Must not touch: the line's order, offers, exits (`join.rs`, `offer.rs`, `exits.rs`).

use std::time::Duration;

use super::call::Stage;
use super::estimate::{self, Model, Slot};
use super::ids::{CallId, DtmfDigit, PromptId, QueueName};
use super::queue::{ExitTo, QueueEventKind};
use super::timers::TimerKey;
use super::{Engine, Now, Output};

/// Positions above this are spoken as "more than ten people ahead" (`posizione_oltre`).
const SPOKEN_POSITIONS: usize = 11;

impl Engine {
    /// The expected wait of the caller at `position` in `queue`; `None` when no operator
    /// serves it now or its talk time is not known yet.
    pub(super) fn expected_wait(&mut self, now: Now, queue: &QueueName, position: usize) -> Option<Duration> {
        let slots = self.slots(now, queue, position);
        let q = self.queues.get(queue)?;
        let model = Model {
            history: &q.history,
            min_samples: q.setup.wait_min_samples,
            prior: q.setup.expected_talk,
            wrap_up: q.setup.wrap_up,
        };
        estimate::estimate(&slots, position, &model, &mut self.estimate_rng)
    }

    /// The lines serving `queue` now: operators logged in and not paused who serve it, one
    /// line per call they may take at once. An operator's idle lines all free at the same
    /// moment, so more than `position` of them cannot change the caller's wait: they are
    /// capped there (an operator with `max_calls` 5000 would otherwise cost 5000 lines in
    /// every run of the estimate).
    ///
    /// When enough lines are free now for everyone up to the caller, the busy lines cannot
    /// change the wait, and only those free lines are returned: looking up each call in
    /// progress (hundreds in a large centre, for every caller who joins) was most of the
    /// estimate's cost under load.
    fn slots(&self, now: Now, queue: &QueueName, position: usize) -> Vec<Slot> {
        let wrap_up = self.queues.get(queue).map(|q| q.setup.wrap_up).unwrap_or_default();
        let serving = || self.board.logged_in().filter(|op| op.paused.is_none() && op.account.level_in(queue).is_some());
        let ready: usize = serving()
            .filter(|op| op.wrap_up_until.is_none_or(|t| t <= now.instant))
            .map(|op| op.idle_lines())
            .sum();
        if ready >= position {
            return vec![Slot::FREE; position];
        }
        let mut slots = Vec::new();
        for op in serving() {
            for call in &op.calls {
                let talking_for = match self.calls.get(call).map(|c| &c.stage) {
                    Some(Stage::Connected(c)) => now.instant.saturating_duration_since(c.answered_at),
                    _ => Duration::ZERO,
                };
                slots.push(Slot { talking_for: Some(talking_for), then: wrap_up });
            }
            for call in &op.offers {
                // Ringing for a caller of this queue: that caller is in the line ahead and
                // takes the line. For another queue's caller: a whole call first.
                let ours = self.calls.get(call).is_some_and(|c| c.queue.as_ref() == Some(queue));
                slots.push(if ours { Slot::FREE } else { Slot { talking_for: Some(Duration::ZERO), then: wrap_up } });
            }
            let idle = op.idle_lines().min(position);
            let rest = op.wrap_up_until.map(|t| t.saturating_duration_since(now.instant)).unwrap_or_default();
            slots.extend(std::iter::repeat_n(Slot { talking_for: None, then: rest }, idle));
        }
        slots
    }

    /// Position, wait and exit key as prompt names for the caller at `position`; emits
    /// ANNOUNCE when a position or a wait is said. Returns the names and the told wait.
    fn status(&mut self, now: Now, id: &CallId, queue: &QueueName, position: usize) -> (Vec<String>, Option<Duration>) {
        let Some(q) = self.queues.get(queue) else { return (Vec::new(), None) };
        let (say_position, say_wait) = (q.setup.announce_position, q.setup.announce_wait);
        let hint = match (q.setup.exit_key, q.setup.exit_to, &q.setup.overflow) {
            (Some(key), ExitTo::MainMenu, _) => exit_hint(key, ExitTo::MainMenu),
            (Some(key), ExitTo::Overflow, Some(_)) => exit_hint(key, ExitTo::Overflow),
            _ => Vec::new(),
        };
        let mut names = Vec::new();
        if say_position {
            names.push(position_prompt(position));
        }
        let mut told = None;
        if say_wait {
            if let Some(wait) = self.expected_wait(now, queue, position) {
                if let Some(words) = wait_fragments(wait) {
                    names.extend(words);
                    told = Some(wait);
                }
            }
        }
        if say_position || told.is_some() {
            let secs = told.map(|w| w.as_secs().to_string()).unwrap_or_default();
            self.queue_event(now, id, queue, None, QueueEventKind::Announce, vec![position.to_string(), secs]);
        }
        names.extend(hint);
        (names, told)
    }

    /// The message on entering `queue` at `position`, after `lead` (the IVR's transfer
    /// prompt), then music on hold; arms the updates.
    pub(super) fn play_entry_message(&mut self, now: Now, id: &CallId, queue: &QueueName, position: usize, lead: Vec<PromptId>) {
        let busy = !self.board.free().any(|op| op.account.level_in(queue).is_some());
        let (status, told) = self.status(now, id, queue, position);
        let interval = self.queues.get(queue).and_then(|q| q.setup.announce_interval);
        let Some(call) = self.calls.get_mut(id) else { return };
        let lang = call.language;
        let mut prompts = lead;
        if busy {
            prompts.push(PromptId::new(lang, "attesa"));
        }
        prompts.extend(status.into_iter().map(|n| PromptId::new(lang, n)));
        if let Stage::Queued(w) = &mut call.stage {
            w.told_position = Some(position.min(SPOKEN_POSITIONS + 1));
        }
        call.entry_estimate = told.map(|w| (now.instant, w));
        // Measured from the join time, like the recorded wait: a fresh join, or a caller
        // refused and moved on at the instant they joined.
        if call.queued_at == Some(now.instant) {
            call.announced_wait = told;
        }
        play_then_music(&mut self.outputs, call, prompts);
        if let Some(interval) = interval {
            self.timers.set(TimerKey::Announce(id.clone()), now.instant + interval);
        }
    }

    /// The update timer: the new position and wait if the position went down, else the next
    /// informational prompt (see the module docs).
    pub(super) fn on_announce_tick(&mut self, now: Now, id: &CallId) {
        let Some(call) = self.calls.get(id) else { return };
        let (Stage::Queued(w), Some(queue)) = (&call.stage, &call.queue) else { return };
        let Some(q) = self.queues.get(queue) else { return };
        let Some(interval) = q.setup.announce_interval else { return };
        self.timers.set(TimerKey::Announce(id.clone()), now.instant + interval);
        if !w.rung.is_empty() || call.music_after.is_some() || call.hangup_after.is_some() {
            return;
        }
        let queue = queue.clone();
        let position = q.position(id).unwrap_or(1);
        let spoken = position.min(SPOKEN_POSITIONS + 1);
        let lower = w.told_position.is_none_or(|told| spoken < told);
        let speaks = q.setup.announce_position || q.setup.announce_wait;
        let info = (!q.setup.info_prompts.is_empty()).then(|| q.setup.info_prompts[w.info_next % q.setup.info_prompts.len()].clone());
        let names = if lower && speaks {
            let (names, _) = self.status(now, id, &queue, position);
            if let Some(Stage::Queued(w)) = self.calls.get_mut(id).map(|c| &mut c.stage) {
                w.told_position = Some(spoken);
            }
            names
        } else if let Some(info) = info {
            if let Some(Stage::Queued(w)) = self.calls.get_mut(id).map(|c| &mut c.stage) {
                w.info_next += 1;
            }
            vec![info]
        } else {
            Vec::new()
        };
        let Some(call) = self.calls.get_mut(id) else { return };
        if !names.is_empty() {
            let lang = call.language;
            play_then_music(&mut self.outputs, call, names.into_iter().map(|n| PromptId::new(lang, n)).collect());
        }
    }
}

/// Plays `prompts`, then music on hold (at once if there is nothing to play).
fn play_then_music(outputs: &mut std::collections::VecDeque<Output>, call: &mut super::call::Call, prompts: Vec<PromptId>) {
    if prompts.is_empty() {
        call.music_after = None;
        outputs.push_back(Output::PlayMusic { call: call.id.clone() });
        return;
    }
    let seq = call.last_seq + 1;
    call.last_seq = seq;
    call.music_after = Some(seq);
    outputs.push_back(Output::Play { call: call.id.clone(), seq, prompts });
}

/// The position prompt: `posizione_1` … `posizione_11`, then `posizione_oltre`.
pub(super) fn position_prompt(position: usize) -> String {
    if position <= SPOKEN_POSITIONS {
        format!("posizione_{}", position.max(1))
    } else {
        "posizione_oltre".to_string()
    }
}

/// The expected wait in words: `meno_di_un_minuto` under a minute, else `attesa_stimata`,
/// the minutes (rounded to the nearest) and `minuto`/`minuti`; `None` from an hour on.
pub(super) fn wait_fragments(wait: Duration) -> Option<Vec<String>> {
    let secs = wait.as_secs();
    if secs < 60 {
        return Some(vec!["meno_di_un_minuto".to_string()]);
    }
    let minutes = (secs + 30) / 60;
    if minutes >= 60 {
        return None;
    }
    let unit = if minutes == 1 { "minuto" } else { "minuti" };
    Some(vec!["attesa_stimata".to_string(), format!("num_{minutes}"), unit.to_string()])
}

/// "To go back to the main menu / to another service, press" and the key's name; nothing for
/// the letter keys, which have no spoken name.
pub(super) fn exit_hint(key: DtmfDigit, to: ExitTo) -> Vec<String> {
    let name = match key {
        DtmfDigit::Pound => "tasto_cancelletto".to_string(),
        DtmfDigit::Star => "tasto_asterisco".to_string(),
        DtmfDigit::Digit(d) => format!("num_{d}"),
        DtmfDigit::Letter(_) => return Vec::new(),
    };
    let lead = match to {
        ExitTo::MainMenu => "uscita_menu",
        ExitTo::Overflow => "uscita_trasferimento",
    };
    vec![lead.to_string(), name]
}

/// Every prompt name this module can say (besides `num_*`, checked with the schedule's).
pub(super) fn prompt_names() -> Vec<String> {
    let mut names: Vec<String> = (1..=SPOKEN_POSITIONS).map(|p| format!("posizione_{p}")).collect();
    names.extend(
        [
            "posizione_oltre",
            "attesa_stimata",
            "minuto",
            "minuti",
            "meno_di_un_minuto",
            "servizi_online",
            "uscita_menu",
            "uscita_trasferimento",
            "tasto_cancelletto",
            "tasto_asterisco",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_spoken_up_to_eleven_then_as_more_than_ten_ahead() {
        assert_eq!(position_prompt(1), "posizione_1");
        assert_eq!(position_prompt(11), "posizione_11");
        assert_eq!(position_prompt(12), "posizione_oltre");
        assert_eq!(position_prompt(400), "posizione_oltre");
    }

    #[test]
    fn waits_round_to_whole_minutes_with_less_than_a_minute_alone_and_nothing_past_an_hour() {
        let w = |s| wait_fragments(Duration::from_secs(s));
        assert_eq!(w(0), Some(vec!["meno_di_un_minuto".to_string()]));
        assert_eq!(w(59), Some(vec!["meno_di_un_minuto".to_string()]));
        assert_eq!(w(60), Some(vec!["attesa_stimata".into(), "num_1".into(), "minuto".into()]));
        assert_eq!(w(89), Some(vec!["attesa_stimata".into(), "num_1".into(), "minuto".into()]));
        assert_eq!(w(90), Some(vec!["attesa_stimata".into(), "num_2".into(), "minuti".into()]));
        assert_eq!(w(59 * 60 + 29), Some(vec!["attesa_stimata".into(), "num_59".into(), "minuti".into()]));
        assert_eq!(w(59 * 60 + 30), None);
    }

    #[test]
    fn the_exit_hint_names_the_key() {
        assert_eq!(exit_hint(DtmfDigit::Pound, ExitTo::MainMenu), ["uscita_menu", "tasto_cancelletto"]);
        assert_eq!(exit_hint(DtmfDigit::Digit(0), ExitTo::Overflow), ["uscita_trasferimento", "num_0"]);
        assert!(exit_hint(DtmfDigit::Letter('A'), ExitTo::MainMenu).is_empty());
    }
}
