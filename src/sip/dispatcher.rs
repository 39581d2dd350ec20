//! Routes each new server transaction: a new INVITE starts a call leg (if the edge admits
//! it), in-dialog requests go to their dialog (if they come from its peer), out-of-dialog
//! OPTIONS are answered here, the rest get the right refusal. Banned sources and scanners
//! are dropped unanswered (over UDP the screen already did, before parsing; this covers TCP).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rsipstack::dialog::dialog::Dialog;
use rsipstack::sip::{Header, HeadersExt, Method, StatusCode};
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transaction::TransactionReceiver;

use super::dialog_peers::PeerCheck;
use super::{call_leg, SipContext, ALLOW};

pub(crate) async fn run(ctx: Arc<SipContext>, mut incoming: TransactionReceiver) {
    while let Some(tx) = incoming.recv().await {
        let ctx = ctx.clone();
        let source = source_of(&tx);
        if !screened(&tx) && edge_drops(&ctx, &tx, source.ip()) {
            continue; // banned or a scanner: no answer at all
        }
        if tx.original.method == Method::Invite && !in_dialog(&tx) && !ctx.shutting_down.load(Ordering::SeqCst) {
            let operator = ctx.is_operator_address(source.ip());
            match ctx.edge.admit(source.ip(), operator) {
                // A call leg lives as long as its call, so it gets a task of its own, sized
                // to the leg: inside `route` every waiting caller would hold the largest of
                // all the other requests' handling too.
                Ok(permit) => {
                    tokio::spawn(call_leg::run(ctx, tx, permit));
                }
                Err(refused) => {
                    tokio::spawn(unavailable(tx, refused.retry_after));
                }
            }
            continue;
        }
        tokio::spawn(async move {
            if let Err(e) = route(ctx, tx, source.ip()).await {
                tracing::debug!(error = %e, "transaction ended with an error");
            }
        });
    }
}

/// Whether the UDP screen (`screen.rs`) already passed this request through the edge's ban
/// and scanner checks: every datagram, before parsing. TCP streams are checked here.
fn screened(tx: &Transaction) -> bool {
    tx.connection.as_ref().is_some_and(|c| !c.is_reliable())
}

/// The edge's ban and scanner checks for a request that did not come through the screen.
fn edge_drops(ctx: &SipContext, tx: &Transaction, source: IpAddr) -> bool {
    ctx.edge.drops(source) || tx.original.user_agent_header().is_some_and(|ua| ctx.edge.drops_scanner(source, ua.value()))
}

/// Where a request came from (the transport's view: the NAT's public side).
fn source_of(tx: &Transaction) -> SocketAddr {
    tx.connection
        .as_ref()
        .and_then(|c| c.get_remote_addr())
        .and_then(|a| a.get_socketaddr().ok())
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// `503 Service Unavailable` with `Retry-After` (RFC 3261 §21.5.4): busy, or shutting down.
async fn unavailable(mut tx: Transaction, retry_after: Duration) {
    let retry = Header::Other("Retry-After".into(), retry_after.as_secs().max(1).to_string());
    if let Err(e) = tx.reply_with(StatusCode::ServiceUnavailable, vec![retry], None).await {
        tracing::debug!(error = %e, "could not send 503");
    }
}

/// A request inside a dialog carries the To tag the dialog gave it.
fn in_dialog(tx: &Transaction) -> bool {
    tx.original.to_header().ok().and_then(|to| to.tag().ok().flatten()).is_some()
}

/// Every request that does not start a call.
async fn route(ctx: Arc<SipContext>, mut tx: Transaction, source: IpAddr) -> rsipstack::Result<()> {
    let in_dialog = in_dialog(&tx);
    if in_dialog && tx.original.method != Method::Ack && !from_dialog_peer(&ctx, &tx, source) {
        ctx.counters.foreign_in_dialog.fetch_add(1, Ordering::Relaxed);
        tracing::info!(%source, method = %tx.original.method, "in-dialog request from an address other than the dialog's peer refused");
        return tx.reply(StatusCode::Forbidden).await;
    }
    match tx.original.method {
        // New calls are started by `run`; one reaching here arrived while shutting down.
        Method::Invite if !in_dialog => {
            unavailable(tx, Duration::from_secs(30)).await;
            Ok(())
        }
        Method::Options if !in_dialog => {
            tx.reply_with(StatusCode::OK, allow_headers(), None).await
        }
        Method::Register => register(&ctx, &mut tx).await,
        Method::Ack => Ok(()), // a stray ACK: nothing to answer (RFC 3261 §17.2.3)
        _ if in_dialog => match ctx.dialogs.match_dialog(&tx) {
            Some(Dialog::Invite(mut dialog)) => dialog.handle(&mut tx).await,
            Some(_) | None => tx.reply(StatusCode::CallTransactionDoesNotExist).await,
        },
        Method::Bye | Method::Info | Method::Update | Method::PRack => {
            tx.reply(StatusCode::CallTransactionDoesNotExist).await
        }
        // Known methods that centralino does not offer (REGISTER arrives with operators).
        _ => tx.reply_with(StatusCode::MethodNotAllowed, allow_headers(), None).await,
    }
}

/// Whether an in-dialog request comes from its dialog's peer. Calls through a trunk may see
/// their in-dialog requests from another of the carrier's addresses.
fn from_dialog_peer(ctx: &SipContext, tx: &Transaction, source: IpAddr) -> bool {
    let Ok(call_id) = tx.original.call_id_header().map(|h| h.value().trim().to_owned()) else {
        return true; // no Call-ID: no dialog will match it either (481)
    };
    match ctx.dialog_peers.check(&call_id, source) {
        PeerCheck::Peer | PeerCheck::Unknown => true,
        PeerCheck::Stranger => ctx.edge.is_trunk(source) && ctx.dialog_peers.peer(&call_id).is_some_and(|p| ctx.edge.is_trunk(p)),
    }
}

/// REGISTER: the registrar decides, this sends its answer and reports (un)registrations.
async fn register(ctx: &Arc<SipContext>, tx: &mut Transaction) -> rsipstack::Result<()> {
    let source = source_of(tx);
    let now = crate::clock::Now::read();
    let (reply, events) = {
        let credentials = ctx.credentials.read().unwrap_or_else(|e| e.into_inner());
        ctx.registrar().handle_register(now.instant, std::time::SystemTime::from(now.wall), source, &tx.original, |user| {
            credentials.get(user).cloned()
        })
    };
    ctx.report(events).await;
    tx.reply_with(reply.status, reply.headers, None).await
}

pub(crate) fn allow_headers() -> Vec<Header> {
    vec![
        Header::Allow(ALLOW.into()),
        Header::Other("Accept".into(), "application/sdp, application/dtmf-relay, application/dtmf".into()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future an async function returns, without calling it.
    fn future_size<A, B, C, F: std::future::Future>(_: impl FnOnce(A, B, C) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// A waiting caller's SIP task is its call leg's future, kept for the whole call, one per
    /// caller: it stays small. Run inside `route` it was 6.7 KB (release build), every
    /// request kind's handling included; alone, with its set-up boxed, under 1 KB.
    #[test]
    fn a_call_legs_task_is_small_and_not_as_large_as_routing() {
        let leg = future_size(call_leg::run);
        let route = future_size(route);
        assert!(leg <= 2048, "a call leg's task is {leg} bytes");
        assert!(leg * 2 < route, "a call leg's task ({leg} bytes) is not much smaller than routing's ({route} bytes)");
    }
}
