"""`make bench` / `make bench-quick`: every benchmark, each beside its baseline in the same run.

    .venv/bin/python -m bench.run [--quick] [--profile] [--only ingest,delivery,...]

Prints one Markdown table per benchmark and writes bench/results/latest.json, a dated copy
and latest.md. The figures report; nothing here fails because a machine is slow. What is
asserted is correctness (every card delivered exactly once).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from typing import Any

from bench import claim, common, delivery, ingest, latency

FULL: dict[str, Any] = {
    "database": "postgresql",
    "ingest_seconds": 10,
    "delivery_channels": 500,
    "delivery_events": 40,
    "raw_requests": 20000,
    "default_limit_events": 8,
    "apprise_messages": 500,
    "latency_seconds": 30,
    "polling_seconds": 10,
    "scaling_seconds": 5,
    "claim_finished": 1_000_000,
    "scaling_channels": 500,
    "scaling_events": 10,
}
QUICK: dict[str, Any] = {
    "database": "postgresql",
    "ingest_seconds": 2,
    "delivery_channels": 100,
    "delivery_events": 20,
    "raw_requests": 2000,
    "default_limit_events": 5,
    "apprise_messages": 100,
    "latency_seconds": 2,
    "polling_seconds": 2,
    "scaling_seconds": 2,
    "claim_finished": 20_000,
    "scaling_channels": 100,
    "scaling_events": 5,
}
PARTS = ("ingest", "delivery", "latency", "scaling")


def f(value: float, unit: str = "") -> str:
    text = f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"
    return text + unit


def run_latency(sizes: dict[str, Any]) -> dict[str, Any]:
    rate, channels = 50.0, 20
    found: dict[str, Any] = {}
    for kind in ("sqlite", "postgresql"):
        found[kind] = latency.measure(
            kind, int(rate * sizes["latency_seconds"]), rate, channels, False
        )
        common.say(
            f"latency on {kind}: p50 {found[kind]['p50_ms']} ms, p99 {found[kind]['p99_ms']} ms"
        )
    polling = latency.measure("sqlite", int(rate * sizes["polling_seconds"]), rate, channels, True)
    common.say(f"polling every 5 s, nothing wakes the worker: p50 {polling['p50_ms']} ms")
    found["polling_baseline_p50_ms"] = polling["p50_ms"]
    found["polling_baseline_p99_ms"] = polling["p99_ms"]
    found["polling_baseline"] = polling
    return found


def run_scaling(sizes: dict[str, Any]) -> dict[str, Any]:
    seconds = sizes["scaling_seconds"]
    p50 = {}
    for subscriptions in (10, 10_000):
        with common.fresh_database(sizes["database"]) as database:
            p50[subscriptions] = ingest.p50_at_one_connection(database, subscriptions, seconds)
        common.say(
            f"ingest p50 at one connection, {subscriptions:,} subscriptions: "
            f"{p50[subscriptions]} ms"
        )
    finished = sizes["claim_finished"]
    empty = claim.claim_median_ms(0)
    full = claim.claim_median_ms(finished)
    common.say(f"claim: {empty} ms on an empty log, {full} ms beside {finished:,} finished")
    workers = delivery.two_workers(sizes)
    return {
        "ingest_p50_ms_10_subscriptions": p50[10],
        "ingest_p50_ms_10000_subscriptions": p50[10_000],
        "subscriptions_ratio": common.ratio(p50[10_000], p50[10]),
        "claim_ms_empty_log": empty,
        "claim_ms_beside_finished": full,
        "claim_finished_rows": finished,
        "claim_ratio": common.ratio(full, empty),
        **{k: v for k, v in workers.items() if k != "two_workers_ratio"},
        "two_workers_deliveries": workers["deliveries"],
        "two_workers_ratio": workers["two_workers_ratio"],
    }


def _ingest_table(i: dict[str, Any]) -> str:
    return common.table(
        f"Ingest ({i['subscriptions']:,} subscriptions, 5 match; {i['connections']} "
        f"connections, {i['seconds']:g} s; {i['database']})",
        [
            (
                "events/s",
                f(i["events_per_s"]),
                f"{f(i['bare_per_s'])} (bare FastAPI)",
                f"{i['ratio']:.4f}",
            ),
            (
                "p50",
                f(i["p50_ms"], " ms"),
                f(i["bare_p50_ms"], " ms"),
                f"{common.ratio(i['p50_ms'], i['bare_p50_ms']):.1f}",
            ),
            (
                "p99",
                f(i["p99_ms"], " ms"),
                f(i["bare_p99_ms"], " ms"),
                f"{common.ratio(i['p99_ms'], i['bare_p99_ms']):.1f}",
            ),
            ("non-2xx", str(i["non_2xx"]), "", ""),
            (
                f"p99 at half rate ({f(i['half_rate_per_s'])}/s, open loop)",
                f(i["p99_ms_at_half_rate"], " ms"),
                "",
                "",
            ),
        ],
    )


def tables(r: dict[str, Any]) -> str:
    out = []
    for name in ("ingest", "ingest_sqlite"):
        if name in r:
            out.append(_ingest_table(r[name]))
    if "delivery" in r:
        d = r["delivery"]
        out.append(
            common.table(
                f"Delivery ({d['deliveries']:,} = {d['events']} events × {d['channels']} "
                "channels, one worker)",
                [
                    (
                        "cards/s, per-channel limit lifted",
                        f(d["cards_per_s"]),
                        f"{f(d['raw_per_s'])} (raw aiohttp, 64)",
                        f"{d['ratio_raw']:.4f}",
                    ),
                    (
                        "",
                        "",
                        f"{f(d['apprise_per_s'])} (Apprise, one at a time)",
                        f"{d['ratio_apprise']:.2f}",
                    ),
                    (
                        "cards/s, default 4/s per channel",
                        f(d["cards_per_s_default_limit"]),
                        f"{d['default_limit_allowed_per_s']:,} (allowed)",
                        f"{d['ratio_default_limit_to_allowed']:.4f}",
                    ),
                ],
            )
        )
    if "latency" in r:
        lat = r["latency"]
        base = lat["polling_baseline_p50_ms"]
        out.append(
            common.table(
                "End-to-end latency (50 events/s over 20 channels, "
                f"{lat['sqlite']['events']} events)",
                [
                    (
                        "SQLite p50",
                        f(lat["sqlite"]["p50_ms"], " ms"),
                        f"{f(base, ' ms')} (polling every 5 s)",
                        f"{common.ratio(lat['sqlite']['p50_ms'], base):.3f}",
                    ),
                    ("SQLite p99", f(lat["sqlite"]["p99_ms"], " ms"), "", ""),
                    (
                        "PostgreSQL p50",
                        f(lat["postgresql"]["p50_ms"], " ms"),
                        f"{f(base, ' ms')} (polling every 5 s)",
                        f"{common.ratio(lat['postgresql']['p50_ms'], base):.3f}",
                    ),
                    ("PostgreSQL p99", f(lat["postgresql"]["p99_ms"], " ms"), "", ""),
                ],
            )
        )
    if "scaling" in r:
        s = r["scaling"]
        out.append(
            common.table(
                "Scaling",
                [
                    (
                        "ingest p50, one connection, 10,000 subscriptions",
                        f(s["ingest_p50_ms_10000_subscriptions"], " ms"),
                        f"{f(s['ingest_p50_ms_10_subscriptions'], ' ms')} (10)",
                        f"{s['subscriptions_ratio']:.2f}",
                    ),
                    (
                        f"claim beside {s['claim_finished_rows']:,} finished deliveries",
                        f(s["claim_ms_beside_finished"], " ms"),
                        f"{f(s['claim_ms_empty_log'], ' ms')} (empty log)",
                        f"{s['claim_ratio']:.2f}",
                    ),
                    (
                        f"delivery, 2 workers ({s['two_workers_deliveries']:,} on PostgreSQL)",
                        f(s["two_workers_per_s"], "/s"),
                        f"{f(s['one_worker_per_s'], '/s')} (1 worker)",
                        f"{s['two_workers_ratio']:.2f}",
                    ),
                    *(
                        [
                            (
                                f"delivery, 2 workers, client-limited "
                                f"({s['client_limited_deliveries']:,}; "
                                f"{s['client_limited_concurrency']} in flight each, Teams "
                                f"answering in {s['client_limited_delay_ms']} ms)",
                                f(s["client_limited_two_workers_per_s"], "/s"),
                                f"{f(s['client_limited_one_worker_per_s'], '/s')} (1 worker)",
                                f"{s['client_limited_two_workers_ratio']:.2f}",
                            )
                        ]
                        if "client_limited_two_workers_ratio" in s
                        else []
                    ),
                ],
            )
        )
    if "memory" in r:
        m = r["memory"]
        out.append(
            common.table(
                "Memory (peak RSS, VmHWM)",
                [
                    ("web process during ingest", f(m["web_mb"], " MB"), "", ""),
                    ("worker during delivery", f(m["worker_mb"], " MB"), "", ""),
                ],
            )
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, under 90 s")
    parser.add_argument("--profile", action="store_true", help="py-spy the service")
    parser.add_argument("--only", default=",".join(PARTS))
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results: dict[str, Any] = {
        "machine": common.machine(),
        "run": {
            "mode": "quick" if args.quick else "full",
            "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "sizes": sizes,
            "profile": args.profile,
            "commit": common.commit(),
        },
    }
    print(f"bench ({results['run']['mode']}): {json.dumps(results['machine'])}", flush=True)
    if "ingest" in parts:
        results["ingest"] = ingest.run(sizes, args.profile)
        # The embedded default too: the same run against a SQLite file (no profile).
        results["ingest_sqlite"] = ingest.run({**sizes, "database": "sqlite"}, False)
    if "delivery" in parts:
        results["delivery"] = delivery.run(sizes, args.profile)
    if "latency" in parts:
        results["latency"] = run_latency(sizes)
    if "scaling" in parts:
        results["scaling"] = run_scaling(sizes)
    if "ingest" in results and "delivery" in results:
        results["memory"] = {
            "web_mb": results["ingest"]["web_mb"],
            "worker_mb": results["delivery"]["worker_mb"],
        }
    results["run"]["seconds"] = round(time.monotonic() - started, 1)
    text = tables(results)
    print("\n" + text)
    print(f"(the whole run took {results['run']['seconds']:.0f} s)")
    if set(parts) != set(PARTS):
        print("(a partial run: latest.json left as it was)")
        return
    stamp = dt.datetime.now().strftime("%Y-%m-%d-%H%M")
    body = json.dumps(results, indent=2) + "\n"
    for name in ("latest.json", f"{stamp}{'-quick' if args.quick else ''}.json"):
        (common.RESULTS / name).write_text(body)
    (common.RESULTS / "latest.md").write_text(text)
    print(f"wrote bench/results/latest.json and {stamp}.json")


if __name__ == "__main__":
    main()
