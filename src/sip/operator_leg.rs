//! The operator's SIP leg: centralino as UAC, offering a queued caller to an operator's
//! registered contact, then holding the dialog until either side hangs up.
//!
//! ```text
//!  INVITE ─▶ 100/180 ─▶ 200+SDP ─▶ ACK ─▶ OperatorAnswered ─▶ … BYE (either side) ─▶ OperatorEnded
//!    │        └─ runtime: Cancel ─▶ CANCEL ─▶ 487 ─▶ OperatorFailed
//!    └─ 486/603/4xx/5xx/timeout ─▶ OperatorFailed { busy }
//! ```
//! Owns: the client INVITE dialog. Must not touch: routing decisions (the engine's), media.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rsipstack::dialog::dialog::{DialogState, TerminatedReason};
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::sip::{Header, StatusCode};
use rsipstack::transport::SipAddr;
use tokio::sync::mpsc;

use super::{sdp, SipContext, SipEvent};
use crate::engine::ids::{CallId, OperatorId};

/// What an offer needs besides the operator's registered contact.
#[derive(Debug, Clone)]
pub struct OfferSpec {
    pub call: CallId,
    pub operator: OperatorId,
    /// Shown by the operator's phone: `[Tributi] 3331234567`.
    pub display: String,
    pub caller: String,
    pub queue: String,
    pub language: String,
    pub ivr_path: String,
    /// Our RTP address for this leg (for the SDP offer).
    pub local_rtp: SocketAddr,
}

/// Where to reach a registered operator.
#[derive(Debug, Clone)]
pub struct OperatorContact {
    pub uri: String,
    /// Where the REGISTER came from: the address that reaches the phone behind NAT.
    pub source: SocketAddr,
    pub tcp: bool,
}

/// What the runtime can tell an operator leg.
#[derive(Debug)]
pub enum OperatorLegCommand {
    /// Stop ringing (CANCEL), or hang up (BYE) if already answered.
    End,
}

/// The runtime's handle on an operator leg; dropping it ends the leg too.
#[derive(Debug)]
pub struct OperatorLegHandle {
    commands: mpsc::Sender<OperatorLegCommand>,
}

impl OperatorLegHandle {
    pub fn end(&self) {
        let _ = self.commands.try_send(OperatorLegCommand::End);
    }
}

pub(crate) fn start(ctx: Arc<SipContext>, spec: OfferSpec, contact: Option<OperatorContact>) -> OperatorLegHandle {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(run(ctx, spec, contact, rx));
    OperatorLegHandle { commands: tx }
}

