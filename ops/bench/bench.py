#!/usr/bin/env python3
"""centralino load benchmark (issue 8), all on 127.0.0.1, every run bounded in calls and time.

    python3 ops/bench/bench.py [--quick] [--steps 50,100,200,400] [--waiting 1000,5000]

Needs: cargo, sipp (apt-get install sip-tester), python3. Builds centralino in release mode,
starts it with a bench config (schedule always open, SQLite on /dev/shm or PostgreSQL with
--postgres URL), and measures:
  1. throughput: SIPp callers (SIP INFO digit -> queue) answered by SIPp operators (2 s talk,
     operator BYE), stepping the call rate; success rate, centralino CPU ms per call (from
     /proc, not wall time), RSS, SIPp call-setup time percentiles;
  2. waiting capacity: N callers on music on hold with no operator; CPU and RSS per caller,
     RTP packets per second sent (centralino's counter) vs expected (50 per caller);
  3. routing latency: callers entering a queue with a free operator; time from the caller's
     DTMF INFO to the operator's INVITE, from a tshark-free source: SIPp's own timing of the
     INFO's 200 and the operator's INVITE arrival is not shared, so centralino's log is used
     (it logs offers with microsecond timestamps at debug level) -- see route_latency();
  4. persistence: the throughput run against PostgreSQL (--postgres URL).
Writes a markdown table to stdout and to ops/bench/last-run.md. The load generator shares the
machine: figures are for the pair, and the load average is reported with each run.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SIPP_DIR = os.path.join(ROOT, "tests", "interop", "sipp")
BIN = os.path.join(ROOT, "target", "release", "centralino")  # --bin overrides
CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port(kind=socket.SOCK_DGRAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def proc_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK  # utime + stime


def children_cpu_seconds():
    import resource
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def proc_rss_bytes(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE


def proc_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def metrics(http):
    with urllib.request.urlopen(f"http://{http}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        try:
            out[name] = float(value)
        except ValueError:
            pass
    return out


class Service:
    def __init__(self, workdir, db_url, rtp_ports="20000-59999"):
        if db_url.startswith("sqlite:///dev/shm/"):
            for suffix in ("", "-wal", "-shm"):
                path = db_url[len("sqlite://"):] + suffix
                if os.path.exists(path):
                    os.remove(path)
        elif db_url.startswith("postgres"):
            # A fresh schema per run, so accounts and records of earlier runs do not collide.
            schema = f"bench_{os.getpid()}_{int(time.time())}"
            subprocess.run(["psql", db_url, "-q", "-c", f"CREATE SCHEMA {schema}"], check=True)
            sep = "&" if "?" in db_url else "?"
            db_url = f"{db_url}{sep}options=-c%20search_path%3D{schema}"
        self.sip = free_port()
        self.http = f"127.0.0.1:{free_port(socket.SOCK_STREAM)}"
        days = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
        env = dict(os.environ)
        env.update({
            "CENTRALINO_SIP__LISTEN": f'["udp:127.0.0.1:{self.sip}"]',
            "CENTRALINO_HTTP__LISTEN": self.http,
            "CENTRALINO_MEDIA__RTP_PORTS": rtp_ports,
            "CENTRALINO_MEDIA__RTP_TIMEOUT_SECS": "0",
            "CENTRALINO_IVR__SCRIPTS": os.path.join(ROOT, "ivr-scripts"),
            "CENTRALINO_DATABASE__URL": db_url,
            "CENTRALINO_SCHEDULE__HOLIDAYS": "none",
            "CENTRALINO_SCHEDULE__EXTRA_HOLIDAYS": "[]",
            # SIPp calls from 127.0.0.1 at thousands of calls a second: a trunk's limits.
            "CENTRALINO_LIMITS__TRUNK_SOURCES": '["127.0.0.1"]',
            "RUST_LOG": "warn",
        })
        for d in days:
            env[f"CENTRALINO_SCHEDULE__{d.upper()}"] = '["00:00-24:00"]'
        self.env = env
        self.workdir = workdir
        self.proc = None
        # The bench queue: no wrap-up, so a free operator is offered the next caller at once.
        default = subprocess.run([BIN, "default-config"], capture_output=True, text=True, check=True).stdout
        config = default.replace('name = "tributi"', 'name = "tributi"\nwrap_up_secs = 0')
        path = os.path.join(workdir, "bench.toml")
        with open(path, "w") as f:
            f.write(config)
        env["CENTRALINO_CONFIG"] = path

    def cli(self, *args):
        subprocess.run([BIN, *args], env=self.env, cwd=self.workdir, check=True, stdout=subprocess.DEVNULL)

    def start(self):
        self.log = open(os.path.join(self.workdir, "centralino.log"), "w")
        self.proc = subprocess.Popen([BIN, "serve"], env=self.env, cwd=self.workdir, stdout=self.log, stderr=self.log,
                                     preexec_fn=raise_fd_limit)
        for _ in range(100):
            try:
                metrics(self.http)
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("centralino did not start; see centralino.log")

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None


def raise_fd_limit():
    # One RTP socket per call leg: 10,000 waiting callers need more than the default 1,024 fds.
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))


def sipp_base(target):
    return ["sipp", target, "-i", "127.0.0.1", "-mi", "127.0.0.1", "-bind_local", "-ci", "127.0.0.1",
            "-nostdin", "-p", str(free_port()), "-mp", str(even_port())]


def even_port():
    while True:
        p = free_port()
        if p % 2 == 0 and p < 65000:
            return p


def start_operator(svc, workdir, user, lifetime_s, talk_ms=2000):
    cmd = sipp_base(f"127.0.0.1:{svc.sip}") + [
        "-sf", os.path.join(SIPP_DIR, "operator_register.xml"), "-oocsf", os.path.join(SIPP_DIR, "operator_uas.xml"),
        "-m", "1", "-au", user, "-ap", "pw-" + user,
        "-key", "op_user", user, "-key", "expires", "3600", "-key", "refresh_ms", str(lifetime_s * 1000),
        "-key", "refreshes", "1", "-key", "unregister", "1", "-key", "answer_mode", "answer",
        "-key", "ring_ms", "0", "-key", "talk_ms", str(talk_ms), "-max_socket", "10000",
    ]
    return subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_callers(svc, workdir, rate, calls, digit, hold_ms, require_bye, limit_s, extra=()):
    cmd = sipp_base(f"127.0.0.1:{svc.sip}") + [
        "-sf", os.path.join(SIPP_DIR, "caller_info_dtmf.xml"), "-s", "ivr",
        "-r", str(rate), "-m", str(calls), "-l", str(max(calls, 1)), "-max_socket", "20000",
        "-key", "from_user", "3331234567", "-key", "digits", digit, "-key", "pre_dtmf_ms", "0",
        "-key", "gap_ms", "200", "-key", "hold_ms", str(hold_ms), "-key", "require_remote_bye", str(require_bye),
        "-key", "info_duration", "160", "-timeout", f"{limit_s}s", "-timeout_error",
        "-trace_rtt", "-rtt_freq", "1", "-trace_stat", "-fd", "1", *extra,
    ]
    out = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=limit_s + 30)
    ok = sum(int(m) for m in re.findall(r"Successful call\s+\|\s+\d+\s+\|\s+(\d+)", out.stdout)[-1:])
    failed = sum(int(m) for m in re.findall(r"Failed call\s+\|\s+\d+\s+\|\s+(\d+)", out.stdout)[-1:])
    rtts = []
    for name in os.listdir(workdir):
        if name.endswith("_rtt.csv"):
            with open(os.path.join(workdir, name)) as f:
                for line in f.readlines()[1:]:
                    parts = line.strip().split(";")
                    if len(parts) >= 2:
                        try:
                            rtts.append(float(parts[1]))
                        except ValueError:
                            pass
            os.remove(os.path.join(workdir, name))
    return ok, failed, rtts


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def throughput(args, db_url, label):
    rows = []
    with tempfile.TemporaryDirectory() as wd:
        svc = Service(wd, db_url)
        ops = [f"bench{i}" for i in range(4)]
        for op in ops:
            svc.cli("operators", "add", op, "--password", "pw-" + op, "--queue", "tributi:1", "--max-calls", "5000")
        svc.start()
        lifetime = 40 * len(args.steps) + 60
        phones = [start_operator(svc, wd, op, lifetime) for op in ops]
        time.sleep(2)  # registrations: the operators' REGISTER round trips
        try:
            for rate in args.steps:
                calls = rate * args.seconds
                m0, cpu0 = metrics(svc.http), proc_cpu_seconds(svc.proc.pid)
                # SIPp's own CPU over the step: the callers (a child that ends with the step)
                # and the operators (children still running), for the share of the 2 cores.
                sipp0 = children_cpu_seconds() + sum(proc_cpu_seconds(p.pid) for p in phones)
                wall0 = time.time()
                la = loadavg()
                ok, failed, rtts = run_callers(svc, wd, rate, calls, "2", 8000, 1, args.seconds + 40)
                cpu = proc_cpu_seconds(svc.proc.pid) - cpu0
                sipp = children_cpu_seconds() + sum(proc_cpu_seconds(p.pid) for p in phones) - sipp0
                wall = time.time() - wall0
                m1 = metrics(svc.http)
                control = m1.get("centralino_control_busy_seconds_total", 0) - m0.get("centralino_control_busy_seconds_total", 0)
                answered = m1.get('centralino_calls_total{outcome="answered"}', 0) - m0.get('centralino_calls_total{outcome="answered"}', 0)
                rows.append({
                    "db": label, "rate": rate, "calls": calls, "ok": ok, "failed": failed,
                    "success_pct": 100.0 * ok / calls if calls else 0, "answered": answered,
                    "cpu_ms_per_call": 1000.0 * cpu / max(ok, 1), "rss_mb": proc_rss_bytes(svc.proc.pid) / 1e6,
                    "centralino_cores": cpu / wall, "sipp_cores": sipp / wall,
                    "control_busy": control / wall,
                    "setup_p50_ms": pct(rtts, 50), "setup_p99_ms": pct(rtts, 99), "load": la,
                })
                print(json.dumps(rows[-1]), file=sys.stderr)
                time.sleep(3)  # let the last calls' BYEs settle before the next step's baseline
        finally:
            for p in phones:
                p.kill()
            svc.stop()
    return rows


def waiting(args):
    rows = []
    for n in args.waiting:
        with tempfile.TemporaryDirectory() as wd:
            svc = Service(wd, "sqlite:///dev/shm/centralino-bench-wait.db")
            svc.start()
            pid = svc.proc.pid
            # The baseline once start-up has settled: jemalloc hands the start-up's garbage
            # (prompt decoding, migrations) back to the kernel over its 10 s decay time.
            time.sleep(min(12, args.settle))
            rss0, fds0 = proc_rss_bytes(pid), proc_fds(pid)
            hold = max(30, n // 200 + 20) + args.settle
            rate = min(500, n)
            caller = subprocess.Popen(
                sipp_base(f"127.0.0.1:{svc.sip}") + [
                    "-sf", os.path.join(SIPP_DIR, "caller_info_dtmf.xml"), "-s", "ivr", "-r", str(rate), "-m", str(n), "-l", str(n),
                    "-max_socket", "20000", "-key", "from_user", "3331234567", "-key", "digits", "2", "-key", "pre_dtmf_ms", "0",
                    "-key", "gap_ms", "200", "-key", "hold_ms", str(hold * 1000), "-key", "require_remote_bye", "0",
                    "-key", "info_duration", "160", "-timeout", f"{hold + n // rate + 60}s"],
                cwd=wd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            # Wait until every caller is queued (bounded), then measure a 10 s window.
            # (or until no caller has joined for 5 s: a caller SIPp gave up on is reported).
            deadline = time.time() + n / rate + 60
            queued, last_growth = 0, time.time()
            while time.time() < deadline and time.time() - last_growth < 5:
                now_queued = metrics(svc.http).get('centralino_queue_waiting{queue="tributi"}', 0)
                if now_queued > queued:
                    queued, last_growth = now_queued, time.time()
                if queued >= n:
                    break
                time.sleep(0.5)
            print(f"waiting: {queued:.0f} of {n} callers queued", file=sys.stderr)
            rss_joined = proc_rss_bytes(pid)
            # Steady state: the set-up transactions (INVITE, INFO) live on for 32 s after the
            # call is answered (RFC 3261 timers) and are not part of what a waiting caller costs.
            time.sleep(args.settle)
            m0, c0, t0 = metrics(svc.http), proc_cpu_seconds(pid), time.time()
            la = loadavg()
            time.sleep(10)
            m1, c1, t1 = metrics(svc.http), proc_cpu_seconds(pid), time.time()
            pps = (m1["centralino_rtp_packets_sent_total"] - m0["centralino_rtp_packets_sent_total"]) / (t1 - t0)
            rss = proc_rss_bytes(pid)
            rows.append({
                "callers": n, "queued": queued, "cpu_cores": (c1 - c0) / (t1 - t0),
                "rss_mb": rss / 1e6, "kb_per_caller": (rss - rss0) / max(queued, 1) / 1024,
                "kb_per_caller_at_join": (rss_joined - rss0) / max(queued, 1) / 1024,
                "rtp_pps": pps, "expected_pps": 50 * queued, "load": la,
                # What the SIP stack holds per waiting caller at steady state (leak check).
                "sip_dialogs": m1.get("centralino_sip_dialogs", -1),
                "sip_transactions": {state: m1.get(f'centralino_sip_transactions{{state="{state}"}}', -1)
                                     for state in ("running", "finished", "waiting_ack")},
            })
            print(json.dumps(rows[-1]), file=sys.stderr)
            caller.wait(timeout=hold + n // rate + 90)
            # A leg's port returns a moment after its call ends; wait for that (bounded).
            for _ in range(100):
                m_end = metrics(svc.http)
                if m_end.get("centralino_rtp_ports_active", -1) == 0:
                    break
                time.sleep(0.1)
            rows[-1]["ports_after"] = m_end.get("centralino_rtp_ports_active", -1)
            rows[-1]["fds_before_after"] = f"{fds0}/{proc_fds(pid)}"
            svc.stop()
    return rows


def route_latency(args):
    """Time from the caller's INFO digit (the caller enters a queue with a free operator) to
    centralino's INVITE leaving for the operator, from a tshark capture on lo: callers come
    one at a time (2 calls/s), so each INFO is followed by exactly one offer."""
    if not shutil.which("tshark"):
        return {"skipped": "tshark not installed"}
    with tempfile.TemporaryDirectory() as wd:
        svc = Service(wd, "sqlite:///dev/shm/centralino-bench-route.db")
        svc.cli("operators", "add", "route1", "--password", "pw-route1", "--queue", "tributi:1", "--max-calls", "100")
        svc.start()
        # Registered for the whole run (2 calls/s), so every call has its free operator.
        phone = start_operator(svc, wd, "route1", args.route_calls // 2 + 60, talk_ms=300)
        time.sleep(2)  # the operator's REGISTER round trip
        pcap = os.path.join(wd, "route.pcap")
        cap = subprocess.Popen(["tshark", "-i", "lo", "-f", f"udp port {svc.sip}", "-w", pcap, "-q"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(2)  # tshark needs a moment before it captures ("Capturing on" is on stderr)
        calls = args.route_calls
        run_callers(svc, wd, 2, calls, "2", 2000, 0, calls // 2 + 30)
        time.sleep(1)
        cap.terminate()
        cap.wait(timeout=10)
        out = subprocess.run(["tshark", "-r", pcap, "-Y", "sip.Method == \"INFO\" || sip.Method == \"INVITE\"",
                              "-T", "fields", "-e", "frame.time_epoch", "-e", "sip.Method", "-e", "udp.srcport"],
                             capture_output=True, text=True).stdout
        phone.kill()
        svc.stop()
    pending, deltas = None, []
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        t, method, src = float(parts[0]), parts[1], int(parts[2])
        if method == "INFO":
            pending = t
        elif method == "INVITE" and src == svc.sip and pending is not None:
            deltas.append((t - pending) * 1000)
            pending = None
    return {"samples": len(deltas), "p50_ms": pct(deltas, 50), "p99_ms": pct(deltas, 99), "load": loadavg()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", default="50,100,200,400")
    ap.add_argument("--seconds", type=int, default=10, help="seconds of calls per step")
    ap.add_argument("--waiting", default="1000,5000")
    ap.add_argument("--postgres", default="", help="also run throughput against this PostgreSQL URL")
    ap.add_argument("--settle", type=int, default=35, help="seconds between the last caller joining and the waiting measurement")
    ap.add_argument("--route-calls", type=int, default=100, help="calls for the routing-latency run")
    ap.add_argument("--parts", default="throughput,waiting,route", help="which measurements to run")
    ap.add_argument("--quick", action="store_true", help="one small step of each, for a smoke test")
    ap.add_argument("--bin", default="", help="use this centralino binary instead of building the release one")
    ap.add_argument("--markdown", default=os.path.join(ROOT, "ops", "bench", "last-run.md"), help="where the table goes")
    ap.add_argument("--json", default="", help="also write every figure as JSON to this file")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.seconds, args.waiting, args.route_calls, args.settle = "20", 3, "100", 10, 0
    args.steps = [int(x) for x in args.steps.split(",") if x]
    args.waiting = [int(x) for x in args.waiting.split(",") if x]
    if not shutil.which("sipp"):
        raise SystemExit("sipp not found: apt-get install sip-tester")
    global BIN
    if args.bin:
        BIN = os.path.abspath(args.bin)
    else:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)

    out = [f"Machine: {os.cpu_count()} cores, {os.sysconf('SC_PHYS_PAGES') * PAGE / 2**30:.0f} GiB; SIPp and centralino share it.", ""]
    db = "sqlite:///dev/shm/centralino-bench.db"
    parts = args.parts.split(",")
    tp = throughput(args, db, "sqlite") if "throughput" in parts else []
    if args.postgres and "throughput" in parts:
        tp += throughput(args, args.postgres, "postgres")
    out += ["| db | calls/s | calls | ok | success % | CPU ms/call | cores: centralino / SIPp | control loop busy | RSS MB | setup p50 ms | setup p99 ms | load avg |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in tp:
        out.append(f"| {r['db']} | {r['rate']} | {r['calls']} | {r['ok']} | {r['success_pct']:.2f} | {r['cpu_ms_per_call']:.2f} | {r['centralino_cores']:.2f} / {r['sipp_cores']:.2f} | {r.get('control_busy', float('nan')):.2f} | "
                   f"{r['rss_mb']:.0f} | {r['setup_p50_ms']:.0f} | {r['setup_p99_ms']:.0f} | {r['load']} |")
    wt = waiting(args) if "waiting" in parts else []
    out += ["", "| waiting callers | queued | CPU cores | RSS MB | KB/caller (at join) | RTP pkt/s sent | expected | ports after | fds before/after | load avg |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for r in wt:
        out.append(f"| {r['callers']} | {r['queued']:.0f} | {r['cpu_cores']:.2f} | {r['rss_mb']:.0f} | {r['kb_per_caller']:.1f} ({r['kb_per_caller_at_join']:.1f}) | "
                   f"{r['rtp_pps']:.0f} | {r['expected_pps']:.0f} | {r['ports_after']:.0f} | {r['fds_before_after']} | {r['load']} |")
    # The marginal memory per caller between two sizes: free of the baseline, which
    # jemalloc's background purging makes vary by several MB from run to run.
    for a, b in zip(wt, wt[1:]):
        out.append(f"\nMarginal RSS per waiting caller, {a['callers']} → {b['callers']}: "
                   f"{(b['rss_mb'] - a['rss_mb']) * 1e6 / 1024 / max(b['queued'] - a['queued'], 1):.1f} KB")
    rl = route_latency(args) if "route" in parts else {"skipped": True}
    out += ["", f"Routing latency (caller's INFO digit -> INVITE to a free operator, tshark on lo): {json.dumps(rl)}"]
    text = "\n".join(out) + "\n"
    print(text)
    with open(args.markdown, "w") as f:
        f.write(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"throughput": tp, "waiting": wt, "route": rl}, f, indent=1)


if __name__ == "__main__":
    main()
