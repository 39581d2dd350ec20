//! One caller's SIP leg: the server INVITE dialog from INVITE to the end, driven by the
//! runtime's commands and the dialog's state changes.
//!
//! ```text
//!  INVITE ─▶ 100 ─▶ (runtime: Answer) ─▶ 200+SDP ─▶ ACK ─▶ Established ─▶ BYE (either side) ─▶ Ended
//!             └──────────── CANCEL ─▶ 487 (rsipstack) ─▶ Ended
//! ```
//! Owns: the dialog and the SDP answer. Must not touch: media sockets, call policy.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rsipstack::dialog::dialog::{DialogState, TerminatedReason};

use super::dialog_states::Subscription;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{Header, HeadersExt, StatusCode};
use rsipstack::transaction::transaction::Transaction;
use tokio::sync::watch;

use super::dialog_peers::PeerEntry;
use super::edge::CallPermit;
use super::{sdp, SipContext, SipEvent};
use crate::engine::ids::{CallId, DtmfDigit};

/// What the runtime tells a caller's leg to do. A leg only moves forward, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SipCallCommand {
    /// Send 180 Ringing.
    Ring,
    /// Send 200 OK with an SDP answer pointing at `local_rtp`.
    Answer { local_rtp: SocketAddr },
    /// End the call: BYE when answered, else a final error response.
    Hangup,
}

impl SipCallCommand {
    /// How far along a call this command takes the leg.
    fn step(&self) -> u8 {
        match self {
            SipCallCommand::Ring => 1,
            SipCallCommand::Answer { .. } => 2,
            SipCallCommand::Hangup => 3,
        }
    }
}

/// The runtime's handle on a leg: the furthest command it gave. Each command supersedes
/// the ones before it, so one slot is enough (a tokio channel keeps a block of 32 for the
/// call's life: 1 KB per waiting caller); a ring the leg had no time to send is skipped.
#[derive(Debug, Clone)]
pub struct CallLegHandle {
    wanted: watch::Sender<Option<SipCallCommand>>,
}

impl CallLegHandle {
    pub fn send(&self, cmd: SipCallCommand) {
        // A command behind the latest (an answer after a hang-up) comes too late: ignored.
        self.wanted.send_if_modified(|wanted| {
            let ahead = wanted.is_none_or(|w| w.step() < cmd.step());
            if ahead {
                *wanted = Some(cmd);
            }
            ahead
        });
    }
}

/// Runs a new INVITE to its end.
///
/// What a task keeps for the whole call is the largest state any of its awaits needs, so
/// the set-up (its replies and reports are kilobytes of rsipstack futures, and ended long
/// before a caller's wait is) runs boxed, its arguments moved into the box at once (an
/// async fn would keep its own copies for the whole call), and `drive` boxes its rare
/// branches: a waiting caller's task is under 1 KB (it was 6.7 KB; release build).
pub(crate) fn run(ctx: Arc<SipContext>, tx: Transaction, permit: CallPermit) -> impl std::future::Future<Output = ()> + Send {
    let setup = Box::pin(start(ctx, tx, permit));
    async move {
        let Some(Started { leg, commands, states, invite_tx }) = setup.await else { return };
        leg.drive(commands, states).await;
        invite_tx.abort();
    }
}

/// A leg whose INVITE was accepted for handling, with what drives it.
struct Started {
    leg: Leg,
    commands: watch::Receiver<Option<SipCallCommand>>,
    states: Subscription,
    invite_tx: tokio::task::JoinHandle<()>,
}