async fn run(
    ctx: Arc<SipContext>,
    spec: OfferSpec,
    contact: Option<OperatorContact>,
    mut commands: mpsc::Receiver<OperatorLegCommand>,
) {
    let failed = |busy| SipEvent::OperatorFailed { call: spec.call.clone(), operator: spec.operator.clone(), busy };
    let Some(contact) = contact else {
        let _ = ctx.events.send(failed(false)).await;
        return;
    };
    let Some(option) = invite_option(&ctx, &spec, &contact) else {
        tracing::warn!(operator = %spec.operator, contact = %contact.uri, "operator contact is not a usable SIP URI");
        let _ = ctx.events.send(failed(false)).await;
        return;
    };
    // Our own Call-ID, so the leg subscribes to its states before the dialog exists.
    let call_id = format!("op-{}-{}@{}", spec.call.0, ctx.next_call.fetch_add(1, Ordering::Relaxed), ctx.settings.domain);
    let Some(mut states) = ctx.dialog_states.subscribe(&call_id) else {
        // Cannot happen (the counter makes every Call-ID new); fail the offer if it does.
        let _ = ctx.events.send(failed(false)).await;
        return;
    };
    // The operator's in-dialog requests (BYE, re-INVITE) must come from where it registered.
    let _peer = ctx.dialog_peers.insert(&call_id, contact.source.ip());
    let option = InviteOption { call_id: Some(call_id), ..option };
    let (dialog, invite) = match ctx.dialogs.do_invite_async(option, ctx.dialog_states.sender()) {
        Ok(started) => started,
        Err(e) => {
            tracing::info!(operator = %spec.operator, error = %e, "cannot send the offer");
            let _ = ctx.events.send(failed(false)).await;
            return;
        }
    };
    let mut answered = false;
    let mut ending = false;
    let mut invite = Some(invite);
    loop {
        tokio::select! {
            cmd = commands.recv(), if !ending => {
                // A command or the handle dropped: either way the leg must end.
                let _ = cmd;
                ending = true;
                let _ = dialog.hangup().await;
                if !answered && invite.is_none() {
                    break;
                }
            }
            result = async { invite.as_mut().expect("polled only while Some").await }, if invite.is_some() => {
                invite = None;
                let response = match result {
                    Ok(Ok((_, response))) => response,
                    _ => None,
                };
                match response {
                    Some(r) if r.status_code.code() / 100 == 2 => {
                        if ending {
                            continue; // the stack BYEs a 2xx that crossed our CANCEL
                        }
                        match sdp::parse_answer(r.body()) {
                            Ok(remote_media) => {
                                answered = true;
                                let _ = ctx.events.send(SipEvent::OperatorAnswered {
                                    call: spec.call.clone(),
                                    operator: spec.operator.clone(),
                                    remote_media,
                                }).await;
                            }
                            Err(e) => {
                                tracing::info!(operator = %spec.operator, error = %e, "operator answered with unusable SDP");
                                let _ = dialog.hangup().await;
                                let _ = ctx.events.send(failed(false)).await;
                                break;
                            }
                        }
                    }
                    other => {
                        let busy = other.map(|r| is_busy(r.status_code)).unwrap_or(false);
                        let _ = ctx.events.send(failed(busy)).await;
                        break;
                    }
                }
            }
            state = states.recv() => match state {
                Some(DialogState::Terminated(_, reason)) => {
                    if answered {
                        if !matches!(reason, TerminatedReason::UacBye) {
                            tracing::debug!(operator = %spec.operator, ?reason, "operator leg ended");
                        }
                        let _ = ctx.events.send(SipEvent::OperatorEnded { call: spec.call.clone(), operator: spec.operator.clone() }).await;
                        break;
                    }
                    // Not answered: the INVITE's final response (above) reports it.
                    if invite.is_none() {
                        break;
                    }
                }
                Some(_) => {}
                None => {
                    if answered {
                        let _ = ctx.events.send(SipEvent::OperatorEnded { call: spec.call.clone(), operator: spec.operator.clone() }).await;
                    }
                    break;
                }
            },
        }
    }
    ctx.dialogs.remove_dialog(&dialog.id());
}

fn is_busy(code: StatusCode) -> bool {
    matches!(code.code(), 486 | 600 | 603)
}

fn invite_option(ctx: &SipContext, spec: &OfferSpec, contact: &OperatorContact) -> Option<InviteOption> {
    let callee = rsipstack::sip::Uri::try_from(contact.uri.as_str()).ok()?;
    let local_ip = spec.local_rtp.ip();
    let host = host_text(local_ip);
    let (port, transport) = if contact.tcp { (ctx.tcp_port?, ";transport=tcp") } else { (ctx.udp_port?, "") };
    let caller = rsipstack::sip::Uri::try_from(format!("sip:{}@{}", user_part(&spec.caller), ctx.settings.domain).as_str()).ok()?;
    let our_contact = rsipstack::sip::Uri::try_from(format!("sip:centralino@{host}:{port}{transport}").as_str()).ok()?;
    let offer = sdp::make_offer(local_ip, spec.local_rtp.port(), sdp::session_id(&spec.call.0), 1);
    let destination = SipAddr {
        r#type: Some(if contact.tcp { rsipstack::sip::Transport::Tcp } else { rsipstack::sip::Transport::Udp }),
        addr: contact.source.into(),
    };
    let headers = vec![
        Header::Other("X-Centralino-Queue".into(), spec.queue.clone()),
        Header::Other("X-Centralino-Call".into(), spec.call.0.clone()),
        Header::Other("X-Centralino-Language".into(), spec.language.clone()),
        Header::Other("X-Centralino-Ivr-Path".into(), spec.ivr_path.clone()),
    ];
    Some(InviteOption {
        caller_display_name: Some(spec.display.clone()),
        caller,
        callee,
        destination: Some(destination),
        content_type: Some("application/sdp".into()),
        offer: Some(offer.into_bytes()),
        contact: our_contact,
        headers: Some(headers),
        ..Default::default()
    })
}

/// A caller string usable as a SIP user part (digits and a few safe characters).
fn user_part(caller: &str) -> String {
    let cleaned: String = caller.chars().filter(|c| c.is_ascii_alphanumeric() || "+-_.".contains(*c)).collect();
    if cleaned.is_empty() { "anonymous".into() } else { cleaned }
}

fn host_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

