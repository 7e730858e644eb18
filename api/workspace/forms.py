"""The action forms of the ticket page, derived from the table of actions as the routes
and the CLI are: one form per action, one widget per field of the action's request body
(`api.schemas.ACTION_REQUESTS`), and the way back from the submitted form to that body.
An action added to the table appears here with nothing to write."""

from __future__ import annotations

import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum, StrEnum
from typing import Any, Union, get_args, get_origin
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime
from pydantic.fields import FieldInfo

from api.schemas import ACTION_REQUESTS
from api.settings import parse_duration
from workflows.contracts import ACTIONS, Action, AddNote, Respond, action_name

# Fields whose words run to sentences.
_LONG = frozenset(
    {"message", "text", "note", "reason", "problem", "long_term_plan", "decision", "compensation"}
)
# Written by the composer, not by a form of the actions panel.
COMPOSER = (Respond, AddNote)


class Kind(StrEnum):
    TEXT = "text"
    TEXTAREA = "textarea"
    SELECT = "select"
    MULTISELECT = "multiselect"
    LINES = "lines"
    CHECKBOX = "checkbox"
    DATETIME = "datetime"
    DURATION = "duration"


@dataclass(frozen=True)
class Widget:
    name: str
    kind: Kind
    required: bool
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class ActionForm:
    action: type[Action]
    name: str  # the update's name, e.g. post_progress
    route: str
    widgets: tuple[Widget, ...]

    @property
    def for_departments(self) -> bool:
        return self.action.for_departments


def _unwrap(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        inner = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(inner) == 1:
            return _unwrap(inner[0])
    if hasattr(annotation, "__metadata__"):
        return _unwrap(get_args(annotation)[0])
    return annotation


def _widget(name: str, field: FieldInfo, departments: Sequence[str]) -> Widget:
    annotation = _unwrap(field.annotation)
    required = field.is_required()
    if annotation is bool:
        return Widget(name, Kind.CHECKBOX, False)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return Widget(name, Kind.SELECT, required, tuple(m.value for m in annotation))
    if get_origin(annotation) is list:
        if name == "departments":
            return Widget(name, Kind.MULTISELECT, required, tuple(departments))
        return Widget(name, Kind.LINES, required)
    if annotation in (datetime, AwareDatetime):
        return Widget(name, Kind.DATETIME, required)
    if annotation is timedelta:
        return Widget(name, Kind.DURATION, required)
    if name == "department":
        return Widget(name, Kind.SELECT, required, tuple(departments))
    return Widget(name, Kind.TEXTAREA if name in _LONG else Kind.TEXT, required)


def action_forms(departments: Sequence[str]) -> list[ActionForm]:
    """Every action of the table, in its order, with a widget per body field."""
    forms = []
    for action in ACTIONS:
        body = ACTION_REQUESTS[action]
        widgets = tuple(
            _widget(name, field, departments)
            for name, field in body.model_fields.items()
            if name not in ("action_id", "actor_id")
        )
        forms.append(ActionForm(action, action_name(action), action.route, widgets))
    return forms


class FormError(ValueError):
    """A value the form cannot turn into the action's body, with the field named."""


def form_body(form: ActionForm, data: Mapping[str, list[str]], time_zone: str) -> dict[str, Any]:
    """The request body from the submitted fields: empty optional fields are left out,
    lines become lists, local times are read in the agent's zone."""
    body: dict[str, Any] = {}
    for widget in form.widgets:
        values = [value for value in data.get(widget.name, []) if value.strip()]
        if widget.kind is Kind.CHECKBOX:
            body[widget.name] = bool(values)
            continue
        if widget.kind is Kind.MULTISELECT:
            if values:
                body[widget.name] = values
            continue
        if not values:
            continue
        value = values[0]
        if widget.kind is Kind.LINES:
            body[widget.name] = [line.strip() for line in value.splitlines() if line.strip()]
        elif widget.kind is Kind.DATETIME:
            try:
                local = datetime.fromisoformat(value)
            except ValueError:
                raise FormError(f"{widget.name}: not a date and time: {value!r}") from None
            if local.tzinfo is None:
                local = local.replace(tzinfo=ZoneInfo(time_zone))
            body[widget.name] = local.isoformat()
        elif widget.kind is Kind.DURATION:
            # "4h", "90m"; anything else is refused by the body's own validation.
            body[widget.name] = parse_duration(value.strip())
        else:
            body[widget.name] = value
    return body
