//! Routes each new server transaction: a new INVITE starts a call leg, in-dialog requests go
//! to their dialog, out-of-dialog OPTIONS are answered here, the rest get the right refusal.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rsipstack::dialog::dialog::Dialog;
use rsipstack::sip::{Header, HeadersExt, Method, StatusCode};
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transaction::TransactionReceiver;

use super::{call_leg, SipContext, ALLOW};

pub(crate) async fn run(ctx: Arc<SipContext>, mut incoming: TransactionReceiver) {
    while let Some(tx) = incoming.recv().await {
        let ctx = ctx.clone();
        if tx.original.method == Method::Invite && !in_dialog(&tx) && !ctx.shutting_down.load(Ordering::SeqCst) {
            // A call leg lives as long as its call, so it gets a task of its own, sized to
            // the leg: inside `route` every waiting caller would hold the largest of all the
            // other requests' handling too.
            tokio::spawn(call_leg::run(ctx, tx));
            continue;
        }
        tokio::spawn(async move {
            if let Err(e) = route(ctx, tx).await {
                tracing::debug!(error = %e, "transaction ended with an error");
            }
        });
    }
}

/// A request inside a dialog carries the To tag the dialog gave it.
fn in_dialog(tx: &Transaction) -> bool {
    tx.original.to_header().ok().and_then(|to| to.tag().ok().flatten()).is_some()
}

/// Every request that does not start a call.
async fn route(ctx: Arc<SipContext>, mut tx: Transaction) -> rsipstack::Result<()> {
    let in_dialog = in_dialog(&tx);
    match tx.original.method {
        // New calls are started by `run`; one reaching here arrived while shutting down.
        Method::Invite if !in_dialog => {
            let retry = Header::Other("Retry-After".into(), "30".into());
            tx.reply_with(StatusCode::ServiceUnavailable, vec![retry], None).await
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

/// REGISTER: the registrar decides, this sends its answer and reports (un)registrations.
async fn register(ctx: &Arc<SipContext>, tx: &mut Transaction) -> rsipstack::Result<()> {
    let source = tx
        .connection
        .as_ref()
        .and_then(|c| c.get_remote_addr())
        .and_then(|a| a.get_socketaddr().ok())
        .unwrap_or_else(|| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
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
    fn future_size<A, B, F: std::future::Future>(_: impl FnOnce(A, B) -> F) -> usize {
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
