#!/usr/bin/env python3
"""Side-by-side: segd vs DuckDB vs Redis on the same generated profiles.

One command:

    python3 tools/side_by_side.py --profiles 1000000,10000000

For each size it generates one profile CSV (`segd-gen`, seed 42), loads it into segd
(`segd-lab`, in-process), DuckDB (ENUM columns for low-cardinality strings, threads=2)
and Redis (one set per segment, pipelined SADD), then runs:

  (a) ad-hoc five-condition audience count: segd vs DuckDB;
  (b) membership lookups with 50 connections: redis-benchmark SISMEMBER vs segd's HTTP
      lookup through `segd-load` against `segd serve --demo` (skipped, with a message,
      when this build has no `serve` command);
  (c) count of A and B (A = country DE, B = status subscribed): segd stored segments vs
      Redis SINTERCARD vs DuckDB.

With `--http` (issue 10: what users see), the same profiles are also imported into a
`segd serve` data directory and, in the same run:

  (a') the five-condition count over HTTP (`POST /v1/segments/preview`, one keep-alive
       connection, `segd-load --scenario preview`) vs DuckDB in-process;
  (b') lookups over HTTP (`GET /v1/segments/{id}/members/{profile}` of a stored
       `country = "DE"` segment, `segd-load`, 50 connections) vs Redis SISMEMBER on the
       same members (`redis-benchmark`, 50 connections).

The table then shows both the in-process and the over-HTTP ratios.

Every system's answers are checked against segd's (counts equal; lookup answers equal
for a sample of profiles, members and not); any mismatch stops the run with exit
status 1 and nothing is written. On success a table of medians and segd/peer ratios,
with machine and date, replaces the side-by-side section of BENCHMARKS.md.

Needs: cargo (builds the tools), `pip install duckdb`, `apt-get install -y redis-server`
(Redis >= 7 for SINTERCARD; redis-benchmark comes with it). The runner installs DuckDB
and Redis itself when it can and says how when it cannot.
"""

import argparse
import datetime
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN_MARK = "<!-- SIDE-BY-SIDE:BEGIN -->"
END_MARK = "<!-- SIDE-BY-SIDE:END -->"
REDIS_PORT = 6391
SEGD_PORT = 7791
# Low-cardinality string columns stored as DuckDB ENUMs.
ENUM_COLUMNS = ["gender", "city", "country", "status", "device_type", "utm_source"]
DUCKDB_TYPES = {
    "string": "VARCHAR",
    "integer": "BIGINT",
    "float": "DOUBLE",
    "boolean": "BOOLEAN",
    "timestamp": "TIMESTAMPTZ",
    "list": "VARCHAR",
}
FIVE_CONDITION_SQL = (
    "SELECT count(*) FROM profiles WHERE country = 'DE' AND age BETWEEN 25 AND 40 "
    "AND status = 'subscribed' AND ltv > 300 AND push_enabled"
)
AND_SQL = "SELECT count(*) FROM profiles WHERE country = 'DE' AND status = 'subscribed'"
FIVE_CONDITION_RULE = ('country = "DE" and age between 25 and 40 and status = "subscribed" '
                       'and ltv > 300 and push_enabled')
# Profiles whose lookups are compared between segd over HTTP and Redis.
LOOKUP_SAMPLE = 200


class Failure(Exception):
    """A check failed or a tool is missing: the run stops with this message."""


def log(message):
    print(f"[side-by-side] {message}", file=sys.stderr, flush=True)


def run(command, **kwargs):
    log("$ " + " ".join(command))
    return subprocess.run(command, check=True, **kwargs)


# ----------------------------------------------------------------------------- setup


def target_dir():
    return os.environ.get("CARGO_TARGET_DIR", os.path.join(REPOSITORY, "target"))


def build_tools():
    run(
        ["cargo", "build", "--release", "--bin", "segd-gen", "--bin", "segd-lab",
         "--bin", "segd-load", "--bin", "segd"],
        cwd=REPOSITORY,
    )
    return {name: os.path.join(target_dir(), "release", name)
            for name in ["segd-gen", "segd-lab", "segd-load", "segd"]}


