#!/usr/bin/env python3
"""Renders the panels of tools/grafana-dashboard.json from a live segd's /metrics.

Grafana is not a Debian package and could not be installed where this was written, so
this script plays both Prometheus and Grafana: it scrapes `GET /metrics` every
`--interval-s`, computes each panel the way the dashboard's PromQL does (rates from
counter deltas, quantiles from histogram bucket deltas), and draws them with matplotlib.
With `--drive` it also sends a modest load (identify, lookups, an SSE reader, snapshots)
so every panel has data.

    python3 -m venv /tmp/plot && /tmp/plot/bin/pip install matplotlib
    /tmp/plot/bin/python tools/plot_metrics.py --target http://127.0.0.1:7700 \
        --seconds 60 --drive --out docs/metrics-dashboard.png

Loopback targets only.
"""

import argparse
import json
import random
import re
import threading
import time
import urllib.parse
import urllib.request

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")
LABEL = re.compile(r'(\w+)="([^"]*)"')


def scrape(target):
    with urllib.request.urlopen(target + "/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match:
            labels = tuple(sorted(LABEL.findall(match.group(2) or "")))
            samples[(match.group(1), labels)] = float(match.group(3))
    return samples


def series(samples, name, **want):
    """{labels-without-le: value} of samples named `name` matching `want`."""
    out = {}
    for (metric, labels), value in samples.items():
        if metric == name and all(dict(labels).get(k) == v for k, v in want.items()):
            out[labels] = value
    return out


def quantile(q, before, after, name, group):
    """histogram_quantile over bucket increases, grouped by the `group` labels."""
    buckets = {}
    for (metric, labels), value in after.items():
        if metric != name + "_bucket":
            continue
        label_map = dict(labels)
        key = tuple(label_map.get(g, "") for g in group)
        bound = float("inf") if label_map["le"] == "+Inf" else float(label_map["le"])
        delta = value - before.get((metric, labels), 0.0)
        buckets.setdefault(key, {})
        buckets[key][bound] = buckets[key].get(bound, 0.0) + delta
    result = {}
    for key, counts in buckets.items():
        bounds = sorted(counts)
        total = counts[bounds[-1]]
        if total <= 0:
            continue
        rank, previous_bound, previous_count = q * total, 0.0, 0.0
        for bound in bounds:
            if counts[bound] >= rank:
                if bound == float("inf"):
                    result[key] = previous_bound
                else:
                    width = counts[bound] - previous_count
                    fraction = (rank - previous_count) / width if width > 0 else 1.0
                    result[key] = previous_bound + (bound - previous_bound) * fraction
                break
            previous_bound, previous_count = bound, counts[bound]
    return result


def drive(target, write_key, admin_key, stop):
    """Identify calls that move profiles in and out of a segment, lookups, snapshots."""
    def call(method, path, body=None, auth=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(target + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if auth:
            request.add_header("Authorization", auth)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
        except urllib.error.HTTPError as error:
            error.read()

    admin = f"Bearer {admin_key}" if admin_key else None
    call("POST", "/v1/segments", {"name": "plot_ltv_over_500", "rule": "ltv > 500"}, admin)
    rng = random.Random(7)
    last_snapshot = time.monotonic()
    while not stop.is_set():
        user = f"plot-user-{rng.randrange(2000)}"
        write = f"Bearer {write_key}" if write_key else None
        call("POST", "/v1/identify", {"userId": user, "traits": {"ltv": rng.randrange(1000)}}, write)
        call("GET", f"/v1/profiles/{urllib.parse.quote(user)}/segments", auth=admin)
        call("GET", f"/v1/segments/plot_ltv_over_500/members/{user}", auth=admin)
        if time.monotonic() - last_snapshot > 15:
            call("POST", "/v1/admin/snapshot", auth=admin)
            last_snapshot = time.monotonic()
        time.sleep(0.002)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", default="http://127.0.0.1:7700")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--interval-s", type=float, default=2)
    parser.add_argument("--drive", action="store_true")
    parser.add_argument("--write-key")
    parser.add_argument("--admin-key")
    parser.add_argument("--out", default="docs/metrics-dashboard.png")
    args = parser.parse_args()
    host = urllib.parse.urlparse(args.target).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("loopback targets only")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stop = threading.Event()
    if args.drive:
        threading.Thread(target=drive, args=(args.target, args.write_key, args.admin_key, stop), daemon=True).start()
    scrapes = [(time.time(), scrape(args.target))]
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        time.sleep(args.interval_s)
        scrapes.append((time.time(), scrape(args.target)))
    stop.set()

    panels = {}  # title -> {legend: [(t, value)]}

    def add(title, legend, t, value):
        panels.setdefault(title, {}).setdefault(legend, []).append((t, value))

    start = scrapes[0][0]
    for (t0, before), (t1, after) in zip(scrapes, scrapes[1:]):
        t, dt = t1 - start, t1 - t0

        def rate(name, group, **want):
            sums = {}
            for labels, value in series(after, name, **want).items():
                key = " ".join(dict(labels).get(g, "") for g in group)
                previous = before.get((name, labels), 0.0)
                sums[key] = sums.get(key, 0.0) + (value - previous) / dt
            return sums

        for route, value in rate("segd_http_requests_total", ["route"]).items():
            add("Requests/s by route", route, t, value)
        for (route, method), value in quantile(0.99, before, after, "segd_http_request_duration_seconds", ["route", "method"]).items():
            add("p99 latency by route (ms)", f"{method} {route}", t, value * 1e3)
        for labels, value in series(after, "process_resident_memory_bytes").items():
            add("Resident memory (MiB)", "RSS", t, value / 2**20)
        for labels, value in series(after, "process_open_fds").items():
            add("Open file descriptors", "open", t, value)
        for key, value in rate("segd_wal_bytes_written_total", []).items():
            add("WAL bytes written/s (KiB)", "WAL", t, value / 1024)
        for q in (0.5, 0.99):
            for key, value in quantile(q, before, after, "segd_wal_fsync_duration_seconds", []).items():
                add("WAL fsync latency (ms)", f"p{int(q * 100)}", t, value * 1e3)
        for labels, value in series(after, "segd_snapshot_last_success_timestamp_seconds").items():
            add("Seconds since the last snapshot", "age", t, t1 - value)
        for labels, value in series(after, "segd_snapshot_last_duration_seconds").items():
            add("Last snapshot duration / pause (ms)", "duration", t, value * 1e3)
        for labels, value in series(after, "segd_snapshot_last_pause_seconds").items():
            add("Last snapshot duration / pause (ms)", "write pause", t, value * 1e3)
        for key, value in rate("segd_segment_transitions_total", ["segment_id", "kind"]).items():
            if value > 0 or key in panels.get("Segment entries/exits per second", {}):
                add("Segment entries/exits per second", f"segment {key}", t, value)
        for key, value in rate("segd_ingest_messages_applied_total", []).items():
            add("Ingest messages/s", "applied", t, value)
        for labels, value in series(after, "segd_sse_stream_lag_max").items():
            add("Change-feed consumer lag (changes)", "SSE (max)", t, value)

    titles = list(panels)
    columns = 3
    rows = (len(titles) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(16, 3.4 * rows), squeeze=False)
    for axis in axes.flat[len(titles):]:
        axis.axis("off")
    for axis, title in zip(axes.flat, titles):
        lines = sorted(panels[title].items(), key=lambda item: -max(v for _, v in item[1]))[:6]
        for legend, points in lines:
            axis.plot([p[0] for p in points], [p[1] for p in points], label=legend[:40])
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("s", fontsize=8)
        axis.tick_params(labelsize=8)
        axis.legend(fontsize=7, loc="upper left")
        axis.grid(alpha=0.3)
    figure.suptitle(f"segd /metrics, scraped every {args.interval_s:g} s for {args.seconds:g} s (panels of tools/grafana-dashboard.json)")
    figure.tight_layout()
    figure.savefig(args.out, dpi=80)
    print(f"wrote {args.out}: {len(titles)} panels from {len(scrapes)} scrapes")


if __name__ == "__main__":
    main()
