//! The control loop: one task that owns the engine, feeds it every fact from SIP, media and
//! the admin API with `now` read once, and carries out what it decides.
//!
//! Owns: the map from a call to its SIP leg and media leg. Must not touch: call policy
//! (the engine's), sockets (the drivers').

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, oneshot};

use crate::clock::Now;
use crate::engine::call::{CallRecord, CallView};
use crate::engine::ids::CallId;
use crate::engine::stats::StatsSnapshot;
use crate::engine::{Engine, Input, Output};
use crate::media::leg::{LegCommand, LegEvent, MediaContext, MediaLeg};
use crate::sip::{CallLegHandle, RemoteMedia, SipCallCommand, SipEvent};

/// How long shutdown waits for callers' dialogs to end after sending BYE.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Questions the admin API asks the control loop.
pub enum AdminRequest {
    Calls(oneshot::Sender<Vec<CallView>>),
    Stats(oneshot::Sender<StatsSnapshot>),
}

/// One call's legs.
struct Legs {
    sip: CallLegHandle,
    media: Option<MediaLeg>,
    remote: RemoteMedia,
    local_ip: IpAddr,
}

/// Where finished calls' records go.
pub type RecordSink = mpsc::Sender<CallRecord>;

pub struct Runtime {
    engine: Engine,
    media: MediaContext,
    legs: HashMap<CallId, Legs>,
    /// Calls whose SIP dialog is still up (shutdown waits for them).
    sip_alive: HashSet<CallId>,
    rng: rand::rngs::SmallRng,
    records: Option<RecordSink>,
}

/// The channels the control loop listens on.
pub struct Inputs {
    pub sip: mpsc::Receiver<SipEvent>,
    pub media: mpsc::Receiver<LegEvent>,
    pub admin: mpsc::Receiver<AdminRequest>,
}

impl Runtime {
    pub fn new(engine: Engine, media: MediaContext, records: Option<RecordSink>) -> Runtime {
        Runtime {
            engine,
            media,
            legs: HashMap::new(),
            sip_alive: HashSet::new(),
            rng: rand::rngs::SmallRng::from_entropy(),
            records,
        }
    }

    /// Runs until `shutdown` resolves and every call has ended (or the grace time passed).
    pub async fn run(mut self, mut inputs: Inputs, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut stopping_since: Option<Instant> = None;
        loop {
            let deadline = self.engine.poll_timeout();
            tokio::select! {
                Some(event) = inputs.sip.recv() => self.on_sip(event),
                Some(event) = inputs.media.recv() => self.on_media(event),
                Some(request) = inputs.admin.recv() => self.on_admin(request),
                _ = sleep_until_opt(deadline) => self.engine.handle_timeout(Now::read()),
                _ = &mut shutdown, if stopping_since.is_none() => {
                    tracing::info!(calls = self.legs.len(), "shutting down: ending calls");
                    let now = Now::read();
                    stopping_since = Some(now.instant);
                    self.engine.handle_input(now, Input::ShutdownRequested);
                }
                _ = tokio::time::sleep(Duration::from_millis(100)), if stopping_since.is_some() => {}
            }
            self.dispatch();
            if let Some(since) = stopping_since {
                #[allow(clippy::disallowed_methods)] // driver: bounding shutdown
                let waited = Instant::now().saturating_duration_since(since);
                if self.sip_alive.is_empty() || waited > SHUTDOWN_GRACE {
                    break;
                }
            }
        }
    }