def ensure_duckdb():
    try:
        import duckdb  # noqa: F401
    except ImportError:
        log("DuckDB's Python package is missing: pip install duckdb")
        result = subprocess.run([sys.executable, "-m", "pip", "install", "duckdb"])
        if result.returncode != 0:
            raise Failure("could not install DuckDB; run `pip install duckdb` and retry")
    import duckdb
    return duckdb


def ensure_redis():
    if shutil.which("redis-server") and shutil.which("redis-benchmark"):
        return
    log("Redis is missing: apt-get install -y redis-server")
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "update"], stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "redis-server", "redis-tools"],
                       stdout=subprocess.DEVNULL)
    if not (shutil.which("redis-server") and shutil.which("redis-benchmark")):
        raise Failure(
            "Redis is not installed and could not be installed here; run "
            "`sudo apt-get install -y redis-server` (Debian/Ubuntu) or "
            "`brew install redis` (macOS), then retry")


def machine():
    model, cores = "unknown CPU", os.cpu_count()
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    memory_gib = 0.0
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    memory_gib = int(line.split()[1]) / (1024 * 1024)
    except OSError:
        pass
    return f"{model}, {cores} cores, {memory_gib:.0f} GiB RAM"


# ----------------------------------------------------------------------------- redis


class Redis:
    """A minimal RESP client: enough for SADD pipelines and timed single commands."""

    def __init__(self, port):
        self.socket = socket.create_connection(("127.0.0.1", port))
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    @staticmethod
    def encode(*parts):
        out = [b"*%d\r\n" % len(parts)]
        for part in parts:
            data = part if isinstance(part, bytes) else str(part).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(data), data))
        return b"".join(out)

    def _line(self):
        while b"\r\n" not in self.buffer:
            chunk = self.socket.recv(1 << 16)
            if not chunk:
                raise Failure("Redis closed the connection")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"-":
            raise Failure("Redis error: " + rest.decode())
        if kind in (b"+",):
            return rest.decode()
        if kind == b":":
            return int(rest)
        if kind == b"$":
            length = int(rest)
            if length < 0:
                return None
            while len(self.buffer) < length + 2:
                self.buffer += self.socket.recv(1 << 16)
            data, self.buffer = self.buffer[:length], self.buffer[length + 2:]
            return data
        if kind == b"*":
            return [self.reply() for _ in range(int(rest))]
        raise Failure(f"unexpected Redis reply {line!r}")

    def command(self, *parts):
        self.socket.sendall(self.encode(*parts))
        return self.reply()

    def pipeline(self, commands):
        self.socket.sendall(b"".join(self.encode(*command) for command in commands))
        return [self.reply() for _ in commands]


