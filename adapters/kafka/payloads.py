"""Kafka message bodies: the JSON forms producers send, turned into verification requests."""

import json

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from application.request_verification import VerificationRequest

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_ID_LENGTH = 256


class InvalidPayload(ValueError):
    """A message body that is not a verification request.

    `is_json_object` tells a JSON object with wrong or missing fields from a body that
    is not a JSON object at all. `verification_id` is set when the body named one, so
    the requester can be notified.
    """

    def __init__(
        self, detail: str, verification_id: str | None = None, is_json_object: bool = False
    ) -> None:
        super().__init__(detail)
        self.verification_id = verification_id
        self.is_json_object = is_json_object


class RequestPayload(BaseModel):
    """A request in either form: `{"Id", "Phone"}` from existing producers or snake_case."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    verification_id: str = Field(
        validation_alias=AliasChoices("Id", "verification_id"),
        min_length=1,
        max_length=MAX_ID_LENGTH,
    )
    phone: str = Field(validation_alias=AliasChoices("Phone", "phone"), max_length=64)
    locale: str | None = Field(
        None, validation_alias=AliasChoices("Locale", "locale"), max_length=35
    )
    request_id: str | None = Field(
        None,
        validation_alias=AliasChoices("RequestId", "request_id"),
        min_length=1,
        max_length=128,
    )

    @field_validator("verification_id", mode="before")
    @classmethod
    def _numeric_id_as_text(cls, value: object) -> object:
        # Some producers send numeric user ids; they name the same verification as text.
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value


def parse_request(value: bytes | None, record_key: str | None = None) -> VerificationRequest:
    """Decode one message body, or raise `InvalidPayload` saying what is wrong.

    The request is identified by the producer's `request_id` when given, otherwise
    by `record_key`, the record's position in the topic.
    """
    if value is None:
        raise InvalidPayload("empty message: expected a JSON object with Id and Phone")
    if len(value) > MAX_PAYLOAD_BYTES:
        raise InvalidPayload(
            f"message of {len(value)} bytes is over the {MAX_PAYLOAD_BYTES}-byte limit"
        )
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidPayload(f"message is not UTF-8 text: {error}") from error
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidPayload(f"message is not JSON: {error}") from error
    if not isinstance(document, dict):
        raise InvalidPayload(
            f"message is JSON {type(document).__name__}: expected an object with Id and Phone"
        )

    try:
        payload = RequestPayload.model_validate(document)
    except ValidationError as error:
        raise InvalidPayload(_describe(error), _loose_id(document), is_json_object=True) from error
    # A producer's request id names a request of one verification only.
    request_key = (
        f"request:{payload.verification_id}:{payload.request_id}"
        if payload.request_id
        else record_key
    )
    return VerificationRequest(payload.verification_id, payload.phone, payload.locale, request_key)


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in item["loc"]) or "message"
        if item["type"] == "missing":
            field = {"verification_id": "Id", "phone": "Phone"}.get(field, field)
            problems.append(f"{field} is missing")
        else:
            problems.append(f"{field}: {item['msg']}")
    return "invalid request: " + "; ".join(problems)


def _loose_id(document: dict[str, object]) -> str | None:
    for key in ("Id", "verification_id"):
        value = document.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            # Capped like a valid id, so a huge value never reaches events or logs.
            return str(value).strip()[:MAX_ID_LENGTH]
    return None
