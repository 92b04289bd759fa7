"""The fast path's own parts, checked against botocore: signatures, body checks, error codes.

The fast path speaks SQS's protocol without botocore on the hot calls, so whatever botocore
would have done for it must come out the same here. The scenarios elsewhere run both paths
against a real server; these checks pin down what a server that does not verify signatures
or corrupt bodies would let slip.
"""

from __future__ import annotations

import calendar
import hashlib
import time
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.auth import _host_from_url as botocore_host
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from aiosqsworker._sqs.jsonwire import action_headers, error_code, verified_messages
from aiosqsworker._sqs.sigv4 import FrozenCredentials, RequestSigner, host_header

QUEUE_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/orders"


def botocore_signed(
    url: str, headers: dict[str, str], body: bytes, credentials: Credentials, region: str
) -> dict[str, str]:
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    SigV4Auth(credentials, "sqs", region).add_auth(request)
    return dict(request.headers.items())


@pytest.mark.parametrize(
    ("url", "token", "action", "body"),
    [
        ("https://sqs.eu-west-1.amazonaws.com/", None, "ReceiveMessage", b'{"QueueUrl":"q"}'),
        (
            "https://sqs.eu-west-1.amazonaws.com/",
            "session-token/with+odd=chars",
            "DeleteMessageBatch",
            b'{"Entries":[{"Id":"0","ReceiptHandle":"AQEB  x"}]}',
        ),
        ("http://127.0.0.1:4566/", None, "ChangeMessageVisibilityBatch", b""),
        ("http://localhost:9324/prefix/", "t", "SendMessageBatch", "é ü".encode()),
        # Default ports, written out: signed (and sent) without them, as botocore signs.
        ("http://127.0.0.1:80/", None, "ReceiveMessage", b"{}"),
        ("https://sqs.eu-west-1.amazonaws.com:443/", "t", "DeleteMessageBatch", b"{}"),
        ("https://sqs.example.com:80/", None, "ReceiveMessage", b"{}"),
        ("http://LocalHost:9324/", None, "ReceiveMessage", b"{}"),
        ("http://[::1]:80/", None, "ReceiveMessage", b"{}"),
        ("http://[::1]:9324/", None, "ReceiveMessage", b"{}"),
    ],
)
def test_signature_matches_botocore(url: str, token: str | None, action: str, body: bytes) -> None:
    """Naive code it catches: signing the URL's netloc as written (``host:80``,
    ``LocalHost``) where aiohttp sends ``Host: host`` (``localhost``): SignatureDoesNotMatch."""
    region = "eu-west-1"
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    headers = dict(action_headers(action))
    expected = botocore_signed(url, headers, body, credentials, region)
    # Sign at the very second botocore did, read back from its own timestamp.
    at = calendar.timegm(time.strptime(expected["X-Amz-Date"], "%Y%m%dT%H%M%SZ"))
    signer = RequestSigner.for_url(url, region=region, service="sqs")
    ours = signer.sign(
        headers,
        body,
        FrozenCredentials(credentials.access_key, credentials.secret_key, token),
        at=at,
    )
    assert ours["Authorization"] == expected["Authorization"]
    assert ours["X-Amz-Date"] == expected["X-Amz-Date"]
    assert ours.get("X-Amz-Security-Token") == expected.get("X-Amz-Security-Token")
    # What is signed is what is sent: the Host header goes with the request.
    assert ours["Host"] == host_header(url) == botocore_host(url)


def test_signer_keeps_up_with_the_clock_and_the_credentials() -> None:
    """The cached timestamp and header forms follow a new second and rotated credentials."""
    url = "https://sqs.us-east-1.amazonaws.com/"
    signer = RequestSigner(
        host="sqs.us-east-1.amazonaws.com", path="/", region="us-east-1", service="sqs"
    )
    headers = dict(action_headers("ReceiveMessage"))
    for token in (None, "first", "rotated", None):
        credentials = Credentials("AKID", f"secret-{token}", token)
        expected = botocore_signed(url, headers, b"{}", credentials, "us-east-1")
        at = calendar.timegm(time.strptime(expected["X-Amz-Date"], "%Y%m%dT%H%M%SZ"))
        frozen = FrozenCredentials("AKID", f"secret-{token}", token)
        assert (
            signer.sign(headers, b"{}", frozen, at=at)["Authorization"]
            == (expected["Authorization"])
        )
        # A later second gives a different signature, not a stale cached one.
        assert (
            signer.sign(headers, b"{}", frozen, at=at + 1)["Authorization"]
            != (expected["Authorization"])
        )


def received(body: str, md5: str | None = None, **attributes: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"MessageId": "m-1", "ReceiptHandle": "r-1", "Body": body}
    message["MD5OfBody"] = md5 if md5 is not None else hashlib.md5(body.encode()).hexdigest()
    if attributes:
        message["MessageAttributes"] = attributes
    return message


def test_a_body_that_fails_its_md5_is_left_out_and_named(caplog: pytest.LogCaptureFixture) -> None:
    good = received('{"order": 1}')
    corrupted = received('{"order": 2}', md5=hashlib.md5(b'{"order": 3}').hexdigest())
    corrupted["MessageId"] = "m-2"
    assert verified_messages([good, corrupted], QUEUE_URL) == [good]
    assert "m-2" in caplog.text
    assert "MD5" in caplog.text


def test_binary_attributes_arrive_as_bytes() -> None:
    message = received(
        "x",
        blob={"DataType": "Binary", "BinaryValue": "AAEC"},
        name={"DataType": "String", "StringValue": "ok"},
    )
    (checked,) = verified_messages([message], QUEUE_URL)
    assert checked["MessageAttributes"]["blob"]["BinaryValue"] == b"\x00\x01\x02"
    assert checked["MessageAttributes"]["name"]["StringValue"] == "ok"


@pytest.mark.parametrize(
    ("status", "headers", "payload", "code"),
    [
        # SQS's JSON protocol: the classic code travels in x-amzn-query-error.
        (
            400,
            {"x-amzn-query-error": "AWS.SimpleQueueService.NonExistentQueue;Sender"},
            {"__type": "com.amazonaws.sqs#QueueDoesNotExist", "message": "gone"},
            "AWS.SimpleQueueService.NonExistentQueue",
        ),
        (400, {}, {"__type": "com.amazonaws.sqs#QueueDoesNotExist"}, "QueueDoesNotExist"),
        (400, {}, {"__type": "ThrottlingException"}, "ThrottlingException"),
        (403, {}, {"code": "AccessDenied", "Message": "no"}, "AccessDenied"),
        (503, {}, None, "HTTP503"),
    ],
)
def test_error_codes_are_read_as_botocore_reads_them(
    status: int, headers: dict[str, str], payload: Any, code: str
) -> None:
    assert error_code(status, headers, payload)[0] == code