def start_redis(directory):
    process = subprocess.Popen(
        ["redis-server", "--port", str(REDIS_PORT), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", directory],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            client = Redis(REDIS_PORT)
            client.command("PING")
            return process, client
        except (OSError, Failure):
            time.sleep(0.1)
    process.kill()
    raise Failure(f"redis-server did not start on port {REDIS_PORT}")


def load_redis_set(client, key, members):
    client.command("DEL", key)
    batch = 1000
    commands = [["SADD", key, *members[start:start + batch]]
                for start in range(0, len(members), batch)]
    for start in range(0, len(commands), 100):
        client.pipeline(commands[start:start + 100])


def timed(repetitions, work):
    """Median of `repetitions` wall times of `work()` in microseconds, and its answer."""
    answer = None
    for _ in range(min(3, repetitions)):
        answer = work()
    samples = []
    for _ in range(repetitions):
        started = time.perf_counter()
        answer = work()
        samples.append((time.perf_counter() - started) * 1e6)
    return statistics.median(samples), answer


# ----------------------------------------------------------------------------- duckdb


def load_duckdb(duckdb, csv_path):
    with open(csv_path) as csv_file:
        header = csv_file.readline().strip().split(",")
    connection = duckdb.connect(":memory:")
    connection.execute("SET threads = 2")
    connection.execute("SET preserve_insertion_order = false")
    raw_columns = {}
    for cell in header:
        name, _, type_name = cell.partition(":")
        raw_columns[cell] = "VARCHAR" if name in ENUM_COLUMNS else DUCKDB_TYPES.get(type_name or "string", "VARCHAR")
    column_spec = ", ".join(f"'{cell}': '{kind}'" for cell, kind in raw_columns.items())
    source = f"read_csv('{csv_path}', header = true, columns = {{{column_spec}}})"
    started = time.perf_counter()
    for name in ENUM_COLUMNS:
        cell = next(c for c in header if c.partition(":")[0] == name)
        connection.execute(
            f"CREATE TYPE {name}_enum AS ENUM (SELECT DISTINCT \"{cell}\" FROM {source} "
            f"WHERE \"{cell}\" IS NOT NULL)")
    selects = []
    for cell in header:
        name = cell.partition(":")[0]
        if name in ENUM_COLUMNS:
            selects.append(f"CAST(\"{cell}\" AS {name}_enum) AS {name}")
        else:
            selects.append(f"\"{cell}\" AS {name}")
    connection.execute(f"CREATE TABLE profiles AS SELECT {', '.join(selects)} FROM {source}")
    return connection, time.perf_counter() - started


# ----------------------------------------------------------------------------- segd http


def segd_has_serve(segd):
    if not os.path.exists(segd):
        return False
    try:
        result = subprocess.run([segd, "serve", "--help"], capture_output=True, text=True,
                                timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and "--demo" in result.stdout


def http_json(method, url, body=None):
    import urllib.request
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def http_lookups(tools, args, directory):
    """Starts `segd serve --demo`, runs segd-load lookups; returns (summary, segment, members)."""
    data_dir = os.path.join(directory, "segd-data")
    os.makedirs(data_dir, exist_ok=True)
    listen = f"127.0.0.1:{SEGD_PORT}"
    process = subprocess.Popen([tools["segd"], "serve", "--demo", "--listen", listen,
                                "--data-dir", data_dir],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://{listen}"
        # Ready once the demo data set is loaded (/readyz turns 200).
        for _ in range(1200):
            try:
                http_json("GET", base + "/readyz")
                break
            except OSError:
                if process.poll() is not None:
                    raise Failure("segd serve --demo exited during start-up")
                time.sleep(0.5)
        else:
            raise Failure("segd serve --demo was not ready within 10 minutes")
        segments = http_json("GET", base + "/v1/segments")
        listing = segments.get("segments", []) if isinstance(segments, dict) else segments
        listing = [s for s in listing if s.get("count", 0) > 0]
        if listing:
            segment = max(listing, key=lambda s: s["count"])
        else:
            # No populated demo segment: define one by its JSON AST.
            segment = http_json("POST", base + "/v1/segments", {
                "name": "side_by_side_lookup",
                "rule": {"kind": "compare", "trait": "country", "op": "=", "value": "DE"}})
        log(f"segd lookups against segment {segment['id']} ({segment.get('count')} members)")
        members, cursor = [], None
        while len(members) < 1_000_000:
            url = f"{base}/v1/segments/{segment['id']}/members?limit=10000"
            if cursor:
                url += f"&cursor={cursor}"
            page = http_json("GET", url)
            members.extend(page["members"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
        if cursor:
            raise Failure("the lookup segment has over 1,000,000 members; use a smaller demo")
        # The same answers over HTTP as in the member listing (Redis is loaded from it).
        listed = set(members)
        for index in range(50):
            profile = f"user-{index}"
            answer = http_json("GET", f"{base}/v1/segments/{segment['id']}/members/{profile}")
            check(f"HTTP lookup of {profile}", profile in listed, bool(answer.get("member")))
        output = subprocess.run(
            [tools["segd-load"], "--target", base, "--scenario", "lookup",
             "--segment", str(segment["id"]), "--profiles", str(args.lookup_profiles),
             "--connections", str(args.concurrency), "--requests", str(args.lookups),
             "--duration-s", "60"],
            check=True, capture_output=True, text=True).stdout
        summary = json.loads(output.strip().splitlines()[-1])
        return summary, segment, members
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def redis_benchmark(args, key, member):
    output = subprocess.run(
        ["redis-benchmark", "-p", str(REDIS_PORT), "-c", str(args.concurrency), "-n",
         str(args.lookups), "--csv", "SISMEMBER", key, member],
        check=True, capture_output=True, text=True).stdout
    rows = [line for line in output.splitlines() if line.startswith('"SISMEMBER')]
    if not rows:
        raise Failure("could not read redis-benchmark output:\n" + output)
    fields = [field.strip('"') for field in rows[-1].split(",")]
    return {"rps": float(fields[1]), "p50_ms": float(fields[5]) if len(fields) > 5 else None,
            "p99_ms": float(fields[7]) if len(fields) > 7 else None}


# ----------------------------------------------------------------------------- http mode


def wait_ready(base, process):
    # Ready once the data directory is loaded (/readyz turns 200).
    for _ in range(2400):
        try:
            http_json("GET", base + "/readyz")
            return
        except OSError:
            if process.poll() is not None:
                raise Failure("segd serve exited during start-up")
            time.sleep(0.5)
    raise Failure("segd serve was not ready within 20 minutes")


def segd_load(tools, base, *arguments):
    output = subprocess.run(
        [tools["segd-load"], "--target", base, *map(str, arguments)],
        check=True, capture_output=True, text=True).stdout
    summary = json.loads(output.strip().splitlines()[-1])
    if summary.get("errors", 0) > 0:
        raise Failure(f"segd-load saw {summary['errors']} failed requests: {summary}")
    return summary


def run_http(tools, args, profiles, csv_path, directory, lab, redis, sample_users,
             duck_five_us, members_a):
    """The same profiles through `segd serve`: preview and lookups over HTTP."""
    data_dir = os.path.join(directory, "segd-http")
    started = time.perf_counter()
    run([tools["segd"], "import", "--data-dir", data_dir, csv_path],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import_s = time.perf_counter() - started
    listen = f"127.0.0.1:{SEGD_PORT}"
    base = f"http://{listen}"
    process = subprocess.Popen([tools["segd"], "serve", "--data-dir", data_dir, "--listen", listen],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(base, process)
        load_before = os.getloadavg()
        answer = http_json("POST", base + "/v1/segments/preview", {"rule": FIVE_CONDITION_RULE})
        check("five-condition count over HTTP", lab["five_condition_count"]["answer"], answer["count"])
        preview = segd_load(tools, base, "--scenario", "preview", "--rule", FIVE_CONDITION_RULE,
                            "--connections", 1, "--requests", args.repetitions,
                            "--duration-s", 120)
        segment = http_json("POST", base + "/v1/segments",
                            {"name": "lab_a", "rule": 'country = "DE"'})
        check("|A| over HTTP", lab["segment_a_count"], segment["count"])
        listed = set(members_a)
        for user in sample_users:
            answer = http_json("GET", f"{base}/v1/segments/{segment['id']}/members/{user}")
            check_quiet(f"HTTP lookup of {user}", user in listed, bool(answer["member"]))
            check_quiet(f"Redis lookup of {user}", user in listed,
                        redis.command("SISMEMBER", "lab_a", user) == 1)
        log(f"ok: {len(sample_users)} sampled lookups answer the same over HTTP and in Redis "
            f"({sum(user in listed for user in sample_users)} members)")
        lookups = segd_load(tools, base, "--scenario", "lookup", "--segment", segment["id"],
                            "--profiles", min(args.lookup_profiles, profiles),
                            "--connections", args.concurrency, "--requests", args.lookups,
                            "--duration-s", 120)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    redis_lookups = redis_benchmark(args, "lab_a", members_a[0])
    load_after = os.getloadavg()
    return {
        "import_s": import_s, "profiles": profiles,
        "preview": preview, "duck_five_us": duck_five_us,
        "lookups": lookups, "redis_lookups": redis_lookups,
        "load": [load_before[0], load_after[0]],
    }


def check_quiet(label, expected, got):
    if expected != got:
        raise Failure(f"answers differ for {label}: expected {expected}, got {got}")


# ----------------------------------------------------------------------------- main


def check(label, expected, got):
    if expected != got:
        raise Failure(f"answers differ for {label}: segd {expected}, peer {got}")
    log(f"ok: {label} = {got} on every system")


def run_size(tools, duckdb, redis, args, profiles, directory):
    csv_path = os.path.join(directory, f"profiles-{profiles}.csv")
    run([tools["segd-gen"], "--seed", str(args.seed), "--out", csv_path, "profiles",
         "--count", str(profiles), "--format", "csv"])
    lab = json.loads(subprocess.run(
        [tools["segd-lab"], "--csv", csv_path, "--repetitions", str(args.repetitions)],
        check=True, capture_output=True, text=True).stdout)
    log(f"segd: {json.dumps(lab)[:400]}")
    connection, duck_load_s = load_duckdb(duckdb, csv_path)
    repetitions = args.repetitions
    duck_five_us, duck_five = timed(repetitions, lambda: connection.execute(FIVE_CONDITION_SQL).fetchone()[0])
    check(f"five-condition count at {profiles}", lab["five_condition_count"]["answer"], duck_five)
    duck_and_us, duck_and = timed(repetitions, lambda: connection.execute(AND_SQL).fetchone()[0])
    check(f"A and B count at {profiles} (DuckDB)", lab["and_count"]["answer"], duck_and)

    members_a = [row[0] for row in connection.execute(
        "SELECT user_id FROM profiles WHERE country = 'DE'").fetchall()]
    # Seeded sample of profiles (members of A and not) for the HTTP lookup check.
    sample_users = [row[0] for row in connection.execute(
        f"SELECT user_id FROM profiles ORDER BY hash(user_id) LIMIT {LOOKUP_SAMPLE}").fetchall()]
    members_b = [row[0] for row in connection.execute(
        "SELECT user_id FROM profiles WHERE status = 'subscribed'").fetchall()]
    connection.close()
    started = time.perf_counter()
    load_redis_set(redis, "lab_a", members_a)
    load_redis_set(redis, "lab_b", members_b)
    redis_load_s = time.perf_counter() - started
    check(f"|A| at {profiles} (Redis)", lab["segment_a_count"], redis.command("SCARD", "lab_a"))
    check(f"|B| at {profiles} (Redis)", lab["segment_b_count"], redis.command("SCARD", "lab_b"))
    sample = [redis.command("SISMEMBER", "lab_a", user) == 1 for user, _ in lab["membership_sample"]]
    check(f"membership sample at {profiles} (Redis)", [m for _, m in lab["membership_sample"]], sample)
    redis_repetitions = max(5, min(repetitions, 20_000_000 // max(profiles, 1)))
    redis_and_us, redis_and = timed(redis_repetitions, lambda: redis.command("SINTERCARD", 2, "lab_a", "lab_b"))
    check(f"A and B count at {profiles} (Redis SINTERCARD)", lab["and_count"]["answer"], redis_and)
    http = None
    if args.http:
        http = run_http(tools, args, profiles, csv_path, directory, lab, redis, sample_users,
                        duck_five_us, members_a)
    os.remove(csv_path)
    return {
        "http": http,
        "profiles": profiles,
        "segd": lab,
        "duckdb": {"load_s": duck_load_s, "five_condition_us": duck_five_us, "and_us": duck_and_us},
        "redis": {"load_s": redis_load_s, "sintercard_us": redis_and_us,
                  "sintercard_repetitions": redis_repetitions},
    }


def format_us(micros):
    if micros >= 1000:
        return f"{micros / 1000:.2f} ms"
    return f"{micros:.1f} µs"


def write_benchmarks(results, lookups, args, path):
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [BEGIN_MARK, "",
             f"Measured {now} on {machine()} by `python3 tools/side_by_side.py "
             f"--profiles {args.profiles} --repetitions {args.repetitions}"
             f"{' --http' if args.http else ''}`. "
             "Medians; ratio = how many times faster segd is (above 1 = segd ahead). "
             "All systems returned the same answers (checked by the runner).", "",
             "| workload | profiles | segd | peer | peer median | segd/peer |",
             "|---|---:|---:|---|---:|---:|"]
    for result in results:
        profiles = f"{result['profiles']:,}"
        segd = result["segd"]
        five = segd["five_condition_count"]["timing"]["median_us"]
        both = segd["and_count"]["timing"]["median_us"]
        duck = result["duckdb"]
        redis = result["redis"]
        lines.append(f"| (a) five-condition count (answer {segd['five_condition_count']['answer']:,}) | {profiles} | "
                     f"{format_us(five)} | DuckDB | {format_us(duck['five_condition_us'])} | "
                     f"{duck['five_condition_us'] / five:.1f}× |")
        lines.append(f"| (c) count A ∧ B (answer {segd['and_count']['answer']:,}) | {profiles} | {format_us(both)} | "
                     f"Redis SINTERCARD | {format_us(redis['sintercard_us'])} | "
                     f"{redis['sintercard_us'] / both:.1f}× |")
        lines.append(f"| (c) count A ∧ B | {profiles} | {format_us(both)} | DuckDB | "
                     f"{format_us(duck['and_us'])} | {duck['and_us'] / both:.1f}× |")
    for result in results:
        http = result.get("http")
        if not http:
            continue
        profiles = f"{result['profiles']:,}"
        preview_us = http["preview"]["p50_us"]
        lines.append(f"| (a') five-condition count **over HTTP** (`POST /v1/segments/preview`, "
                     f"1 connection, p50) | {profiles} | {format_us(preview_us)} | DuckDB in-process | "
                     f"{format_us(http['duck_five_us'])} | {http['duck_five_us'] / preview_us:.1f}× |")
        segd_rps = http["lookups"]["requests_per_second"]
        redis_rps = http["redis_lookups"]["rps"]
        redis_p99 = http["redis_lookups"].get("p99_ms")
        redis_p99 = f", p99 {redis_p99:.2f} ms" if redis_p99 is not None else ""
        lines.append(f"| (b') lookups **over HTTP**, {args.concurrency} connections, same members "
                     f"(`country = \"DE\"`) | {profiles} | {segd_rps:,.0f} req/s "
                     f"(p50 {http['lookups']['p50_us'] / 1000:.2f} ms, p99 {http['lookups']['p99_us'] / 1000:.2f} ms) | "
                     f"Redis SISMEMBER | {redis_rps:,.0f} req/s{redis_p99} | {segd_rps / redis_rps:.2f}× |")
    if args.http:
        pass
    elif lookups.get("skipped"):
        lines.append(f"| (b) membership lookups, {args.concurrency} connections | – | skipped | "
                     f"Redis SISMEMBER | {lookups['redis']['rps']:,.0f} req/s | – |")
    else:
        segd_rps = lookups["segd"]["requests_per_second"]
        redis_rps = lookups["redis"]["rps"]
        lines.append(f"| (b) membership lookups over the network, {args.concurrency} connections | demo | "
                     f"{segd_rps:,.0f} req/s (HTTP, p99 {lookups['segd']['p99_us'] / 1000:.2f} ms) | "
                     f"Redis SISMEMBER | {redis_rps:,.0f} req/s | {segd_rps / redis_rps:.2f}× |")
    for result in results:
        http = result.get("http")
        if http:
            lines.append("")
            lines.append(f"Over HTTP ({result['profiles']:,} profiles): `segd import` {http['import_s']:.1f} s, "
                         f"then `segd serve`; load average {http['load'][0]:.1f} before and "
                         f"{http['load'][1]:.1f} after the HTTP measurements (2 cores: above 2 means "
                         "other processes competed for the CPU). Clients run on the same cores as "
                         "the servers.")
    lines.append("")
    lines.append("Loading: " + "; ".join(
        f"{r['profiles']:,} profiles — segd import {r['segd']['import']['profiles_per_second']:,.0f} profiles/s, "
        f"DuckDB {r['duckdb']['load_s']:.1f} s, Redis two sets {r['redis']['load_s']:.1f} s" for r in results) + ".")
    if lookups.get("skipped"):
        lines.append("")
        lines.append(f"(b) segd side skipped: {lookups['skipped']}")
    lines.append("")
    lines.append(END_MARK)
    block = "\n".join(lines)
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n\n"
    if BEGIN_MARK in text and END_MARK in text:
        before = text.split(BEGIN_MARK)[0]
        after = text.split(END_MARK, 1)[1]
        text = before + block + after
    else:
        text = text.rstrip() + "\n\n## Side by side: segd, DuckDB, Redis\n\n" + block + "\n"
    with open(path, "w") as out:
        out.write(text)
    log(f"wrote {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profiles", default="1000000",
                        help="comma-separated sizes (default 1000000)")
    parser.add_argument("--repetitions", type=int, default=200)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--lookups", type=int, default=200_000,
                        help="requests per lookup benchmark")
    parser.add_argument("--lookup-profiles", type=int, default=100_000)
    parser.add_argument("--segd-binary", help="use this `segd` executable for the HTTP "
                        "lookups instead of the one built from this checkout")
    parser.add_argument("--benchmarks", default=os.path.join(REPOSITORY, "BENCHMARKS.md"))
    parser.add_argument("--no-write", action="store_true", help="print results only")
    parser.add_argument("--http", action="store_true",
                        help="also measure segd over HTTP (preview and lookups) on the same "
                             "profiles, against DuckDB in-process and Redis over the network")
    args = parser.parse_args()
    sizes = [int(size) for size in args.profiles.split(",") if size.strip()]
    try:
        duckdb = ensure_duckdb()
        ensure_redis()
        tools = build_tools()
        if args.segd_binary:
            tools["segd"] = os.path.abspath(args.segd_binary)
        directory = tempfile.mkdtemp(prefix="segd-side-by-side-")
        redis_process, redis = start_redis(directory)
        try:
            results = [run_size(tools, duckdb, redis, args, size, directory) for size in sizes]
            # With --http, lookups are measured per size on the same profiles (run_http).
            lookups = {} if args.http else {"redis": redis_benchmark(args, "lab_a", "user-1")}
            if args.http:
                pass
            elif segd_has_serve(tools["segd"]):
                summary, segment, members = http_lookups(tools, args, directory)
                load_redis_set(redis, "demo_segment", members)
                for index in range(50):
                    profile = f"user-{index}"
                    check(f"Redis lookup of {profile}", profile in set(members),
                          redis.command("SISMEMBER", "demo_segment", profile) == 1)
                lookups["segd"] = summary
                lookups["redis"] = redis_benchmark(args, "demo_segment", members[0])
                if summary.get("errors", 0) > 0:
                    raise Failure(f"segd-load saw {summary['errors']} failed lookups")
            else:
                lookups["skipped"] = ("this build of `segd` has no `serve` command yet; "
                                      "rerun once it exists")
                log("(b) segd HTTP lookups skipped: " + lookups["skipped"])
        finally:
            redis_process.terminate()
            redis_process.wait(timeout=10)
            shutil.rmtree(directory, ignore_errors=True)
    except Failure as failure:
        log(f"FAILED: {failure}")
        return 1
    except subprocess.CalledProcessError as error:
        log(f"FAILED: {' '.join(map(str, error.cmd))} exited with {error.returncode}\n"
            f"{error.stderr or ''}")
        return 1
    report = {"results": results, "lookups": lookups, "machine": machine()}
    print(json.dumps(report, indent=2))
    if not args.no_write:
        write_benchmarks(results, lookups, args, args.benchmarks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
