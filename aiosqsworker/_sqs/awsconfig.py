"""The plain AWS settings, read without botocore: region, endpoint and static credentials.

Importing botocore costs a quarter of a second, and most workers need none of it: their
credentials are in the environment or in the shared files as static keys, their endpoint is
the region's or set in AWS_ENDPOINT_URL_SQS. `plain_settings` reads those by botocore's rules
and returns ``None`` whenever anything else is in play (a role to assume, SSO, web identity,
a credential process, container or instance credentials, FIPS or dual-stack endpoints, an
endpoint in the config file, a partition other than the commercial and China ones): the
caller then asks botocore's own chain, which is never wrong.

A pure function of the environment and the files: tested directly.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .sigv4 import FrozenCredentials

__all__ = ["PlainSettings", "plain_settings"]

#: Where botocore finds an endpoint when none is given, in its order (the config file after).
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL")

# Keys of a profile that only botocore's chain can turn into credentials or an endpoint.
_NEEDS_BOTOCORE = frozenset(
    {
        "role_arn",
        "source_profile",
        "credential_source",
        "web_identity_token_file",
        "credential_process",
        "sso_session",
        "sso_start_url",
        "sso_account_id",
        "sso_role_name",
        "login_session",
        "endpoint_url",
        "services",
        "use_fips_endpoint",
        "use_dualstack_endpoint",
        "ignore_configured_endpoint_urls",
        "ca_bundle",
    }
)
_ENVIRONMENT_NEEDS_BOTOCORE = (
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_USE_DUALSTACK_ENDPOINT",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
)
# The partitions whose SQS endpoint is sqs.<region>.<domain>.
_COMMERCIAL_REGION = re.compile(r"^(?:us|eu|ap|sa|ca|me|af|il|mx)-[a-z]+-\d+$")
_CHINA_REGION = re.compile(r"^cn-[a-z]+-\d+$")


@dataclass(frozen=True, slots=True)
class PlainSettings:
    region: str
    endpoint_url: str
    credentials: FrozenCredentials


def _profile_section(path: str, section: str) -> Mapping[str, str] | None:
    """One section of an AWS ini file, or None when the file or section is missing."""
    import configparser  # only when a worker starts

    parser = configparser.RawConfigParser()
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as file:
            parser.read_file(file)
    except (OSError, configparser.Error, UnicodeDecodeError):
        return None
    if not parser.has_section(section):
        return None
    return dict(parser.items(section))


def _static_keys(section: Mapping[str, str] | None) -> FrozenCredentials | None:
    if not section:
        return None
    key = section.get("aws_access_key_id")
    secret = section.get("aws_secret_access_key")
    if key and secret:
        return FrozenCredentials(key, secret, section.get("aws_session_token") or None)
    return None


def default_endpoint(region: str) -> str | None:
    """The region's SQS endpoint as botocore resolves it, for the partitions it is plain in."""
    if _COMMERCIAL_REGION.match(region):
        return f"https://sqs.{region}.amazonaws.com"
    if _CHINA_REGION.match(region):
        return f"https://sqs.{region}.amazonaws.com.cn"
    return None


def plain_settings(
    environ: Mapping[str, str],
    *,
    region: str | None,
    endpoint_url: str | None,
    profile: str | None,
) -> PlainSettings | None:
    """Region, endpoint and static credentials as botocore would find them, or None when
    only botocore can tell (see the module's docstring). `region`, `endpoint_url` and
    `profile` are the app's own settings (empty: not given)."""
    if any(environ.get(name) for name in _ENVIRONMENT_NEEDS_BOTOCORE):
        return None
    profile_name = profile or environ.get("AWS_PROFILE") or environ.get("AWS_DEFAULT_PROFILE")
    config_file = environ.get("AWS_CONFIG_FILE") or "~/.aws/config"
    section_name = "default" if profile_name in (None, "default") else f"profile {profile_name}"
    config = _profile_section(config_file, section_name)
    if config is None and section_name == "default":
        config = _profile_section(config_file, "profile default")
    if config is not None and _NEEDS_BOTOCORE & set(config):
        return None
    shared = _profile_section(
        environ.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials",
        profile_name or "default",
    )
    if shared is not None and _NEEDS_BOTOCORE & set(shared):
        return None
    if profile_name and config is None and shared is None:
        return None  # botocore says the profile does not exist

    region = (
        region
        or environ.get("AWS_REGION")
        or environ.get("AWS_DEFAULT_REGION")
        or (config or {}).get("region")
    )
    if not region:
        return None  # botocore's error says what to set
    if not endpoint_url:
        endpoint_url = next(
            (environ[name] for name in ENDPOINT_VARIABLES if environ.get(name)), None
        )
    endpoint_url = endpoint_url or default_endpoint(region)
    if not endpoint_url or not endpoint_url.startswith(("http://", "https://")):
        return None

    credentials = None
    # botocore skips the environment's keys when a profile is chosen in code.
    if not profile:
        key = environ.get("AWS_ACCESS_KEY_ID")
        secret = environ.get("AWS_SECRET_ACCESS_KEY")
        if key or secret:
            if not (key and secret):
                return None  # botocore names what is missing
            token = environ.get("AWS_SESSION_TOKEN") or environ.get("AWS_SECURITY_TOKEN")
            credentials = FrozenCredentials(key, secret, token or None)
    credentials = credentials or _static_keys(shared) or _static_keys(config)
    if credentials is None:
        return None  # container or instance credentials, or none at all
    return PlainSettings(region=region, endpoint_url=endpoint_url, credentials=credentials)
