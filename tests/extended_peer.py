"""AWS's own extended client (``amazon-sqs-extended-client``) as the other side of a test.

It replaces boto3's Session class when imported, so it runs in a process of its own:

    python tests/extended_peer.py send ENDPOINT QUEUE_URL BUCKET BODY_FILE [--legacy]
    python tests/extended_peer.py receive ENDPOINT QUEUE_URL BODY_DIR [--count N]

`send` prints the MessageId; `receive` writes each body it reads to BODY_DIR/<MessageId> and
prints one JSON line per message (its id and message attributes), deleting what it read.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import boto3
import sqs_extended_client  # noqa: F401 - it patches boto3's Session on import

REGION = "us-east-1"


def _clients(endpoint: str) -> Any:
    session = boto3.Session(
        region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    sqs = session.client("sqs", endpoint_url=endpoint)
    sqs.s3_client = session.client("s3", endpoint_url=endpoint)
    return sqs


def send(args: argparse.Namespace) -> None:
    sqs = _clients(args.endpoint)
    sqs.large_payload_support = args.bucket
    sqs.use_legacy_attribute = args.legacy
    body = Path(args.body_file).read_text()
    response = sqs.send_message(
        QueueUrl=args.queue_url,
        MessageBody=body,
        MessageAttributes={"origin": {"DataType": "String", "StringValue": "aws-client"}},
    )
    print(response["MessageId"])


def receive(args: argparse.Namespace) -> None:
    sqs = _clients(args.endpoint)
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while len(found) < args.count and time.monotonic() < deadline:
        response = sqs.receive_message(
            QueueUrl=args.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            MessageAttributeNames=["All"],
        )
        for message in response.get("Messages", []):
            Path(args.body_dir, message["MessageId"]).write_text(message["Body"])
            found.append(
                {
                    "message_id": message["MessageId"],
                    "attributes": sorted(message.get("MessageAttributes", {})),
                }
            )
            sqs.delete_message(QueueUrl=args.queue_url, ReceiptHandle=message["ReceiptHandle"])
    for entry in found:
        print(json.dumps(entry))


def main() -> None:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    send_parser = commands.add_parser("send")
    send_parser.add_argument("endpoint")
    send_parser.add_argument("queue_url")
    send_parser.add_argument("bucket")
    send_parser.add_argument("body_file")
    send_parser.add_argument("--legacy", action="store_true")
    receive_parser = commands.add_parser("receive")
    receive_parser.add_argument("endpoint")
    receive_parser.add_argument("queue_url")
    receive_parser.add_argument("body_dir")
    receive_parser.add_argument("--count", type=int, default=1)
    args = parser.parse_args()
    if args.command == "send":
        send(args)
    else:
        receive(args)


if __name__ == "__main__":
    main()