/// Checks the INVITE, creates the dialog and reports the call; `None` when it was refused.
async fn start(ctx: Arc<SipContext>, mut tx: Transaction, permit: CallPermit) -> Option<Started> {
    let offer = tx.original.body().clone();
    let peer_ip = tx
        .connection
        .as_ref()
        .and_then(|c| c.get_remote_addr())
        .and_then(|a| a.get_socketaddr().ok())
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let local_ip = ctx.local_ip_towards(peer_ip);
    let remote_media = match sdp::answer_offer(&offer, local_ip, 9, 0, 0) {
        Ok((remote, _)) => remote,
        Err(e) => {
            tracing::info!(error = %e, "INVITE with an unusable SDP offer");
            let _ = tx.reply(StatusCode::NotAcceptableHere).await;
            return None;
        }
    };
    // Subscribed before the dialog exists, so none of its states can be missed.
    let Ok(call_id) = tx.original.call_id_header().map(|h| h.value().trim().to_owned()) else {
        let _ = tx.reply(StatusCode::BadRequest).await;
        return None;
    };
    let Some(state_rx) = ctx.dialog_states.subscribe(&call_id) else {
        // A second INVITE with the Call-ID of a call in progress (RFC 3261 §8.2.2.2).
        let _ = tx.reply(StatusCode::LoopDetected).await;
        return None;
    };
    // In-dialog requests for this call must come from where the INVITE came from.
    let peer = ctx.dialog_peers.insert(&call_id, peer_ip);
    let contact = contact_uri(&ctx, &tx, local_ip);
    let dialog = match ctx.dialogs.get_or_create_server_invite(&tx, ctx.dialog_states.sender(), None, contact) {
        Ok(d) => d,
        Err(e) => {
            tracing::info!(error = %e, "cannot create a dialog for an INVITE");
            let _ = tx.reply(StatusCode::ServerInternalError).await;
            return None;
        }
    };
    let call = new_call_id(&ctx);
    let caller = caller_of(&tx);
    let feature = match tx.original.uri.user().and_then(super::FeatureCode::from_dialled) {
        None => None,
        Some(code) => {
            // Only a registered operator calling from where it registered may use codes.
            let operator = crate::engine::ids::OperatorId(caller.clone());
            match ctx.contact_of(&operator) {
                Some(contact) if contact.source.ip() == peer_ip => Some((operator, code)),
                _ => {
                    let _ = tx.reply(StatusCode::Forbidden).await;
                    return None;
                }
            }
        }
    };
    let (wanted, cmd_rx) = watch::channel(None);
    let leg = CallLegHandle { wanted };
    let incoming = SipEvent::Incoming { call: call.clone(), caller, remote_media, peer_ip, local_ip, leg, feature };
    if ctx.events.send(incoming).await.is_err() {
        let _ = tx.reply(StatusCode::ServiceUnavailable).await;
        return None;
    }
    // The INVITE transaction runs beside the leg: it sends 100 Trying, absorbs
    // retransmissions, answers CANCEL (200 + 487) and waits for the ACK. Spawned boxed:
    // a task's memory is kept while its handle is, and the leg keeps this one for the
    // whole call; boxed, what is left after the ACK is a small cell, not the transaction.
    let invite_tx = tokio::spawn(Box::pin(invite_transaction(dialog.clone(), tx)));
    let leg = Leg { ctx, call, dialog, offer, local_ip, local_rtp: None, established: false, _admitted: (permit, peer) };
    Some(Started { leg, commands: cmd_rx, states: state_rx, invite_tx })
}

/// Runs the INVITE's server transaction until it ends (ACK, CANCEL or its timers).
async fn invite_transaction(mut dialog: InviteDialog, mut tx: Transaction) {
    let _ = dialog.handle(&mut tx).await;
}

struct Leg {
    ctx: Arc<SipContext>,
    call: CallId,
    dialog: InviteDialog,
    offer: Vec<u8>,
    local_ip: IpAddr,
    local_rtp: Option<SocketAddr>,
    /// Whether `Established` was reported: rsipstack returns the dialog to `Confirmed`
    /// after every in-dialog request it answers (INFO, re-INVITE), and an operator's
    /// feature-code call must not run its feature again on a key press or a hold.
    established: bool,
    /// The call's place in the edge's admission counts and its peer's row, both given back
    /// when the leg ends.
    _admitted: (CallPermit, PeerEntry),
}

impl Leg {
    async fn drive(
        mut self,
        mut commands: watch::Receiver<Option<SipCallCommand>>,
        mut states: Subscription,
    ) {
        let mut commands_open = true;
        loop {
            tokio::select! {
                changed = commands.changed(), if commands_open => match changed.map(|()| *commands.borrow_and_update()) {
                    Ok(Some(SipCallCommand::Ring)) => { let _ = self.dialog.ringing(None, None); }
                    Ok(Some(SipCallCommand::Answer { local_rtp })) => self.answer(local_rtp),
                    Ok(Some(SipCallCommand::Hangup)) => Box::pin(self.hang_up()).await,
                    Ok(None) => {}
                    // The runtime dropped the call: make sure the caller is not left hanging.
                    Err(_) => { commands_open = false; Box::pin(self.hang_up()).await }
                },
                state = states.recv() => match state {
                    Some(state) => if Box::pin(self.on_state(state)).await { break },
                    None => break,
                },
            }
        }
        self.ctx.dialogs.remove_dialog(&self.dialog.id());
        let _ = Box::pin(self.ctx.events.send(SipEvent::Ended { call: self.call.clone() })).await;
    }

