//! Prometheus names, units and labels. Every scrape builds the exposition from plain data:
//! the engine's snapshot (counters and gauges computed at that moment) and the drivers'
//! atomic counters. Nothing is incremented and decremented by hand in many places.
//!
//! Owns: metric names (DESIGN.md §3). Must not touch: engine decisions.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus::core::Collector;
use prometheus::{Encoder, GaugeVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::engine::call::Outcome;
use crate::engine::stats::StatsSnapshot;
use crate::media::leg::MediaCounters;
use crate::media::ports::PortPool;
use crate::sip::SipCounters;

/// The drivers' counters the exposition reads besides the engine's snapshot.
pub struct MetricsSources {
    pub sip: Arc<SipCounters>,
    pub media: Arc<MediaCounters>,
    pub ports: PortPool,
    pub writer: Arc<crate::store::writer::WriterStats>,
    pub version: &'static str,
}

impl MetricsSources {
    /// The text exposition for one scrape.
    pub fn render(&self, stats: &StatsSnapshot) -> prometheus::Result<String> {
        let registry = Registry::new();
        let reg = |c: Box<dyn Collector>| registry.register(c);

        let waiting = IntGaugeVec::new(Opts::new("centralino_queue_waiting", "Callers waiting in the queue now"), &["queue"])?;
        let oldest = GaugeVec::new(
            Opts::new("centralino_queue_oldest_wait_seconds", "How long the longest-waiting caller has waited"),
            &["queue"],
        )?;
        for (queue, (n, oldest_secs)) in &stats.queue_waiting {
            waiting.with_label_values(&[&queue.0]).set(*n as i64);
            oldest.with_label_values(&[&queue.0]).set(*oldest_secs);
        }
        reg(Box::new(waiting))?;
        reg(Box::new(oldest))?;

        let queue_calls = IntCounterVec::new(
            Opts::new("centralino_queue_calls_total", "Calls that left a queue, by outcome"),
            &["queue", "outcome"],
        )?;
        for queue in stats.queue_waiting.keys() {
            for outcome in [Outcome::Answered, Outcome::Abandoned, Outcome::Timeout, Outcome::Overflow, Outcome::Closed, Outcome::Interrupted] {
                let n = stats.counters.queue_exits.get(&(queue.clone(), outcome)).copied().unwrap_or(0);
                queue_calls.with_label_values(&[&queue.0, outcome.as_str()]).inc_by(n);
            }
        }
        reg(Box::new(queue_calls))?;

        let calls_total = IntCounterVec::new(Opts::new("centralino_calls_total", "Finished calls by final outcome"), &["outcome"])?;
        for outcome in Outcome::ALL {
            let n = stats.counters.calls_by_outcome.get(&outcome).copied().unwrap_or(0);
            calls_total.with_label_values(&[outcome.as_str()]).inc_by(n);
        }
        reg(Box::new(calls_total))?;

        let active = IntGaugeVec::new(Opts::new("centralino_calls_active", "Live calls by stage"), &["stage"])?;
        for (stage, n) in &stats.calls_active {
            active.with_label_values(&[stage]).set(*n as i64);
        }
        reg(Box::new(active))?;

        let choices = IntCounterVec::new(Opts::new("centralino_ivr_choices_total", "IVR keys pressed, by menu"), &["menu", "choice"])?;
        for ((menu, choice), n) in &stats.counters.ivr_choices {
            choices.with_label_values(&[menu, choice]).inc_by(*n);
        }
        reg(Box::new(choices))?;

        let open = IntGauge::new("centralino_office_open", "1 when the office is open now")?;
        open.set(stats.office_open as i64);
        reg(Box::new(open))?;

        let sip_messages = IntCounterVec::new(
            Opts::new("centralino_sip_messages_total", "SIP messages by direction, method and status (empty for requests)"),
            &["direction", "method", "status"],
        )?;
        for ((dir, method, status), n) in self.sip.messages() {
            sip_messages.with_label_values(&[dir, &method, &status]).inc_by(n);
        }
        reg(Box::new(sip_messages))?;

        let simple = [
            ("centralino_sip_parse_errors_total", "Datagrams that were not valid SIP", self.sip.parse_errors()),
            ("centralino_rtp_packets_sent_total", "RTP packets sent", self.media.packets_sent.load(Ordering::Relaxed)),
            ("centralino_rtp_bytes_sent_total", "RTP bytes sent", self.media.bytes_sent.load(Ordering::Relaxed)),
            ("centralino_rtp_packets_received_total", "RTP packets received", self.media.packets_received.load(Ordering::Relaxed)),
            ("centralino_rtp_bytes_received_total", "RTP bytes received", self.media.bytes_received.load(Ordering::Relaxed)),
            ("centralino_rtp_malformed_total", "Datagrams on RTP ports that were not valid RTP", self.media.malformed.load(Ordering::Relaxed)),
            ("centralino_prompts_missing_total", "Prompts asked for that have no recording", self.media.missing_prompts.load(Ordering::Relaxed)),
        ];
        for (name, help, value) in simple {
            let c = prometheus::IntCounter::new(name, help)?;
            c.inc_by(value);
            reg(Box::new(c))?;
        }

        let dtmf = IntCounterVec::new(Opts::new("centralino_dtmf_digits_total", "DTMF digits received, by method"), &["method"])?;
        dtmf.with_label_values(&["rfc4733"]).inc_by(self.media.dtmf_rfc4733.load(Ordering::Relaxed));
        dtmf.with_label_values(&["sip_info"]).inc_by(self.sip.dtmf_info.load(Ordering::Relaxed));
        reg(Box::new(dtmf))?;

        let ports = IntGauge::new("centralino_rtp_ports_active", "RTP ports leased to call legs now")?;
        ports.set(self.ports.in_use() as i64);
        reg(Box::new(ports))?;

        let build = IntGaugeVec::new(Opts::new("centralino_build_info", "Build information"), &["version"])?;
        build.with_label_values(&[self.version]).set(1);
        reg(Box::new(build))?;

        let mut out = Vec::new();
        TextEncoder::new().encode(&registry.gather(), &mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}
