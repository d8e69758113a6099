"""``python -m fraud_assets.standin``: serve the transactions API stand-in."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import uvicorn

from fraud_assets.standin.app import FAULTS, StandinConfig, create_app
from fraud_assets.standin.publish import PublishConfig
from fraud_assets.standin.push import TOKEN_VARIABLE, PushConfig

#: The variable holding the broker's URL by default: the consumer's own (it may hold a password).
STREAM_URL_VARIABLE = "FRAUD_STREAM_URL"


def _parser() -> argparse.ArgumentParser:
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
    _push_options(parser.add_argument_group("push mode (rows sent to the decision service)"))
    _publish_options(parser.add_argument_group("publish mode (rows published to a broker)"))
    return parser


def _publish_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--publish",
        action="store_true",
        help="also publish rows to the broker whose URL is in --publish-url-env's variable; "
        "each message is a POST /v1/decisions body with a new transaction id (pub-...), for "
        "python -m decision_api consume",
    )
    group.add_argument(
        "--publish-url-env",
        default=STREAM_URL_VARIABLE,
        metavar="VARIABLE",
        help="the environment variable holding the broker's URL (nats://, redis://, amqp:// "
        "or kafka://; default: %(default)s); never the URL itself, which may hold a password",
    )
    group.add_argument(
        "--publish-topic",
        default="transactions",
        help="the topic (subject, stream, queue) to publish to (default: %(default)s)",
    )
    group.add_argument(
        "--publish-rate",
        type=float,
        default=5.0,
        help="transactions a second to publish (default: %(default)s; 0: none)",
    )


def _push_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--push-url",
        help="also send rows to the decision service at this base URL (POST /v1/decisions), "
        "as a card network would: random rows in the default mode, rows in time order with "
        "their event time in --mode replay, each a new transaction id (push-...)",
    )
    group.add_argument(
        "--push-rate",
        type=float,
        default=2.0,
        help="decisions a second to push (default: %(default)s; 0: none)",
    )
    group.add_argument(
        "--push-token-env",
        default=TOKEN_VARIABLE,
        metavar="VARIABLE",
        help="the environment variable holding the service's bearer token, if it needs one "
        "(default: %(default)s); never the token itself, as command lines are visible to "
        "other users",
    )
    group.add_argument(
        "--push-concurrency",
        type=int,
        default=16,
        help="pushes in flight at most (default: %(default)s)",
    )


def push_config(args: argparse.Namespace) -> PushConfig | None:
    """What to push, from the options (the token from the environment); None: no pushing."""
    if not args.push_url or args.push_rate <= 0:
        return None
    token = (os.environ.get(args.push_token_env) or "").strip() or None
    return PushConfig(
        url=args.push_url, rate=args.push_rate, token=token, concurrency=args.push_concurrency
    )


def publish_config(
    args: argparse.Namespace, parser: argparse.ArgumentParser
) -> PublishConfig | None:
    """What to publish, from the options (the URL from the environment); None: nothing."""
    if not args.publish or args.publish_rate <= 0:
        return None
    url = (os.environ.get(args.publish_url_env) or "").strip()
    if not url:
        parser.error(f"--publish needs the broker's URL in ${args.publish_url_env}")
    return PublishConfig(url=url, topic=args.publish_topic, rate=args.publish_rate)


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
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
        push=push_config(args),
        publish=publish_config(args, parser),
    )
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
