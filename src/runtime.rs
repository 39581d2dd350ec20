//! The control loop: one task that owns the engine, feeds it every fact from SIP, media and
//! the admin API with `now` read once, and carries out what it decides.
//!
//! Owns: the map from a call to its SIP leg and media leg. Must not touch: call policy
//! (the engine's), sockets (the drivers').

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, oneshot};

use crate::clock::Now;
use crate::engine::call::{CallRecord, CallView};
use crate::engine::ids::{CallId, OperatorId};
use crate::engine::stats::StatsSnapshot;
use crate::engine::{Engine, Input, Output};
use crate::media::g711::Codec;
use crate::media::leg::{LegCommand, LegEvent, MediaContext, MediaLeg, SignalledPeer};
use crate::sip::{CallLegHandle, FeatureCode, OfferSpec, OperatorLegHandle, RemoteMedia, SipCallCommand, SipEvent, SipService};
use crate::store::model::{CallStart, QueueEvent as StoredEvent};
use crate::store::writer::{WriteItem, WriterHandle};

/// How long shutdown waits for callers' dialogs to end after sending BYE.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Questions the admin API asks the control loop.
pub enum AdminRequest {
    Calls(oneshot::Sender<Vec<CallView>>),
    Stats(oneshot::Sender<StatsSnapshot>),
    Operators(oneshot::Sender<Vec<crate::engine::operators::OperatorView>>),
    /// Feed an operator fact (pause, resume, login, logout) from the API.
    Operator(Input),
    /// Replace the operator directory (after `operators add|remove|set`).
    Directory(Vec<crate::engine::operators::OperatorAccount>),
}

/// One call's legs: the caller's, and the operators' being offered or connected.
struct Legs {
    sip: CallLegHandle,
    media: Option<MediaLeg>,
    remote: RemoteMedia,
    /// Where the caller's INVITE came from (its RTP must too, or from the SDP's address).
    peer_ip: IpAddr,
    local_ip: IpAddr,
    operators: HashMap<OperatorId, OperatorLeg>,
}

/// An operator's leg of a call (offered or connected).
struct OperatorLeg {
    sip: OperatorLegHandle,
    media: MediaLeg,
}

/// What woke the control loop.
enum Wake {
    Sip(SipEvent),
    Media(LegEvent),
    Admin(AdminRequest),
    Timer,
    Shutdown,
    /// While stopping: look again whether every dialog has ended.
    Recheck,
}

/// The control loop's own load. It is one task by design (the engine is single-threaded),
/// so its busy share of one core is the ceiling that no number of cores lifts: a manager
/// sees it as `rate(centralino_control_busy_seconds_total[1m])` approaching 1.
#[derive(Debug, Default)]
pub struct ControlLoad {
    busy_nanos: AtomicU64,
    wakeups: AtomicU64,
}

