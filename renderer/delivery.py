"""The campaign's delivery settings: ``unsubscribe:`` (signed links) and ``sender:``.

``unsubscribe:`` replaces a hand-written ``unsubscribe_url`` that carries the raw id::

    unsubscribe:
      url: "https://shop.example.com/unsubscribe?token={token}"
      secret_env: MAILSMITH_UNSUBSCRIBE_SECRET   # the variable's NAME, never the secret
      mailto: unsubscribe@shop.example.com       # for List-Unsubscribe (eml, mbox)
      preferences_url: "https://shop.example.com/preferences?token={token}"

``{token}`` becomes the recipient's signed token (:mod:`renderer.unsubscribe`); templates
read the result as ``unsubscribe_url`` (and ``preferences_url``), as before. ``sender:``
gives the From, Reply-To and the domain of Message-ID, List-Id and Feedback-ID for
``--format eml`` and ``mbox`` (:mod:`renderer.build.mime`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, field_validator

from renderer.unsubscribe import TokenSigner, secret_from_env
from segments.errors import ConfigError

if TYPE_CHECKING:
    from renderer.campaign import Campaign

TOKEN = "{token}"
DEFAULT_SECRET_ENV = "MAILSMITH_UNSUBSCRIBE_SECRET"
DEMO_SECRET_WARNING = (
    "unsubscribe tokens are signed with the campaign's demo_secret: set {name} "
    "before a real send (the demo_secret is public)"
)
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UnsubscribeSpec(_Spec):
    """``unsubscribe:``: signed unsubscribe (and preference) links."""

    url: str = Field(description="The unsubscribe URL; {token} is the signed token.")
    secret_env: str = Field(
        default=DEFAULT_SECRET_ENV,
        pattern=_ENV_NAME,
        description="Name of the environment variable that holds the signing secret.",
    )
    mailto: str | None = Field(
        default=None, description="Address of the mailto: List-Unsubscribe (eml, mbox)."
    )
    preferences_url: str | None = Field(
        default=None, description="The preference centre's URL; {token} as in url."
    )
    demo_secret: str | None = Field(
        default=None,
        description="Used (with a warning) when secret_env is unset: for demos only.",
    )

    @field_validator("url", "preferences_url")
    @classmethod
    def _has_token(cls, value: str | None) -> str | None:
        if value is not None and TOKEN not in value:
            raise ValueError(f"the URL must hold {TOKEN}, where the signed token goes")
        return value

    @field_validator("mailto")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None:
            value = value.removeprefix("mailto:")
            if not _ADDRESS.match(value):
                raise ValueError("write an address such as unsubscribe@example.com")
        return value


class SenderSpec(_Spec):
    """``sender:``: who the messages of ``--format eml`` / ``mbox`` come from."""

    from_: str = Field(alias="from", description="The From address.")
    name: str | None = Field(default=None, description="The From display name.")
    reply_to: str | None = Field(default=None, description="The Reply-To address.")

    @field_validator("from_", "reply_to")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None and not _ADDRESS.match(value):
            raise ValueError("write an address such as news@example.com")
        return value

    @property
    def domain(self) -> str:
        """The From address's domain (Message-ID, List-Id, Feedback-ID)."""
        return self.from_.rpartition("@")[2].lower()


def unsubscribe_source(campaign: Campaign) -> str | None:
    """The Jinja source of a recipient's ``unsubscribe_url``: ``unsubscribe.url`` with
    its ``{token}`` made the ``unsubscribe_token`` variable, else ``unsubscribe_url``."""
    if campaign.unsubscribe is not None:
        return campaign.unsubscribe.url.replace(TOKEN, "{{ unsubscribe_token }}")
    return campaign.unsubscribe_url


def token_signer(campaign: Campaign) -> TokenSigner | None:
    """The campaign's token signer (None without ``unsubscribe:``); a
    :class:`ConfigError` naming the variable when its secret is not set."""
    spec = campaign.unsubscribe
    if spec is None:
        return None
    found = secret_from_env(spec.secret_env, spec.demo_secret)
    if found is None:
        raise ConfigError(
            f"unsubscribe links are signed with the secret in the environment variable "
            f"{spec.secret_env}, which is not set",
            file=campaign.file,
            field="unsubscribe.secret_env",
            hint=f'set it before the build, e.g. export {spec.secret_env}="$(python -c '
            "'import secrets; print(secrets.token_urlsafe(32))')\", and give the same "
            "secret to the endpoint that verifies the tokens (docs/delivery.md)",
        )
    key, demo = found
    return TokenSigner(campaign.name, key, demo)


def demo_secret_warning(campaign: Campaign) -> str | None:
    """The build's warning when its tokens are signed with the public demo secret."""
    signer = token_signer(campaign)
    if signer is None or not signer.demo:
        return None
    assert campaign.unsubscribe is not None
    return DEMO_SECRET_WARNING.format(name=campaign.unsubscribe.secret_env)
