//! One dialog-state channel for every dialog, dispatched by Call-ID to the leg it belongs to.
//!
//! Why: rsipstack reports a dialog's states on an unbounded tokio channel. A tokio channel
//! allocates its slots 32 at a time and a `DialogState` is about 300 bytes, so a channel per
//! call cost 9.7 KB for the handful of states a call ever sees — a quarter of what a waiting
//! caller cost (heaptrack, ops/bench/RESULTS.md). Here rsipstack gets one shared sender; each
//! leg subscribes to its Call-ID (before its dialog exists, so no state can be missed) and
//! receives boxed states on a channel of pointers.
//!
//! Owns: the shared channel, the routes, the dispatching task (stopped with this value).
//! Must not touch: what a state means to a leg (`call_leg`, `operator_leg`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use rsipstack::dialog::dialog::{DialogState, DialogStateSender};
use rsipstack::dialog::DialogId;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

type Routes = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Box<DialogState>>>>>;

/// The shared channel and its routes.
pub(crate) struct DialogStates {
    sender: DialogStateSender,
    routes: Routes,
    dispatcher: JoinHandle<()>,
}

impl DialogStates {
    /// Starts the dispatching task on the current runtime.
    pub(crate) fn start() -> DialogStates {
        let (sender, mut states) = mpsc::unbounded_channel::<DialogState>();
        let routes: Routes = Arc::default();
        let table = routes.clone();
        let dispatcher = tokio::spawn(async move {
            while let Some(state) = states.recv().await {
                let route = lock(&table).get(&dialog_id(&state).call_id).cloned();
                // No route: the leg has ended; its dialog's last states are of no use.
                if let Some(route) = route {
                    let _ = route.send(Box::new(state));
                }
            }
        });
        DialogStates { sender, routes, dispatcher }
    }

    /// The sender to give rsipstack for every dialog.
    pub(crate) fn sender(&self) -> DialogStateSender {
        self.sender.clone()
    }

    /// The states of the dialog with this Call-ID, from now until the subscription drops;
    /// `None` when a live leg already has this Call-ID (a merged or looped request).
    pub(crate) fn subscribe(&self, call_id: &str) -> Option<Subscription> {
        let mut routes = lock(&self.routes);
        if routes.contains_key(call_id) {
            return None;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        routes.insert(call_id.to_string(), tx);
        Some(Subscription { states: rx, routes: self.routes.clone(), call_id: call_id.to_string() })
    }
}

impl Drop for DialogStates {
    fn drop(&mut self) {
        self.dispatcher.abort();
    }
}

/// A leg's states. Dropping it removes the route.
pub(crate) struct Subscription {
    states: mpsc::UnboundedReceiver<Box<DialogState>>,
    routes: Routes,
    call_id: String,
}

impl Subscription {
    /// The next state; `None` once the dispatcher has stopped.
    pub(crate) async fn recv(&mut self) -> Option<DialogState> {
        self.states.recv().await.map(|boxed| *boxed)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        lock(&self.routes).remove(&self.call_id);
    }
}

fn lock(routes: &Routes) -> MutexGuard<'_, HashMap<String, mpsc::UnboundedSender<Box<DialogState>>>> {
    // Held for one insert, remove or lookup; a poisoned map is still a valid map.
    routes.lock().unwrap_or_else(|e| e.into_inner())
}

fn dialog_id(state: &DialogState) -> &DialogId {
    match state {
        DialogState::Calling(id)
        | DialogState::Trying(id)
        | DialogState::Early(id, _)
        | DialogState::WaitAck(id, _)
        | DialogState::Confirmed(id, _)
        | DialogState::Updated(id, _, _)
        | DialogState::Publish(id, _, _)
        | DialogState::Notify(id, _, _)
        | DialogState::Refer(id, _, _)
        | DialogState::Message(id, _, _)
        | DialogState::Info(id, _, _)
        | DialogState::Options(id, _, _)
        | DialogState::Terminated(id, _) => id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsipstack::dialog::dialog::TerminatedReason;

    fn id(call_id: &str) -> DialogId {
        DialogId { call_id: call_id.into(), local_tag: "a".into(), remote_tag: "b".into() }
    }

    #[tokio::test]
    async fn states_reach_the_leg_of_their_call_id_and_nobody_else() {
        let states = DialogStates::start();
        let mut one = states.subscribe("one@x").expect("new");
        let mut two = states.subscribe("two@x").expect("new");
        assert!(states.subscribe("two@x").is_none(), "one leg per Call-ID");
        let sender = states.sender();
        sender.send(DialogState::Trying(id("two@x"))).unwrap();
        sender.send(DialogState::Calling(id("unknown@x"))).unwrap();
        sender.send(DialogState::Terminated(id("one@x"), TerminatedReason::UacBye)).unwrap();
        assert!(matches!(one.recv().await, Some(DialogState::Terminated(d, TerminatedReason::UacBye)) if d.call_id == "one@x"));
        assert!(matches!(two.recv().await, Some(DialogState::Trying(d)) if d.call_id == "two@x"));
        drop(one);
        assert_eq!(lock(&states.routes).len(), 1, "a dropped subscription removes its route");
    }
}
