"""`bucket create NAME`: the S3 bucket large messages go to (``payload_bucket=``), made from
the command line, as `queue create` makes queues.

The S3 endpoint is ``--endpoint-url``, else botocore's (``AWS_ENDPOINT_URL_S3``, then
``AWS_ENDPOINT_URL``): `local-server` serves S3 beside SQS and prints both. A bucket that
exists and is this account's is left as it is (exit 0). `bucket_name_problem` is pure.
"""

from __future__ import annotations

import argparse
import re
from contextlib import AsyncExitStack
from typing import Any

from ..._config import AppConfig, EnvironmentSettings
from ..._errors import AioSQSWorkerError, ConfigurationError
from ..._sqs.open import open_s3_client
from ..command import (
    Invocation,
    Subparsers,
    action_parser,
    add_connection_options,
    add_logging_options,
    command_group,
)
from ._common import run_coroutine

__all__ = ["add_parser", "bucket_name_problem", "run"]

BUCKET_EPILOG = """\
create:
  Creates bucket NAME at the S3 endpoint: --endpoint-url, else AWS_ENDPOINT_URL_S3, else
  AWS_ENDPOINT_URL, else AWS's own (local-server serves S3 and prints AWS_ENDPOINT_URL_S3).
  Outside us-east-1 the bucket is created in the region in use. A bucket that exists and
  is yours is left as it is (exit 0).

exit codes:
  0 created or already yours; 1 an error (a name S3 refuses, another account's bucket).

examples:
  python -m aiosqsworker bucket create orders-payloads
"""

_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
#: The region whose buckets take no LocationConstraint (S3 refuses one naming it).
_DEFAULT_REGION = "us-east-1"


def bucket_name_problem(name: str) -> str | None:
    """Why S3 would refuse `name` as a bucket name, or None."""
    if not _BUCKET_NAME.fullmatch(name) or ".." in name:
        return (
            "a bucket name is 3 to 63 characters: lowercase letters, digits, '.' and '-', "
            "starting and ending with a letter or digit"
        )
    return None


async def _exists(s3: Any, name: str) -> bool:
    """Whether bucket `name` exists and is this account's (S3 in us-east-1 would answer a
    second CreateBucket of one's own bucket with success, so it is asked first)."""
    from botocore.exceptions import ClientError  # the S3 client's own: loaded with it

    try:
        await s3.head_bucket(Bucket=name)
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 404:
            return False
        if status == 403:
            raise ConfigurationError(
                f"bucket {name} belongs to another account (bucket names are global on "
                "AWS), or these credentials may not read it: choose another name"
            ) from None
        raise
    return True


async def _create(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError  # the S3 client's own

    config = AppConfig(region=args.region, s3_endpoint_url=args.endpoint_url, profile=args.profile)
    async with AsyncExitStack() as stack:
        s3 = await open_s3_client(stack, config, max_connections=2)
        endpoint, region = s3.meta.endpoint_url, s3.meta.region_name
        where = f"at {endpoint} (region {region})"
        try:
            if await _exists(s3, args.name):
                print(f"exists: {args.name} {where}")
                return 0
            options = {}
            if region != _DEFAULT_REGION:
                options["CreateBucketConfiguration"] = {"LocationConstraint": region}
            await s3.create_bucket(Bucket=args.name, **options)
        except ClientError as exc:
            raise AioSQSWorkerError(f"S3 refused bucket {args.name} {where}: {exc}") from None
        except BotoCoreError as exc:
            raise AioSQSWorkerError(
                f"cannot reach S3 {where}: {exc}. Is the endpoint right (--endpoint-url, "
                "AWS_ENDPOINT_URL_S3)? For a local server: is local-server running?"
            ) from None
    print(f"created {args.name} {where}")
    return 0


def add_parser(sub: Subparsers, env: EnvironmentSettings) -> argparse.ArgumentParser:
    parser, actions = command_group(
        sub,
        "bucket",
        help="create the S3 bucket of large messages",
        description="Create an S3 bucket, for large messages (payload_bucket=).",
        epilog=BUCKET_EPILOG,
    )
    create_bucket = action_parser(
        actions,
        "bucket create",
        help="create a bucket (exit 0 if it exists and is yours)",
        description="Create bucket NAME at the S3 endpoint (--endpoint-url, else "
        "AWS_ENDPOINT_URL_S3, else AWS's).",
        epilog=BUCKET_EPILOG,
    )
    create_bucket.add_argument("name", metavar="NAME", help="the bucket's name")
    add_connection_options(create_bucket, service="S3")  # the bucket command's endpoint
    add_logging_options(create_bucket, env)
    return parser


def run(call: Invocation) -> int:
    """Create the bucket `call` names (exit 0 if it exists and is this account's)."""
    args = call.args
    problem = bucket_name_problem(args.name)
    if problem:
        raise ConfigurationError(f"bucket {args.name!r}: {problem}")
    return run_coroutine(_create, args)