impl ControlLoad {
    fn record(&self, busy: Duration) {
        self.busy_nanos.fetch_add(u64::try_from(busy.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
        self.wakeups.fetch_add(1, Ordering::Relaxed);
    }

    /// Time spent handling inputs and carrying out decisions, since start.
    pub fn busy(&self) -> Duration {
        Duration::from_nanos(self.busy_nanos.load(Ordering::Relaxed))
    }

    /// Inputs handled (each one a wake-up of the loop), since start.
    pub fn wakeups(&self) -> u64 {
        self.wakeups.load(Ordering::Relaxed)
    }
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
    sip: Arc<SipService>,
    writer: Option<WriterHandle>,
    node: String,
    /// Operators' feature-code calls (`*1` …): answered, confirmed by a prompt, ended.
    feature_calls: HashMap<CallId, (OperatorId, FeatureCode)>,
    load: Arc<ControlLoad>,
}

/// The channels the control loop listens on.
pub struct Inputs {
    pub sip: mpsc::Receiver<SipEvent>,
    pub media: mpsc::Receiver<LegEvent>,
    pub admin: mpsc::Receiver<AdminRequest>,
}

impl Runtime {
    pub fn new(
        engine: Engine,
        media: MediaContext,
        sip: Arc<SipService>,
        writer: Option<WriterHandle>,
        records: Option<RecordSink>,
        node: String,
    ) -> Runtime {
        Runtime {
            engine,
            media,
            legs: HashMap::new(),
            sip_alive: HashSet::new(),
            rng: rand::rngs::SmallRng::from_entropy(),
            records,
            sip,
            writer,
            node,
            feature_calls: HashMap::new(),
            load: Arc::default(),
        }
    }

    /// Feeds one input outside the loop (start-up facts such as the operator directory).
    pub fn handle_input(&mut self, input: Input) {
        self.engine.handle_input(Now::read(), input);
        self.dispatch();
    }

    /// How busy the control loop is (for the metrics).
    pub fn load(&self) -> Arc<ControlLoad> {
        self.load.clone()
    }

    /// Runs until `shutdown` resolves and every call has ended (or the grace time passed).
    pub async fn run(mut self, mut inputs: Inputs, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut stopping_since: Option<Instant> = None;
        loop {
            let deadline = self.engine.poll_timeout();
            let wake = tokio::select! {
                Some(event) = inputs.sip.recv() => Wake::Sip(event),
                Some(event) = inputs.media.recv() => Wake::Media(event),
                Some(request) = inputs.admin.recv() => Wake::Admin(request),
                _ = crate::clock::sleep_until(deadline) => Wake::Timer,
                _ = &mut shutdown, if stopping_since.is_none() => Wake::Shutdown,
                _ = tokio::time::sleep(Duration::from_millis(100)), if stopping_since.is_some() => Wake::Recheck,
            };
            #[allow(clippy::disallowed_methods)] // driver: measuring its own busy time
            let busy_from = Instant::now();
            match wake {
                Wake::Sip(event) => self.on_sip(event),
                Wake::Media(event) => self.on_media(event),
                Wake::Admin(request) => self.on_admin(request),
                Wake::Timer => self.engine.handle_timeout(Now::read()),
                Wake::Shutdown => {
                    tracing::info!(calls = self.legs.len(), "shutting down: ending calls");
                    let now = Now::read();
                    stopping_since = Some(now.instant);
                    self.engine.handle_input(now, Input::ShutdownRequested);
                }
                Wake::Recheck => {}
            }
            self.dispatch();
            self.load.record(busy_from.elapsed());
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
            SipEvent::Incoming { call, caller, remote_media, peer_ip, local_ip, leg, feature } => {
                self.sip_alive.insert(call.clone());
                self.legs.insert(
                    call.clone(),
                    Legs { sip: leg, media: None, remote: remote_media, peer_ip, local_ip, operators: HashMap::new() },
                );
                if let Some(feature) = feature {
                    self.feature_calls.insert(call.clone(), feature);
                    self.answer(call);
                    return;
                }
                self.write(WriteItem::CallStarted(CallStart {
                    id: call.0.clone(),
                    node: self.node.clone(),
                    caller: caller.clone(),
                    arrived_at: now.wall,
                }));
                Input::CallArrived { call, caller }
            }
            SipEvent::Established { call } => {
                if let Some((operator, code)) = self.feature_calls.get(&call).cloned() {
                    self.run_feature(&call, operator, code);
                    return;
                }
                Input::CallAnswered { call }
            }
            SipEvent::Digit { call, digit } => Input::DigitPressed { call, digit },
            SipEvent::Ended { call } => {
                self.sip_alive.remove(&call);
                self.legs.remove(&call);
                if self.feature_calls.remove(&call).is_some() {
                    return;
                }
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
                        media.command(LegCommand::Hold(remote_media.is_hold()));
                    }
                    legs.remote = remote_media;
                }
                return;
            }
            SipEvent::OperatorAnswered { call, operator, remote_media } => {
                if let Some(leg) = self.legs.get(&call).and_then(|l| l.operators.get(&operator)) {
                    leg.media.command(LegCommand::Retarget {
                        remote: remote_media.addr,
                        codec: remote_media.codec,
                        telephone_event_pt: remote_media.telephone_event_pt,
                    });
                }
                Input::OfferAnswered { call, operator }
            }
            SipEvent::OperatorFailed { call, operator, busy } => {
                self.drop_operator_leg(&call, &operator);
                Input::OfferRejected { call, operator, busy }
            }
            SipEvent::OperatorEnded { call, operator } => {
                self.drop_operator_leg(&call, &operator);
                Input::OperatorLegEnded { call, operator }
            }
            SipEvent::OperatorRegistered { operator } => Input::OperatorRegistered { operator },
            SipEvent::OperatorUnregistered { operator } => Input::OperatorUnregistered { operator },
        };
        self.engine.handle_input(now, input);
    }

