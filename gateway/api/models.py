"""Request bodies, validated strictly at the API edge (wrong types are errors, not coerced)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.core.plates import PLATE_PATTERN
from gateway.core.status_events import SELECTABLE
from gateway.core.templates import ACCIDENT_TYPES, Catalogue

_STRICT = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)
CaseId = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
# Named in the OpenAPI document; the handlers check them and answer with the allowed values.
TEMPLATE_NAMES = sorted(Catalogue.load().templates)
# The rules of phones and plates, as the OpenAPI document states them. The handlers check
# them (gateway/core/phones.py, plates.py) and also accept spaces, dashes, separators, lower
# case and full width, so the models do not enforce these patterns themselves.
PHONE_PATTERN = r"^(\+?86|0086)?1[3-9][0-9]{9}$"
_PHONE_DOC: dict[str, Any] = {"pattern": PHONE_PATTERN, "description": "a Chinese mobile"}
# The handlers check the values (gateway.core.status_events) and answer with the allowed ones.
StatusEvents = Field(
    default=None,
    max_length=len(SELECTABLE),
    description="the statuses whose webhooks go to callback_url (default: the API key's "
    "default, else every one); the history keeps every status",
    json_schema_extra={"items": {"type": "string", "enum": list(SELECTABLE)}, "minItems": 1},
)
_PLATE_DOC: dict[str, Any] = {
    "pattern": PLATE_PATTERN,
    "description": "a plate; separators, lower case and full width are accepted too",
}


class AccidentAlert(BaseModel):
    """An accident reported to the command centre; the reporter gets the procedure by SMS."""

    model_config = _STRICT
    accident_type: str = Field(
        min_length=1, max_length=40, json_schema_extra={"enum": list(ACCIDENT_TYPES)}
    )
    reporter_phone: str = Field(min_length=1, max_length=32, json_schema_extra=_PHONE_DOC)
    location: str = Field(min_length=1, max_length=120)
    case_id: str = CaseId
    callback_url: str | None = Field(default=None, max_length=2048)
    status_events: list[str] | None = StatusEvents


class Message(BaseModel):
    """A notice from a template (with params) or plain text."""

    model_config = _STRICT
    to: str = Field(
        min_length=1, max_length=254, description="a Chinese mobile; an address for email"
    )
    channel: Literal["sms", "email", "voice"] = "sms"
    template: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="GET /v1/templates lists them",
        json_schema_extra={"enum": list(TEMPLATE_NAMES)},
    )
    params: dict[str, str | int | float] | None = None
    text: str | None = Field(default=None, min_length=1, max_length=1000)
    callback_url: str | None = Field(default=None, max_length=2048)
    status_events: list[str] | None = StatusEvents

    @model_validator(mode="after")
    def _one_body(self) -> Message:
        if (self.template is None) == (self.text is None):
            raise ValueError("give either template (with params) or text, not both")
        if self.text is not None and self.params is not None:
            raise ValueError("params belong to a template")
        if self.params is not None and len(self.params) > 32:
            raise ValueError("too many params")
        return self


class BindingIn(BaseModel):
    """Bind a plate to the phone (and optionally email) that receives its notices."""

    model_config = _STRICT
    plate: str = Field(min_length=1, max_length=16, json_schema_extra=_PLATE_DOC)
    phone: str = Field(min_length=1, max_length=32, json_schema_extra=_PHONE_DOC)
    email: str | None = Field(
        default=None, max_length=254, pattern=r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$"
    )
    agent_id: str | None = Field(default=None, max_length=64)


class ParkingNotice(BaseModel):
    """An officer's handheld asks the owner of a badly parked car to move it."""

    model_config = _STRICT
    plate: str = Field(min_length=1, max_length=16, json_schema_extra=_PLATE_DOC)
    location: str = Field(min_length=1, max_length=120)
    move_within_minutes: int = Field(ge=1, le=120)
    officer_id: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")
    callback_url: str | None = Field(default=None, max_length=2048)
    status_events: list[str] | None = StatusEvents


class BindingRequestIn(BindingIn):
    """Ask to bind a plate to a phone; the phone gets a one-time code to prove it is held."""


class BindingVerifyIn(BaseModel):
    """The code the citizen received by SMS, as typed on the website."""

    model_config = _STRICT
    code: str = Field(min_length=1, max_length=32)


class JobOptions(BaseModel):
    """A reminder job: which template on which channel, when and how fast."""

    model_config = _STRICT
    template: str = Field(
        min_length=1, max_length=64, json_schema_extra={"enum": list(TEMPLATE_NAMES)}
    )
    channel: Literal["sms", "email", "voice"] = "sms"
    callback_url: str | None = Field(default=None, max_length=2048)
    send_window: str | None = Field(
        default=None, pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$"
    )
    rate: float | None = Field(default=None, gt=0, le=100_000, description="messages/s")
    name: str | None = Field(default=None, max_length=100)

    @model_validator(mode="before")
    @classmethod
    def _no_status_events(cls, data: Any) -> Any:
        if isinstance(data, dict) and "status_events" in data:
            raise ValueError(
                "status_events: a job's recipients get no webhook each (its callback_url is "
                "told once, when the job ends); select status events on single notices"
            )
        return data


class ReminderJobIn(JobOptions):
    recipients: list[Any] = Field(min_length=1, max_length=100_000)


class FollowUpIn(BaseModel):
    """What the officer found at the car when the time to move it was up."""

    model_config = _STRICT
    outcome: Literal["moved", "still_parked"]
    officer_id: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")
    note: str | None = Field(default=None, max_length=200)
