"""Create an S3 bucket if it does not exist yet, waiting for the store to come up.

``python deploy/create-bucket.py BUCKET`` with the standard AWS variables (``AWS_ENDPOINT_URL``
for MinIO and friends). docker-compose.yml runs it once before the services that need the bucket;
running it again changes nothing. Exits non-zero if the store does not answer within
``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import sys
import time

import boto3
from botocore.exceptions import BotoCoreError, ClientError


def ensure_bucket(bucket: str, timeout: float) -> bool:
    """True once ``bucket`` exists (created if missing); False if the store never answered."""
    s3 = boto3.client("s3")
    deadline = time.monotonic() + timeout
    while True:
        try:
            s3.head_bucket(Bucket=bucket)
            return True
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code in ("404", "NoSuchBucket"):
                try:
                    s3.create_bucket(Bucket=bucket)
                except ClientError as race:
                    if race.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                        raise
                print(f"created bucket {bucket}")
                return True
            if status < 500:  # wrong credentials or a forbidden bucket: waiting will not help
                raise
            problem: Exception = exc  # the store is up but not ready yet
        except BotoCoreError as exc:  # not reachable yet
            problem = exc
        if time.monotonic() > deadline:
            print(f"the S3 store did not answer in {timeout:.0f} s: {problem}", file=sys.stderr)
            return False
        time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bucket")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    return 0 if ensure_bucket(args.bucket, args.timeout) else 1


if __name__ == "__main__":
    sys.exit(main())