    fn on_media(&mut self, event: LegEvent) {
        let input = match event {
            LegEvent::Digit { call, digit } => Input::DigitPressed { call, digit },
            LegEvent::PlaybackFinished { call, seq } => {
                if self.feature_calls.contains_key(&call) {
                    if let Some(legs) = self.legs.get(&call) {
                        legs.sip.send(SipCallCommand::Hangup);
                    }
                    return;
                }
                Input::PlaybackFinished { call, seq }
            }
            LegEvent::MediaTimeout { call, operator: Some(operator) } => {
                tracing::info!(%call, %operator, "no RTP from the operator's phone: ending its leg");
                if let Some(leg) = self.legs.get_mut(&call).and_then(|l| l.operators.remove(&operator)) {
                    leg.sip.end();
                }
                Input::OperatorLegEnded { call, operator }
            }
            LegEvent::MediaTimeout { call, operator: None } => {
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
            AdminRequest::Operators(reply) => {
                let _ = reply.send(self.engine.operators());
            }
            AdminRequest::Operator(input) => self.engine.handle_input(Now::read(), input),
            AdminRequest::Directory(operators) => {
                self.engine.handle_input(Now::read(), Input::DirectoryLoaded { operators })
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
                Output::OfferToOperator { call, operator, queue, theme, caller, language, ivr_path } => {
                    self.offer(call, operator, queue.0, theme, caller, language.code(), ivr_path)
                }
                Output::CancelOffer { call, operator } | Output::HangupOperator { call, operator } => {
                    if let Some(leg) = self.legs.get_mut(&call).and_then(|l| l.operators.remove(&operator)) {
                        leg.sip.end();
                    }
                }
                Output::Bridge { call, operator } => self.bridge(&call, &operator),
                Output::QueueEvent(event) => {
                    self.write(WriteItem::Events(vec![StoredEvent::from(event)]));
                }
                Output::OperatorStateChanged { operator, state, reason } => {
                    tracing::info!(%operator, state = state.as_str(), ?reason, "operator state");
                    self.write(WriteItem::Presence {
                        username: operator.0,
                        state: state.as_str().to_string(),
                        reason,
                        at: Now::read().wall,
                    });
                }
                Output::CallFinished(record) => {
                    tracing::info!(call = %record.id, outcome = record.outcome.as_str(), queue = ?record.queue.as_ref().map(|q| &q.0), "call finished");
                    // Media ends now (its port returns to the pool); the SIP leg finishes
                    // its BYE on its own and reports `Ended`.
                    if let Some(legs) = self.legs.get_mut(&record.id) {
                        legs.media = None;
                        for (_, leg) in legs.operators.drain() {
                            leg.sip.end();
                        }
                    }
                    if let Some(records) = &self.records {
                        let _ = records.try_send((*record).clone());
                    }
                    self.write(WriteItem::CallFinished(record));
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
            None,
            legs.local_ip,
            SignalledPeer { ip: legs.peer_ip, sdp: legs.remote.addr },
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

    #[allow(clippy::too_many_arguments)]
    fn offer(
        &mut self,
        call: CallId,
        operator: OperatorId,
        queue: String,
        theme: String,
        caller: String,
        language: &str,
        ivr_path: Vec<String>,
    ) {
        let local_ip = self.sip.local_ip_for(&operator);
        let ssrc: u32 = self.rng.gen();
        // The operator's media address is known from its answer; until then nothing is sent.
        // Its RTP is accepted only from where its phone registered (or its SDP's address).
        let placeholder = std::net::SocketAddr::new(local_ip, 9);
        let peer = SignalledPeer {
            ip: self.sip.operator_ip(&operator).unwrap_or(IpAddr::from([0, 0, 0, 0])),
            sdp: placeholder,
        };
        let media = match MediaLeg::open(&self.media, call.clone(), Some(operator.clone()), local_ip, peer, Codec::Pcmu, Some(101), ssrc) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(%call, error = %e, "no RTP port for the operator leg");
                self.engine.handle_input(Now::read(), Input::OfferRejected { call, operator, busy: false });
                return;
            }
        };
        let spec = OfferSpec {
            call: call.clone(),
            operator: operator.clone(),
            display: format!("[{theme}] {caller}"),
            caller,
            queue,
            language: language.to_string(),
            ivr_path: ivr_path.join(">"),
            local_rtp: media.local_addr(),
        };
        let sip = self.sip.offer(spec);
        match self.legs.get_mut(&call) {
            Some(legs) => {
                legs.operators.insert(operator, OperatorLeg { sip, media });
            }
            None => sip.end(),
        }
    }

    fn bridge(&mut self, call: &CallId, operator: &OperatorId) {
        let Some(legs) = self.legs.get(call) else { return };
        let (Some(caller_media), Some(op)) = (legs.media.as_ref(), legs.operators.get(operator)) else { return };
        caller_media.command(LegCommand::Bridge { peer: op.media.relay_target() });
        op.media.command(LegCommand::Bridge { peer: caller_media.relay_target() });
    }

    /// A feature code: the operator's state changes in the engine, a prompt confirms it.
    fn run_feature(&mut self, call: &CallId, operator: OperatorId, code: FeatureCode) {
        let (input, prompt) = match code {
            FeatureCode::Pause => (Some(Input::OperatorPaused { operator, reason: "pausa".into() }), "funzione_pausa"),
            FeatureCode::Resume => (Some(Input::OperatorResumed { operator }), "funzione_ripresa"),
            FeatureCode::Logout => (Some(Input::OperatorLoggedOut { operator }), "funzione_logout"),
            FeatureCode::Login => (Some(Input::OperatorLoggedIn { operator }), "funzione_login"),
            FeatureCode::Unknown => (None, "funzione_sconosciuta"),
        };
        if let Some(input) = input {
            self.engine.handle_input(Now::read(), input);
        }
        let prompts = vec![crate::engine::ids::PromptId::new(crate::engine::ids::Language::It, prompt)];
        self.media(call, LegCommand::Play { seq: 1, prompts });
    }

    fn drop_operator_leg(&mut self, call: &CallId, operator: &OperatorId) {
        if let Some(legs) = self.legs.get_mut(call) {
            legs.operators.remove(operator);
        }
    }

    fn write(&self, item: WriteItem) {
        if let Some(writer) = &self.writer {
            writer.send(item);
        }
    }

    fn media(&self, call: &CallId, cmd: LegCommand) {
        if let Some(media) = self.legs.get(call).and_then(|l| l.media.as_ref()) {
            media.command(cmd);
        }
    }
}
