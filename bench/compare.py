#!/usr/bin/python3
"""Compare the reference chat servers with `ncat --chat` under chat_loadgen.

Builds the project (or uses --build-dir as it is with --no-build), then for
each scenario starts a fresh server on 127.0.0.1, runs chat_loadgen against
it, stops it, and prints one table plus a check of the targets in
bench/README.md.  Every server it starts is killed (its whole process group)
on the way out, also on failure or Ctrl-C.

Exit status: 0 every target met, 1 a target missed or could not be measured,
2 usage, 3 the benchmark itself failed (build, a server that never got ready).
"""
import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HOST = "127.0.0.1"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 3.0


class BenchError(Exception):
    """The benchmark could not do its job (not a server's bad score)."""


# --- servers ---------------------------------------------------------------

class Server:
    """One server kind: how to start it, how to know it listens, how to read it.

    port_from_stdout: the server prints `listening on port N` once bound, so it
    is started on port 0 and no port is guessed.  Otherwise a free port is
    picked (bind 0, close, pass it on: a small race, retried) and readiness is
    a connect poll.
    """

    def __init__(self, name, argv, port_from_stdout, loadgen_args=(),
                 greets=False):
        self.name = name
        self.argv = argv                # callable port -> argv list
        self.port_from_stdout = port_from_stdout
        self.loadgen_args = list(loadgen_args)
        self.greets = greets            # sends a line to each new client


def reference_server(name, build_dir):
    path = os.path.join(build_dir, "impl", name)
    return Server(name, lambda port: [path, str(port)], port_from_stdout=True)


def ncat_server():
    # -m: ncat refuses connections beyond 100 by default.
    return Server(
        "ncat", lambda port: ["ncat", "-l", "--chat", "-m", "2000", HOST,
                              str(port)],
        port_from_stdout=False, loadgen_args=["--ncat"], greets=True)


