"""Pydantic models of the input record and the output documents: the tests' contract.

They live with the tests because only the tests use them. The normalizer's hot path does
not build these (validating every event through pydantic
costs more than the rest of the work together); it resolves the same alias tables and calls
the same parsers. The models are the specification that tests hold the fast path to: every
emitted document validates against ``EventDocument`` or ``ChangeDocument`` (unknown fields
are errors), and ``AuditRecord`` resolves an input record the way the pipeline does.
``field_names`` lists the dotted names the index mappings must cover.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    AliasPath,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)

from agent.normalize import aliases as A
from agent.normalize import fields as F
from agent.normalize.timestamps import parse_time


def _choices(paths: tuple[A.Path, ...]) -> AliasChoices:
    return AliasChoices(*(path[0] if len(path) == 1 else AliasPath(*path) for path in paths))


def _keyword(value: Any) -> str | None:
    return None if value is None else F.text(value, 1024)


Keyword = Annotated[str | None, BeforeValidator(_keyword)]
UtcTime = Annotated[str, BeforeValidator(parse_time)]


def _present(value: Any) -> bool:
    return value is not None and value != ""


class AuditRecord(BaseModel):
    """One input record with its aliases resolved (``agent/normalize/aliases.py``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: Keyword = Field(None, validation_alias=_choices(A.ID))
    time: UtcTime = Field(validation_alias=_choices(A.TIME))
    action: Annotated[str, Field(min_length=1)] = Field(validation_alias=_choices(A.ACTION))
    type: Annotated[str | None, BeforeValidator(F.audit_type)] = Field(
        None, validation_alias=_choices(A.TYPE)
    )
    user_id: Keyword = Field(None, validation_alias=_choices(A.USER_ID))
    user_email: Keyword = Field(None, validation_alias=_choices(A.USER_EMAIL))
    user_name: Keyword = Field(None, validation_alias=_choices(A.USER_NAME))
    target_id: Keyword = Field(None, validation_alias=_choices(A.TARGET_ID))
    target_email: Keyword = Field(None, validation_alias=_choices(A.TARGET_EMAIL))
    target_name: Keyword = Field(None, validation_alias=_choices(A.TARGET_NAME))
    flow_id: Keyword = Field(None, validation_alias=_choices(A.FLOW_ID))
    entity_type: Keyword = Field(None, validation_alias=_choices(A.ENTITY_TYPE))
    entity_id: Keyword = Field(None, validation_alias=_choices(A.ENTITY_ID))
    entity_name: Keyword = Field(None, validation_alias=_choices(A.ENTITY_NAME))
    tenant_id: Keyword = Field(None, validation_alias=_choices(A.TENANT_ID))
    ip: Annotated[str | None, BeforeValidator(F.ip)] = Field(None, validation_alias=_choices(A.IP))
    user_agent: Keyword = Field(None, validation_alias=_choices(A.USER_AGENT))
    before: Any = None
    after: Any = None
    diff: Any = Field(None, validation_alias=_choices(A.DIFF))
    outcome: Annotated[str | None, BeforeValidator(F.outcome)] = Field(
        None, validation_alias=_choices(A.OUTCOME)
    )
    data: Any = Field(None, validation_alias=_choices(A.DATA))
    reason: Keyword = Field(None, validation_alias=_choices(A.REASON))

    @model_validator(mode="before")
    @classmethod
    def _prepare(cls, line: Any, info: ValidationInfo) -> Any:
        """The pipeline's rules, so that pydantic's own alias lookup agrees with it: an
        envelope unwraps, ``null`` and ``""`` count as absent, a plain-string ``user``,
        ``actor``, ``flow``, ``tenant`` or ``target`` is the reference itself, and header
        names are case-insensitive."""
        if not isinstance(line, dict):
            return line
        envelope_key = (info.context or {}).get("envelope_key", "audit")
        record, _prefix, envelope_time = A.unwrap(line, envelope_key)
        prepared: dict[str, Any] = {}
        for key, given in record.items():
            value = given
            if not _present(value):
                continue
            if isinstance(value, dict) and key in A.REFERENCE_HOLDERS | {"entity", "headers"}:
                value = {
                    (inner.lower() if key == "headers" else inner): item
                    for inner, item in value.items()
                    if _present(item)
                }
            elif isinstance(value, str) and key in A.REFERENCE_HOLDERS:
                if not value.strip():
                    continue
                value = {"email" if "@" in value else "id": value}
            prepared[key] = value
        if not any(path[0] in prepared for path in A.TIME) and envelope_time is not None:
            prepared["time"] = envelope_time
        return prepared


# --- output -------------------------------------------------------------------------------

Text = Annotated[str, Field(min_length=1)]
UtcText = Annotated[str, Field(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class EventFields(_Strict):
    id: Text
    kind: Literal["event"]
    category: list[Text] = Field(min_length=1)
    type: list[Text] = Field(min_length=1)
    outcome: Literal["success", "failure"]
    action: Text
    dataset: Literal["appmixer.audit"]
    module: Literal["appmixer"]
    hash: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    reason: Text | None = None


class TargetUser(_Strict):
    id: Text | None = None
    email: Text | None = None
    name: Text | None = None


class UserChanges(_Strict):
    roles: list[Text] = Field(min_length=1)


class UserFields(_Strict):
    id: Text | None = None
    email: Text | None = None
    name: Text | None = None
    target: TargetUser | None = None
    changes: UserChanges | None = None


class Rendered(_Strict):
    """One change as stored in ``appmixer.audit.changes``."""

    path: str
    op: Literal["add", "remove", "replace"]
    old: str | None = None
    new: str | None = None


class AuditFields(_Strict):
    type: Literal["create", "update", "delete", "access"]
    group: Text | None = None
    catalog: bool
    changes: list[Rendered] | None = Field(None, min_length=1)
    changes_count: Annotated[int, Field(ge=0)]
    changes_truncated: bool
    before: Any = None
    after: Any = None
    data: Any = None


class Ref(_Strict):
    id: Text


class EntityFields(_Strict):
    type: Text | None = None
    id: Text | None = None
    name: Text | None = None


class RelatedIds(_Strict):
    id: list[Text] = Field(min_length=1)


class AppmixerFields(_Strict):
    audit: AuditFields
    flow: Ref | None = None
    entity: EntityFields | None = None
    tenant: Ref | None = None
    related: RelatedIds | None = None


class FileFields(_Strict):
    path: Text


class LogFields(_Strict):
    file: FileFields
    offset: Annotated[int, Field(ge=0)]


class DataStream(_Strict):
    type: Literal["logs"]
    dataset: Literal["appmixer.audit", "appmixer.audit_changes"]
    namespace: Text


class SourceFields(_Strict):
    ip: Text


class UserAgentFields(_Strict):
    original: Text


class RelatedFields(_Strict):
    user: list[Text] | None = Field(None, min_length=1)
    ip: list[Text] | None = Field(None, min_length=1)


class HostFields(_Strict):
    name: Text


class AgentFields(_Strict):
    type: Literal["appmixer-audit"]
    version: Text


class EcsFields(_Strict):
    version: Text


class OrganizationFields(_Strict):
    id: Text


class EventDocument(_Strict):
    """A document of ``logs-appmixer.audit-<namespace>``."""

    timestamp: UtcText = Field(alias="@timestamp")
    event: EventFields
    message: Text
    user: UserFields | None = None
    source: SourceFields | None = None
    user_agent: UserAgentFields | None = None
    related: RelatedFields | None = None
    appmixer: AppmixerFields
    organization: OrganizationFields | None = None
    log: LogFields
    host: HostFields
    agent: AgentFields
    ecs: EcsFields
    data_stream: DataStream


class ChangeEvent(_Strict):
    id: Text
    kind: Literal["enrichment"]
    action: Text
    dataset: Literal["appmixer.audit_changes"]


class ChangeUser(_Strict):
    id: Text | None = None
    email: Text | None = None


class ChangeAudit(_Strict):
    type: Literal["create", "update", "delete", "access"]


class ChangeEntity(_Strict):
    type: Text | None = None
    id: Text | None = None


class ChangeFields(Rendered):
    index: Annotated[int, Field(ge=0)]


class ChangeAppmixer(_Strict):
    audit: ChangeAudit
    flow: Ref | None = None
    entity: ChangeEntity | None = None
    change: ChangeFields


class ChangeDocument(_Strict):
    """A document of ``logs-appmixer.audit_changes-<namespace>``: one row of a diff table."""

    timestamp: UtcText = Field(alias="@timestamp")
    event: ChangeEvent
    message: Text
    user: ChangeUser | None = None
    appmixer: ChangeAppmixer
    data_stream: DataStream


def field_names(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every leaf field of a document model, dotted, as the index mappings name them."""
    names: list[str] = []
    for name, info in model.model_fields.items():
        key = prefix + (info.alias or name)
        annotation = info.annotation
        nested = _model_in(annotation)
        if nested is not None and key not in _OPAQUE:
            names.extend(field_names(nested, key + "."))
        else:
            names.append(key)
    return names


# Stored whole: any JSON inside (states, data) or one flattened field (changes).
_OPAQUE = frozenset(
    {
        "appmixer.audit.before",
        "appmixer.audit.after",
        "appmixer.audit.data",
        "appmixer.audit.changes",
    }
)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
