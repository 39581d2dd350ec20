//! Prometheus names, units and labels. Every scrape builds the exposition from plain data:
//! the engine's snapshot (counters and gauges computed at that moment) and the drivers'
//! atomic counters. Nothing is incremented and decremented by hand in many places.
//!
//! Owns: metric names (DESIGN.md §3). Must not touch: engine decisions.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus::core::Collector;
use prometheus::proto;
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
    pub service: Arc<crate::sip::SipService>,
    pub control: Arc<crate::runtime::ControlLoad>,
    pub version: &'static str,
}

impl MetricsSources {
    /// The engine's histograms (waits, talk times, estimate errors). Filled in when the engine
    /// keeps them; see `histogram_family`.
    fn histograms(&self, stats: &StatsSnapshot) -> Vec<proto::MetricFamily> {
        let c = &stats.counters;
        fn series<'h>(labels: Vec<(&'static str, String)>, h: &'h crate::engine::stats::Histogram) -> HistogramSeries<'h> {
            HistogramSeries { labels, bounds: &h.bounds, counts: &h.counts, sum: h.sum, count: h.count }
        }
        vec![
            histogram_family(
                "centralino_queue_wait_seconds",
                "Time waited in the queue, by how the wait ended",
                c.wait_seconds
                    .iter()
                    .map(|((q, o), h)| series(vec![("queue", q.0.clone()), ("outcome", o.as_str().to_string())], h))
                    .collect(),
            ),
            histogram_family(
                "centralino_talk_seconds",
                "Talk time of answered calls",
                c.talk_seconds.iter().map(|(q, h)| series(vec![("queue", q.0.clone())], h)).collect(),
            ),
            histogram_family(
                "centralino_ewt_error_seconds",
                "Actual wait minus the wait announced at queue entry (positive: waited longer than told)",
                c.ewt_error_seconds.iter().map(|(q, h)| series(vec![("queue", q.0.clone())], h)).collect(),
            ),
        ]
    }

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

        let operators = IntGaugeVec::new(
            Opts::new("centralino_operators", "Operators by queue and state (an operator serving two queues counts in both)"),
            &["queue", "state"],
        )?;
        for ((queue, state), n) in &stats.operators {
            operators.with_label_values(&[queue.0.as_str(), state]).set(*n as i64);
        }
        reg(Box::new(operators))?;

        let per_queue = [
            ("centralino_queue_entered_total", "Callers who entered the queue", &stats.counters.queue_entered),
            ("centralino_queue_offers_total", "Offers of callers to operators", &stats.counters.offers),
            ("centralino_queue_ring_no_answer_total", "Offers an operator did not answer in time", &stats.counters.ring_no_answer),
            ("centralino_operator_auto_pauses_total", "Operators paused after consecutive unanswered offers", &stats.counters.auto_pauses),
        ];
        for (name, help, map) in per_queue {
            let c = IntCounterVec::new(Opts::new(name, help), &["queue"])?;
            for queue in stats.queue_waiting.keys() {
                c.with_label_values(&[&queue.0]).inc_by(map.get(queue).copied().unwrap_or(0));
            }
            reg(Box::new(c))?;
        }

        let sl = GaugeVec::new(
            Opts::new("centralino_queue_service_level_threshold_seconds", "The queue's service-level threshold"),
            &["queue"],
        )?;
        for (queue, secs) in &stats.service_level_seconds {
            sl.with_label_values(&[&queue.0]).set(*secs);
        }
        reg(Box::new(sl))?;

        let registrar = self.service.registrar_stats();
        let auth = IntCounterVec::new(
            Opts::new("centralino_sip_register_total", "REGISTER outcomes at the registrar"),
            &["result"],
        )?;
        for (result, n) in [
            ("challenged", registrar.challenges),
            ("ok", registrar.successes),
            ("auth_failed", registrar.failures),
            ("throttled", registrar.throttled),
            ("stale_nonce", registrar.stale),
            ("replay", registrar.replays),
        ] {
            auth.with_label_values(&[result]).inc_by(n);
        }
        reg(Box::new(auth))?;
        let bindings = IntGauge::new("centralino_sip_registrations", "Live contact bindings of operators")?;
        bindings.set(registrar.bindings as i64);
        reg(Box::new(bindings))?;
        let edge = self.service.edge().stats();
        let rejected = IntCounterVec::new(
            Opts::new("centralino_sip_rejected_total", "SIP requests refused or dropped at the edge, by reason"),
            &["reason"],
        )?;
        let mut refused: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
        for ((reason, _), n) in &edge.admission.refused {
            *refused.entry(reason.as_str()).or_default() += n;
        }
        refused.insert("banned", edge.bans.dropped);
        refused.insert("scanner", edge.scanners);
        refused.insert("foreign_in_dialog", self.sip.foreign_in_dialog.load(Ordering::Relaxed));
        for reason in crate::sip::admission::Refusal::ALL {
            refused.entry(reason.as_str()).or_default();
        }
        for (reason, n) in refused {
            rejected.with_label_values(&[reason]).inc_by(n);
        }
        reg(Box::new(rejected))?;
        let bans = IntCounterVec::new(Opts::new("centralino_sip_bans_total", "Sources banned, by reason"), &["reason"])?;
        for reason in crate::sip::bans::BanReason::ALL {
            bans.with_label_values(&[reason.as_str()]).inc_by(edge.bans.started.get(&reason).copied().unwrap_or(0));
        }
        reg(Box::new(bans))?;
        let active = IntGauge::new("centralino_sip_bans_active", "Sources banned now")?;
        active.set(edge.bans_active as i64);
        reg(Box::new(active))?;
        let admitted = IntGauge::new("centralino_sip_calls_admitted", "Calls holding a place in the edge's admission counts")?;
        admitted.set(edge.calls as i64);
        reg(Box::new(admitted))?;
        let dialogs = IntGauge::new("centralino_sip_dialogs", "SIP dialogs the stack holds now")?;
        dialogs.set(self.service.dialog_count() as i64);
        reg(Box::new(dialogs))?;
        let transactions = IntGaugeVec::new(
            Opts::new("centralino_sip_transactions", "SIP transactions the stack holds now, by state"),
            &["state"],
        )?;
        let t = self.service.transaction_counts();
        for (state, n) in [("running", t.running), ("finished", t.finished), ("waiting_ack", t.waiting_ack)] {
            transactions.with_label_values(&[state]).set(n as i64);
        }
        reg(Box::new(transactions))?;

        let w = &self.writer;
        for (name, help, value) in [
            ("centralino_store_written_total", "Records written to the database", w.written.load(Ordering::Relaxed)),
            ("centralino_store_dropped_total", "Records dropped because the writer's queue was full", w.dropped.load(Ordering::Relaxed)),
            ("centralino_store_rejected_total", "Records the database refused", w.rejected.load(Ordering::Relaxed)),
            ("centralino_store_errors_total", "Failed database batches (retried)", w.errors.load(Ordering::Relaxed)),
        ] {
            let c = prometheus::IntCounter::new(name, help)?;
            c.inc_by(value);
            reg(Box::new(c))?;
        }
        let depth = IntGauge::new("centralino_store_queue_depth", "Records waiting for the database writer")?;
        depth.set(w.queued.load(Ordering::Relaxed) as i64);
        reg(Box::new(depth))?;
        let latency = prometheus::Gauge::new("centralino_store_last_batch_seconds", "Time the last database batch took")?;
        latency.set(w.last_batch_ms.load(Ordering::Relaxed) as f64 / 1000.0);
        reg(Box::new(latency))?;

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

        // Dropped before the call's media session saw them; one reason today, a label so
        // that more (e.g. a rate limit) join the same series.
        let rejected = IntCounterVec::new(
            Opts::new("centralino_rtp_rejected_total", "Datagrams on RTP ports dropped unseen, by reason (foreign_source: neither the SDP's address nor the NAT-latched one)"),
            &["reason"],
        )?;
        rejected.with_label_values(&["foreign_source"]).inc_by(self.media.rtp_foreign.load(Ordering::Relaxed));
        reg(Box::new(rejected))?;

        let dtmf = IntCounterVec::new(Opts::new("centralino_dtmf_digits_total", "DTMF digits received, by method"), &["method"])?;
        dtmf.with_label_values(&["rfc4733"]).inc_by(self.media.dtmf_rfc4733.load(Ordering::Relaxed));
        dtmf.with_label_values(&["sip_info"]).inc_by(self.sip.dtmf_info.load(Ordering::Relaxed));
        reg(Box::new(dtmf))?;

        let busy = prometheus::Counter::new(
            "centralino_control_busy_seconds_total",
            "Time the control loop (one task: engine and call legs' orders) spent working; its rate near 1 means saturated",
        )?;
        busy.inc_by(self.control.busy().as_secs_f64());
        reg(Box::new(busy))?;
        let wakeups = prometheus::IntCounter::new("centralino_control_wakeups_total", "Inputs the control loop handled")?;
        wakeups.inc_by(self.control.wakeups());
        reg(Box::new(wakeups))?;

        let ports = IntGauge::new("centralino_rtp_ports_active", "RTP ports leased to call legs now")?;
        ports.set(self.ports.in_use() as i64);
        reg(Box::new(ports))?;

        let build = IntGaugeVec::new(Opts::new("centralino_build_info", "Build information"), &["version"])?;
        build.with_label_values(&[self.version]).set(1);
        reg(Box::new(build))?;

        #[cfg(target_os = "linux")]
        reg(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;

        let mut families = registry.gather();
        families.extend(self.histograms(stats));
        families.sort_by(|a, b| a.name().cmp(b.name()));
        let mut out = Vec::new();
        TextEncoder::new().encode(&families, &mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// One histogram series as plain data: label values, upper bounds, per-bucket (not
/// cumulative) counts with one more for +Inf, sum and count.
pub struct HistogramSeries<'a> {
    pub labels: Vec<(&'static str, String)>,
    pub bounds: &'a [f64],
    pub counts: &'a [u64],
    pub sum: f64,
    pub count: u64,
}

/// A histogram family from plain data (the engine keeps histograms as numbers; the
/// prometheus crate's own histograms only grow by observation).
pub fn histogram_family(name: &str, help: &str, series: Vec<HistogramSeries<'_>>) -> proto::MetricFamily {
    let mut family = proto::MetricFamily::default();
    family.set_name(name.to_string());
    family.set_help(help.to_string());
    family.set_field_type(proto::MetricType::HISTOGRAM);
    let metrics = series
        .into_iter()
        .map(|s| {
            let mut h = proto::Histogram::default();
            h.set_sample_count(s.count);
            h.set_sample_sum(s.sum);
            let mut cumulative = 0;
            let buckets = s
                .bounds
                .iter()
                .zip(s.counts)
                .map(|(bound, n)| {
                    cumulative += n;
                    let mut b = proto::Bucket::default();
                    b.set_upper_bound(*bound);
                    b.set_cumulative_count(cumulative);
                    b
                })
                .collect();
            h.set_bucket(buckets);
            let mut m = proto::Metric::default();
            let labels = s
                .labels
                .into_iter()
                .map(|(k, v)| {
                    let mut l = proto::LabelPair::default();
                    l.set_name(k.to_string());
                    l.set_value(v);
                    l
                })
                .collect();
            m.set_label(labels);
            m.set_histogram(h);
            m
        })
        .collect();
    family.set_metric(metrics);
    family
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_data_histograms_render_cumulative_buckets_that_promtool_style_parsers_accept() {
        let bounds = [10.0, 20.0];
        let counts = [1, 2, 3]; // ≤10, ≤20, +Inf
        let family = histogram_family(
            "centralino_test_seconds",
            "A test histogram",
            vec![HistogramSeries { labels: vec![("queue", "tributi".into())], bounds: &bounds, counts: &counts, sum: 99.0, count: 6 }],
        );
        let mut out = Vec::new();
        TextEncoder::new().encode(&[family], &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("centralino_test_seconds_bucket{queue=\"tributi\",le=\"10\"} 1"), "{text}");
        assert!(text.contains("centralino_test_seconds_bucket{queue=\"tributi\",le=\"20\"} 3"), "{text}");
        assert!(text.contains("centralino_test_seconds_bucket{queue=\"tributi\",le=\"+Inf\"} 6"), "{text}");
        assert!(text.contains("centralino_test_seconds_count{queue=\"tributi\"} 6"), "{text}");
    }
}