def free_port():
    """Returns a port that was free a moment ago (the race is retried)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Running:
    """A started server: its process group, its log file, its port."""

    def __init__(self, server, workdir):
        self.server = server
        self.log = tempfile.NamedTemporaryFile(
            prefix=server.name + "-", suffix=".log", dir=workdir, delete=False)
        self.port = 0 if server.port_from_stdout else free_port()
        # A file, not a pipe: a chatty server must never block on a full pipe
        # that nobody reads.  Its own session, so the whole group is killed.
        self.proc = subprocess.Popen(
            server.argv(self.port), stdin=subprocess.DEVNULL,
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def log_text(self):
        with open(self.log.name, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_ready(self):
        """Returns once the server accepts clients; raises BenchError if not."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError("%s exited with %s before it was ready:\n%s"
                                 % (self.server.name, self.proc.returncode,
                                    self.log_text()[-2000:]))
            if self.server.port_from_stdout:
                for line in self.log_text().splitlines():
                    if line.startswith("listening on port "):
                        self.port = int(line.split()[3])
                        return
            elif self.probe():
                return
            time.sleep(0.01)    # poll interval, not a settling delay
        raise BenchError("%s not ready after %.0f s" % (self.server.name,
                                                         READY_TIMEOUT_S))

    def probe(self):
        """True if a client can connect.  ncat quits when a client is gone
        before it calls getpeername(), so wait for its greeting first."""
        try:
            with socket.create_connection((HOST, self.port), timeout=2) as s:
                if self.server.greets:
                    s.recv(4096)
            return True
        except OSError:
            return False

    def stop(self):
        """Kills the process group: TERM, then KILL.  Returns the status."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass
        self.log.close()
        return self.proc.returncode


# --- scenarios -------------------------------------------------------------

class Scenario:
    def __init__(self, name, clients, messages, rate=0.0):
        self.name = name
        self.clients = clients
        self.messages = messages
        self.rate = rate


def scenarios(args):
    out = []
    for n in args.sizes:
        # Same total work at every size: N*(N-1)*M deliveries ~ --deliveries.
        m = max(args.min_messages, round(args.deliveries / (n * (n - 1))))
        out.append(Scenario("flood", n, m))
    m = max(1, round(args.paced_seconds * args.paced_rate))
    out.append(Scenario("paced", args.paced_clients, m, args.paced_rate))
    return out


def run_one(loadgen, server, sc, args, workdir):
    """Starts `server`, runs one scenario, stops it.  Returns the JSON dict."""
    running = None
    for _attempt in range(3):
        running = Running(server, workdir)
        try:
            running.wait_ready()
            break
        except BenchError:
            running.stop()
            # A picked port may have been taken meanwhile: try another.
            if server.port_from_stdout or _attempt == 2:
                raise
    try:
        cmd = [loadgen, "-p", str(running.port), "-n", str(sc.clients),
               "-m", str(sc.messages), "-s", str(args.size),
               "-r", str(sc.rate), "-d", str(args.deadline),
               "-b", str(args.backlog), "-j", str(args.threads),
               "--server-pid", str(running.proc.pid), "-q"]
        cmd += server.loadgen_args
        try:
            res = subprocess.run(cmd, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True,
                                 timeout=args.deadline + 30)
        except subprocess.TimeoutExpired:
            raise BenchError("chat_loadgen overran its own deadline")
        if res.returncode == 2 or not res.stdout.strip():
            raise BenchError("chat_loadgen failed: %s" % res.stderr.strip())
        result = json.loads(res.stdout.strip().splitlines()[-1])
        result["server_alive"] = running.proc.poll() is None
    finally:
        status = running.stop()
    result["server"] = server.name
    result["scenario"] = sc.name
    result["server_exit"] = status
    return result


# --- report ----------------------------------------------------------------

def fmt_rate(v):
    return "%.0f" % v if v else "-"


def fmt_us(v):
    return "%.0f" % v if v >= 100 else "%.1f" % v


def cpu_share(r, key):
    """CPU seconds of `key` per second of the measurement, as a percentage
    of one CPU (200 % = both CPUs of a 2-CPU machine)."""
    if not r.get(key) or not r.get("cpu_wall_s"):
        return "-"
    return "%.0f" % (100.0 * r[key] / r["cpu_wall_s"])


def per_server_cpu(r):
    """Deliveries per CPU second the server used: its efficiency, whoever
    got how much of the shared CPUs."""
    if not r.get("ok") or not r.get("server_cpu_s"):
        return None
    return r["received"] / r["server_cpu_s"]


def ratio(value, base):
    return "%.2f" % (value / base) if value and base else "-"


def table(results):
    """The human table: one row per server and scenario."""
    ncat = {(r["scenario"], r["clients"]): r for r in results
            if r["server"] == "ncat" and r["ok"]}
    head = ("server", "scenario", "clients", "msgs", "deliv/s", "x ncat",
            "srv cpu%", "gen cpu%", "deliv/srv-cpu-s", "x ncat",
            "p50 us", "p99 us", "rd p99", "broken", "lost", "ooo", "note")
    rows = []
    for r in results:
        base = ncat.get((r["scenario"], r["clients"]), {})
        eff = per_server_cpu(r)
        notes = []
        if not r["ok"]:
            notes.append(r.get("error", "failed"))
        if r.get("deadline_hit"):
            notes.append("deadline hit")
        if not r.get("server_alive", True):
            notes.append("server died")
        if r.get("broken_setup"):
            notes.append("%d broken in setup" % r["broken_setup"])
        if r["scenario"] == "paced":
            notes.append("send lag max %s us" % fmt_us(r["max_send_lag_us"]))
        label = r["scenario"] if r["scenario"] != "paced" else \
            "paced %g/s" % r["rate"]
        rows.append((r["server"], label, str(r["clients"]),
                     str(r["messages"]), fmt_rate(r["deliveries_per_s"]),
                     ratio(r["ok"] and r["deliveries_per_s"],
                           base.get("deliveries_per_s")),
                     cpu_share(r, "server_cpu_s"), cpu_share(r, "gen_cpu_s"),
                     fmt_rate(eff), ratio(eff, base and per_server_cpu(base)),
                     fmt_us(r["lat_p50_us"]), fmt_us(r["lat_p99_us"]),
                     fmt_us(r.get("lat_read_p99_us", 0)),
                     str(r["broken"]), str(r["lost"]), str(r["out_of_order"]),
                     "; ".join(notes)))
    widths = [max(len(x[i]) for x in rows + [head]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(head, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return "\n".join(lines)


def find(results, server, scenario, clients):
    for r in results:
        if (r["server"], r["scenario"], r["clients"]) == (server, scenario,
                                                          clients):
            return r
    return None


def check_targets(results, args):
    """The targets of bench/README.md.  Returns [(ok or None, text)]."""
    checks = []

    def ratio_target(server, clients, want):
        r = find(results, server, "flood", clients)
        base = find(results, "ncat", "flood", clients)
        what = "%s >= %gx ncat deliveries/s at %d clients (flood)" % (
            server, want, clients)
        if not (r and base and r["ok"] and base["ok"]
                and base["deliveries_per_s"]):
            checks.append((None, what + ": not measured"))
            return
        got = r["deliveries_per_s"] / base["deliveries_per_s"]
        checks.append((got >= want, "%s: %.2fx" % (what, got)))

    for n in (100, 500):
        ratio_target("select_chat_server", n, 2.0)
    ratio_target("tcp_chat_server", 100, 1.0)
    for server in ("select_chat_server", "tcp_chat_server"):
        r = find(results, server, "paced", args.paced_clients)
        what = "%s paced %d x %g/s p99 <= 1000 us" % (
            server, args.paced_clients, args.paced_rate)
        if not (r and r["ok"]):
            checks.append((None, what + ": not measured"))
        else:
            checks.append((r["lat_p99_us"] <= 1000.0 and r["lost"] == 0,
                           "%s: %s us%s" % (what, fmt_us(r["lat_p99_us"]),
                                            ", %d lost" % r["lost"]
                                            if r["lost"] else "")))
        rows = [x for x in results if x["server"] == server]
        bad = sum(x["broken"] + x["broken_setup"] for x in rows)
        what = "%s zero broken lines at every size" % server
        if not rows or not all(x["ok"] for x in rows):
            checks.append((None, what + ": not every run measured"))
        else:
            checks.append((bad == 0, "%s: %d broken" % (what, bad)))
    return checks


# --- main ------------------------------------------------------------------

def build(build_dir):
    """Configures (Release, unless already configured) and builds."""
    cmd = ["cmake", "-S", REPO, "-B", build_dir]
    if not os.path.exists(os.path.join(build_dir, "CMakeCache.txt")):
        cmd.append("-DCMAKE_BUILD_TYPE=Release")
    for step in (cmd, ["cmake", "--build", build_dir, "-j2"]):
        res = subprocess.run(step, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        if res.returncode != 0:
            raise BenchError("%s failed:\n%s" % (" ".join(step),
                                                 res.stdout[-4000:]))


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build-dir", default=os.path.join(REPO, "build-bench"),
                   help="CMake build directory (default: build-bench)")
    p.add_argument("--no-build", action="store_true",
                   help="use --build-dir as it is")
    p.add_argument("--servers", default="select_chat_server,tcp_chat_server,ncat",
                   help="comma-separated; ncat is the baseline")
    p.add_argument("--sizes", default="10,100,500",
                   type=lambda s: [int(x) for x in s.split(",")],
                   help="client counts for the flood runs")
    p.add_argument("--deliveries", type=float, default=3e6,
                   help="flood: aim at this many deliveries per run")
    p.add_argument("--min-messages", type=int, default=5)
    p.add_argument("--size", type=int, default=64, help="bytes per line")
    p.add_argument("--threads", type=int, default=2,
                   help="chat_loadgen reader threads (-j); see bench/README.md")
    p.add_argument("--backlog", type=int, default=256 * 1024,
                   help="flood window in bytes per receiver (chat_loadgen -b); "
                        "0 = open loop")
    p.add_argument("--paced-clients", type=int, default=100)
    p.add_argument("--paced-rate", type=float, default=10.0)
    p.add_argument("--paced-seconds", type=float, default=3.0)
    p.add_argument("--repeat", type=int, default=1,
                   help="runs per cell; the median by deliveries/s (flood) "
                        "or p99 (paced) is kept")
    p.add_argument("--deadline", type=float, default=30.0,
                   help="chat_loadgen deadline per run, seconds")
    p.add_argument("--json", help="also write every result to this file")
    return p.parse_args(argv)


def median_run(runs, scenario):
    key = (lambda r: r["lat_p99_us"]) if scenario == "paced" else \
        (lambda r: r["deliveries_per_s"])
    ok = [r for r in runs if r["ok"]] or runs
    return sorted(ok, key=key)[(len(ok) - 1) // 2]


def main(argv):
    args = parse_args(argv)
    # Turn SIGTERM into an exception so the `finally` that kills servers runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))
    try:
        if not args.no_build:
            build(args.build_dir)
        loadgen = os.path.join(args.build_dir, "bench", "chat_loadgen")
        if not os.access(loadgen, os.X_OK):
            raise BenchError("no chat_loadgen in %s/bench" % args.build_dir)
        servers = []
        for name in args.servers.split(","):
            if name == "ncat":
                servers.append(ncat_server())
            else:
                s = reference_server(name, args.build_dir)
                if not os.access(s.argv(0)[0], os.X_OK):
                    print("skipping %s: not built" % name, file=sys.stderr)
                    continue
                servers.append(s)
        try:
            load = os.getloadavg()[0]
        except OSError:
            load = -1
        print("chat_loadgen (%d threads) vs ncat on %s, %d CPUs, load "
              "average %.2f" % (args.threads, HOST, os.cpu_count(), load),
              file=sys.stderr)
        results = []
        with tempfile.TemporaryDirectory(prefix="chatbench-") as workdir:
            for sc in scenarios(args):
                for server in servers:
                    runs = [run_one(loadgen, server, sc, args, workdir)
                            for _ in range(args.repeat)]
                    r = median_run(runs, sc.name)
                    print("  %-20s %-6s %4d clients: %s" % (
                        server.name, sc.name, sc.clients,
                        "%.0f deliveries/s, p99 %s us" % (
                            r["deliveries_per_s"], fmt_us(r["lat_p99_us"]))
                        if r["ok"] else r.get("error")), file=sys.stderr)
                    results.append(r)
    except BenchError as e:
        print("compare.py: %s" % e, file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 3
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    print(table(results))
    print()
    checks = check_targets(results, args)
    for ok, text in checks:
        print("%-4s %s" % ({True: "MET", False: "MISS", None: "N/A"}[ok], text))
    return 0 if all(ok for ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
