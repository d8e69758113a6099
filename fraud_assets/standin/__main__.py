"""``python -m fraud_assets.standin``: serve the transactions API stand-in."""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn

from fraud_assets.standin.app import FAULTS, StandinConfig, create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m fraud_assets.standin",
        description="Serve GET /current-transactions with the real API's exact format, replaying "
        "a CSV in the public fraudTest layout; optionally serve training files under /files/.",
    )
    parser.add_argument("--data", type=Path, required=True, help="CSV (public layout) to replay")
    parser.add_argument("--files-dir", type=Path, help="directory served under /files/NAME")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--rows-per-call", type=int, default=1)
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="replay speed in rows/s: each call returns the rows due since the last call "
        "(replay mode; 0 = --rows-per-call rows per call)",
    )
    parser.add_argument(
        "--mode",
        choices=["random", "replay"],
        default="random",
        help="random (default): like the real API, random rows with current_time = now and no "
        "true event time; replay: an event-time feed, rows in time order, each carrying its "
        "true event time in --event-time-field (set FRAUD_FEED_SEMANTICS=payload to use it)",
    )
    parser.add_argument(
        "--event-time-field",
        default="event_time",
        help="replay mode: the column holding each row's true event time, epoch ms "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--rate-limit-per-minute",
        type=int,
        default=0,
        help="answer 429 above this many calls a minute (0: no limit)",
    )
    parser.add_argument(
        "--fault-rate", type=float, default=0.0, help="share of calls that get an injected fault"
    )
    parser.add_argument(
        "--faults",
        default=",".join(FAULTS),
        help=f"comma-separated faults to draw from: {','.join(FAULTS)}",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    config = StandinConfig(
        data=args.data,
        files_dir=args.files_dir,
        rows_per_call=args.rows_per_call,
        mode=args.mode,
        event_time_field=args.event_time_field,
        rate_per_second=args.rate,
        rate_limit_per_minute=args.rate_limit_per_minute,
        fault_rate=args.fault_rate,
        faults=tuple(args.faults.split(",")),
        seed=args.seed,
    )
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