    fn on_sip(&mut self, event: SipEvent) {
        let now = Now::read();
        let input = match event {
            SipEvent::Incoming { call, caller, remote_media, local_ip, leg } => {
                self.sip_alive.insert(call.clone());
                self.legs.insert(call.clone(), Legs { sip: leg, media: None, remote: remote_media, local_ip });
                Input::CallArrived { call, caller }
            }
            SipEvent::Established { call } => Input::CallAnswered { call },
            SipEvent::Digit { call, digit } => Input::DigitPressed { call, digit },
            SipEvent::Ended { call } => {
                self.sip_alive.remove(&call);
                self.legs.remove(&call);
                Input::CallEnded { call }
            }
            SipEvent::MediaChanged { call, remote_media } => {
                if let Some(legs) = self.legs.get_mut(&call) {
                    if let Some(media) = &legs.media {
                        media.command(LegCommand::Retarget {
                            remote: remote_media.addr,
                            codec: remote_media.codec,
                            telephone_event_pt: remote_media.telephone_event_pt,
                        });
                    }
                    legs.remote = remote_media;
                }
                return;
            }
            // Operators arrive with the engine's routing (wired below when it lands).
            SipEvent::OperatorAnswered { .. }
            | SipEvent::OperatorFailed { .. }
            | SipEvent::OperatorEnded { .. }
            | SipEvent::OperatorRegistered { .. }
            | SipEvent::OperatorUnregistered { .. } => return,
        };
        self.engine.handle_input(now, input);
    }

    fn on_media(&mut self, event: LegEvent) {
        let input = match event {
            LegEvent::Digit { call, digit } => Input::DigitPressed { call, digit },
            LegEvent::PlaybackFinished { call, seq } => Input::PlaybackFinished { call, seq },
            LegEvent::MediaTimeout { call } => {
                tracing::info!(%call, "no RTP from the caller: ending the call");
                if let Some(legs) = self.legs.get(&call) {
                    legs.sip.send(SipCallCommand::Hangup);
                }
                Input::CallEnded { call }
            }
        };
        self.engine.handle_input(Now::read(), input);
    }

    fn on_admin(&mut self, request: AdminRequest) {
        match request {
            AdminRequest::Calls(reply) => {
                let _ = reply.send(self.engine.calls());
            }
            AdminRequest::Stats(reply) => {
                let _ = reply.send(self.engine.stats(Now::read()));
            }
        }
    }

    /// Carries out every output the engine has.
    fn dispatch(&mut self) {
        while let Some(output) = self.engine.poll_output() {
            match output {
                Output::RingCall { call } => {
                    if let Some(legs) = self.legs.get(&call) {
                        legs.sip.send(SipCallCommand::Ring);
                    }
                }
                Output::AnswerCall { call } => self.answer(call),
                Output::Play { call, seq, prompts } => self.media(&call, LegCommand::Play { seq, prompts }),
                Output::PlayMusic { call } => self.media(&call, LegCommand::Music),
                Output::StopPlayback { call } => self.media(&call, LegCommand::Stop),
                Output::HangupCall { call } => {
                    if let Some(legs) = self.legs.get(&call) {
                        legs.sip.send(SipCallCommand::Hangup);
                    }
                }
                Output::CallFinished(record) => {
                    tracing::info!(call = %record.id, outcome = record.outcome.as_str(), queue = ?record.queue.as_ref().map(|q| &q.0), "call finished");
                    // Media ends now (its port returns to the pool); the SIP leg finishes
                    // its BYE on its own and reports `Ended`.
                    if let Some(legs) = self.legs.get_mut(&record.id) {
                        legs.media = None;
                    }
                    if let Some(records) = &self.records {
                        let _ = records.try_send(*record);
                    }
                }
            }
        }
    }

    fn answer(&mut self, call: CallId) {
        let Some(legs) = self.legs.get_mut(&call) else { return };
        let ssrc: u32 = self.rng.gen();
        match MediaLeg::open(
            &self.media,
            call.clone(),
            legs.local_ip,
            legs.remote.addr,
            legs.remote.codec,
            legs.remote.telephone_event_pt,
            ssrc,
        ) {
            Ok(media) => {
                legs.sip.send(SipCallCommand::Answer { local_rtp: media.local_addr() });
                legs.media = Some(media);
            }
            Err(e) => {
                tracing::warn!(%call, error = %e, "no RTP port: refusing the call");
                legs.sip.send(SipCallCommand::Hangup);
                self.engine.handle_input(Now::read(), Input::CallEnded { call });
            }
        }
    }

    fn media(&self, call: &CallId, cmd: LegCommand) {
        if let Some(media) = self.legs.get(call).and_then(|l| l.media.as_ref()) {
            media.command(cmd);
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}