    fn answer(&mut self, local_rtp: SocketAddr) {
        self.local_rtp = Some(local_rtp);
        match sdp::answer_offer(&self.offer, self.local_ip, local_rtp.port(), sdp::session_id(&self.call.0), 1) {
            Ok((_, answer)) => {
                let headers = vec![Header::ContentType("application/sdp".into()), Header::Allow(super::ALLOW.into())];
                if let Err(e) = self.dialog.accept(Some(headers), Some(answer.into_bytes())) {
                    tracing::info!(call = %self.call, error = %e, "could not answer");
                }
            }
            Err(e) => {
                tracing::warn!(call = %self.call, error = %e, "SDP answer failed after the offer was accepted");
                let _ = self.dialog.reject(Some(StatusCode::NotAcceptableHere), None);
            }
        }
    }

    async fn hang_up(&mut self) {
        match self.dialog.state() {
            DialogState::Confirmed(..) | DialogState::WaitAck(..) => {
                if let Err(e) = self.dialog.bye().await {
                    tracing::debug!(call = %self.call, error = %e, "BYE failed");
                }
            }
            DialogState::Terminated(..) => {}
            _ => {
                let _ = self.dialog.reject(Some(StatusCode::TemporarilyUnavailable), None);
            }
        }
    }

    /// Handles one dialog state change; `true` when the dialog is over.
    async fn on_state(&mut self, state: DialogState) -> bool {
        match state {
            DialogState::Confirmed(..) if !self.established => {
                self.established = true;
                tracing::debug!(call = %self.call, "established");
                let _ = self.ctx.events.send(SipEvent::Established { call: self.call.clone() }).await;
            }
            DialogState::Confirmed(..) => {}
            DialogState::Terminated(_, reason) => {
                tracing::debug!(call = %self.call, ?reason, "dialog terminated");
                if matches!(reason, TerminatedReason::Timeout) {
                    tracing::info!(call = %self.call, "dialog timed out");
                }
                return true;
            }
            DialogState::Info(_, req, handle) => {
                let content_type = req
                    .headers
                    .iter()
                    .find_map(|h| match h {
                        h @ Header::ContentType(_) => Some(h.value().to_string()),
                        _ => None,
                    })
                    .unwrap_or_default();
                match parse_info_dtmf(&content_type, req.body()) {
                    Some(digit) => {
                        let _ = handle.reply(StatusCode::OK).await;
                        self.ctx.counters.dtmf_info.fetch_add(1, Ordering::Relaxed);
                        let _ = self.ctx.events.send(SipEvent::Digit { call: self.call.clone(), digit }).await;
                    }
                    None if content_type.is_empty() => {
                        let _ = handle.reply(StatusCode::OK).await; // an INFO keep-alive
                    }
                    None => {
                        let _ = handle.reply(StatusCode::UnsupportedMediaType).await;
                    }
                }
            }
            DialogState::Updated(_, req, handle) => {
                // A re-INVITE (hold, unhold, new address). Answer with the same local port.
                let Some(local_rtp) = self.local_rtp else {
                    let _ = handle.reply(StatusCode::RequestPending).await;
                    return false;
                };
                let offer = req.body().clone();
                if offer.is_empty() {
                    // Late offer in a re-INVITE is not supported: keep the session as is.
                    let _ = handle.reply(StatusCode::NotAcceptableHere).await;
                    return false;
                }
                match sdp::answer_offer(&offer, self.local_ip, local_rtp.port(), sdp::session_id(&self.call.0), 2) {
                    Ok((remote_media, answer)) => {
                        let headers = vec![Header::ContentType("application/sdp".into())];
                        let _ = handle.respond(StatusCode::OK, Some(headers), Some(answer.into_bytes())).await;
                        self.offer = offer;
                        let _ = self
                            .ctx
                            .events
                            .send(SipEvent::MediaChanged { call: self.call.clone(), remote_media })
                            .await;
                    }
                    Err(_) => {
                        let _ = handle.reply(StatusCode::NotAcceptableHere).await;
                    }
                }
            }
            DialogState::Options(_, _, handle) => {
                let _ = handle.respond(StatusCode::OK, Some(super::dispatcher::allow_headers()), None).await;
            }
            DialogState::Notify(_, _, handle)
            | DialogState::Refer(_, _, handle)
            | DialogState::Message(_, _, handle)
            | DialogState::Publish(_, _, handle) => {
                let _ = handle
                    .respond(StatusCode::MethodNotAllowed, Some(super::dispatcher::allow_headers()), None)
                    .await;
            }
            DialogState::Calling(_)
            | DialogState::Trying(_)
            | DialogState::Early(..)
            | DialogState::WaitAck(..) => {}
        }
        false
    }
}

