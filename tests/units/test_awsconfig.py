"""The plain AWS settings read without botocore, and the proxy chosen for an endpoint.

Each case is one botocore would resolve: the plain reading must agree with it, or step aside
(None) and let botocore's chain decide.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aiosqsworker._sqs.awsconfig import PlainSettings, plain_settings
from aiosqsworker._sqs.http11 import Origin, proxy_for
from aiosqsworker._sqs.sigv4 import FrozenCredentials

KEYS = {"AWS_ACCESS_KEY_ID": "AKENV", "AWS_SECRET_ACCESS_KEY": "env-secret"}


def files(tmp_path: Path, config: str = "", credentials: str = "") -> dict[str, str]:
    (tmp_path / "config").write_text(config)
    (tmp_path / "credentials").write_text(credentials)
    return {
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
    }


def test_environment_keys_and_region_give_the_region_s_endpoint(tmp_path: Path) -> None:
    environ = {**files(tmp_path), **KEYS, "AWS_REGION": "eu-west-1", "AWS_SESSION_TOKEN": "t"}
    assert plain_settings(environ, region=None, endpoint_url=None, profile=None) == PlainSettings(
        "eu-west-1",
        "https://sqs.eu-west-1.amazonaws.com",
        FrozenCredentials("AKENV", "env-secret", "t"),
    )


def test_static_keys_of_a_profile_in_the_shared_files(tmp_path: Path) -> None:
    environ = files(
        tmp_path,
        config="[profile work]\nregion = cn-north-1\n",
        credentials="[work]\naws_access_key_id = AKFILE\naws_secret_access_key = file-secret\n",
    )
    settings = plain_settings({**environ, **KEYS}, region=None, endpoint_url=None, profile="work")
    # A profile chosen in code wins over the environment's keys, as in botocore.
    assert settings == PlainSettings(
        "cn-north-1",
        "https://sqs.cn-north-1.amazonaws.com.cn",
        FrozenCredentials("AKFILE", "file-secret"),
    )


def test_the_endpoint_variable_comes_before_the_region_s(tmp_path: Path) -> None:
    environ = {
        **files(tmp_path),
        **KEYS,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_SQS": "http://localhost:4566",
    }
    settings = plain_settings(environ, region=None, endpoint_url=None, profile=None)
    assert settings is not None
    assert settings.endpoint_url == "http://localhost:4566"


@pytest.mark.parametrize(
    ("config", "extra"),
    [
        ("[default]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = base\n", {}),
        ("[default]\ncredential_process = /bin/creds\n", {}),
        ("[default]\nsso_session = corp\n", {}),
        ("[default]\nendpoint_url = http://elsewhere\n", {}),
        ("", {"AWS_WEB_IDENTITY_TOKEN_FILE": "/var/token", "AWS_ROLE_ARN": "arn"}),
        ("", {"AWS_USE_FIPS_ENDPOINT": "true"}),
        ("", {"AWS_SECRET_ACCESS_KEY": ""}),  # partial: botocore names what is missing
        ("", {"AWS_REGION": "us-gov-west-1"}),  # another partition
        ("", {"AWS_ENDPOINT_URL_SQS": "localhost:4566"}),  # botocore's error says how to fix
    ],
)
def test_anything_else_is_left_to_botocore(
    tmp_path: Path, config: str, extra: dict[str, str]
) -> None:
    environ = {**files(tmp_path, config=config), "AWS_REGION": "us-east-1", **KEYS, **extra}
    assert plain_settings(environ, region=None, endpoint_url=None, profile=None) is None


def test_no_credentials_or_no_region_is_botocore_s_to_explain(tmp_path: Path) -> None:
    """Instance or container credentials, or an error worded by the botocore path."""
    environ = files(tmp_path)
    assert (
        plain_settings(
            {**environ, "AWS_REGION": "us-east-1"}, region=None, endpoint_url=None, profile=None
        )
        is None
    )
    assert plain_settings({**environ, **KEYS}, region=None, endpoint_url=None, profile=None) is None
    assert plain_settings(environ, region="eu-west-1", endpoint_url=None, profile="missing") is None


@pytest.mark.parametrize(
    ("url", "environ", "proxy"),
    [
        ("https://sqs.eu-west-1.amazonaws.com", {"HTTPS_PROXY": "http://p:3128"}, "http://p:3128"),
        ("https://sqs.eu-west-1.amazonaws.com", {"https_proxy": "p:3128"}, "http://p:3128"),
        ("https://sqs.eu-west-1.amazonaws.com", {"HTTP_PROXY": "http://p:3128"}, None),
        ("http://localhost:9324", {"HTTP_PROXY": "http://p:3128"}, "http://p:3128"),
        ("http://localhost:9324", {"HTTP_PROXY": "http://p", "NO_PROXY": "localhost"}, None),
        (
            "https://sqs.eu-west-1.amazonaws.com",
            {"HTTPS_PROXY": "http://p", "NO_PROXY": ".amazonaws.com"},
            None,
        ),
        ("https://sqs.eu-west-1.amazonaws.com", {"HTTPS_PROXY": "http://p", "NO_PROXY": "*"}, None),
        ("http://10.1.2.3:9324", {"HTTP_PROXY": "http://p", "no_proxy": "10.0.0.0/8"}, None),
        ("http://10.1.2.3:9324", {"HTTP_PROXY": "http://p", "NO_PROXY": "10.1.2.3:80"}, "http://p"),
        (
            "http://notamazonaws.com",
            {"HTTP_PROXY": "http://p", "NO_PROXY": "amazonaws.com"},
            "http://p",
        ),
    ],
)
def test_the_proxy_is_chosen_as_the_sdks_choose_it(
    url: str, environ: dict[str, str], proxy: str | None
) -> None:
    assert proxy_for(Origin.of(url), environ) == proxy


def test_the_host_header_is_the_signer_s() -> None:
    """An explicit default port is left out of the Host header, as the signer signs it."""
    assert Origin.of("http://sqs.example.test:80/").host_header == "sqs.example.test"
    assert Origin.of("http://LocalHost:9324").host_header == "localhost:9324"
    assert Origin.of("https://sqs.eu-west-1.amazonaws.com").port == 443