/// DTMF in a SIP INFO body: `application/dtmf-relay` (`Signal=5`) or `application/dtmf` (`5`).
pub fn parse_info_dtmf(content_type: &str, body: &[u8]) -> Option<DtmfDigit> {
    let ct = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let text = std::str::from_utf8(body).ok()?;
    match ct.as_str() {
        "application/dtmf-relay" => text.lines().find_map(|line| {
            let (key, value) = line.split_once('=')?;
            if !key.trim().eq_ignore_ascii_case("signal") {
                return None;
            }
            match value.trim() {
                "10" => Some(DtmfDigit::Star),
                "11" => Some(DtmfDigit::Pound),
                v if v.chars().count() == 1 => v.chars().next().and_then(DtmfDigit::from_char),
                _ => None,
            }
        }),
        "application/dtmf" => {
            let t = text.trim();
            let mut chars = t.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => DtmfDigit::from_char(c),
                _ => t.parse::<u8>().ok().and_then(DtmfDigit::from_event),
            }
        }
        _ => None,
    }
}

fn new_call_id(ctx: &SipContext) -> CallId {
    let n = ctx.next_call.fetch_add(1, Ordering::Relaxed);
    let start = crate::clock::Now::read().wall.as_millisecond();
    CallId(format!("{}-{:x}-{n}", ctx.settings.node, start))
}

fn caller_of(tx: &Transaction) -> String {
    tx.original
        .from_header()
        .ok()
        .and_then(|f| f.uri().ok())
        .and_then(|u| u.user().map(str::to_string))
        .unwrap_or_else(|| "anonymous".to_string())
}

fn contact_uri(ctx: &SipContext, tx: &Transaction, ip: IpAddr) -> Option<rsipstack::sip::Uri> {
    let reliable = tx.connection.as_ref().map(|c| c.is_reliable()).unwrap_or(false);
    let (port, transport) = if reliable { (ctx.tcp_port, ";transport=tcp") } else { (ctx.udp_port, "") };
    let host = match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    let text = format!("sip:centralino@{host}:{}{transport}", port.unwrap_or(5060));
    rsipstack::sip::Uri::try_from(text.as_str()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The runtime's commands to a leg only move it forward: a late one is dropped, a
    /// repeated one does not wake the leg, and a dropped handle tells the leg to end.
    #[test]
    fn a_leg_is_only_moved_forward() {
        let (wanted, mut leg_sees) = watch::channel(None);
        let runtime = CallLegHandle { wanted };
        let answer = SipCallCommand::Answer { local_rtp: "127.0.0.1:4000".parse().unwrap() };
        runtime.send(SipCallCommand::Ring);
        assert_eq!(*leg_sees.borrow_and_update(), Some(SipCallCommand::Ring));
        runtime.send(answer);
        runtime.send(SipCallCommand::Ring);
        assert_eq!(*leg_sees.borrow_and_update(), Some(answer), "a late ring does not undo the answer");
        runtime.send(SipCallCommand::Hangup);
        runtime.send(answer);
        assert_eq!(*leg_sees.borrow_and_update(), Some(SipCallCommand::Hangup));
        runtime.send(SipCallCommand::Hangup);
        assert!(!leg_sees.has_changed().unwrap(), "a second hang-up does not wake the leg");
        drop(runtime);
        assert!(leg_sees.has_changed().is_err(), "the leg learns the runtime let go of it");
    }

    #[test]
    fn info_bodies_in_both_content_types() {
        assert_eq!(parse_info_dtmf("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n"), Some(DtmfDigit::Digit(5)));
        assert_eq!(parse_info_dtmf("Application/DTMF-Relay", b"signal= #\r\n"), Some(DtmfDigit::Pound));
        assert_eq!(parse_info_dtmf("application/dtmf-relay", b"Signal=11"), Some(DtmfDigit::Pound));
        assert_eq!(parse_info_dtmf("application/dtmf", b"7"), Some(DtmfDigit::Digit(7)));
        assert_eq!(parse_info_dtmf("application/dtmf", b"10"), Some(DtmfDigit::Star));
        assert_eq!(parse_info_dtmf("application/dtmf-relay", b"Signal=x"), None);
        assert_eq!(parse_info_dtmf("text/plain", b"5"), None);
        assert_eq!(parse_info_dtmf("application/dtmf-relay", &[0xff, 0xfe]), None);
    }
}
