"""Command-line options: the ones every HTTP command takes, and one per field of an API
body model, so each command line follows the API's models."""

from __future__ import annotations

import argparse
import json
import types
from enum import Enum
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel

from cli.http import API_KEY_ENV, API_URL_ENV
from workflows.contracts import Action
from workflows.review_contracts import ReviewAction


def common_options() -> argparse.ArgumentParser:
    """--json, --url and --api-key: every command that calls the HTTP API takes them."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON instead of a table")
    common.add_argument("--url", default=None, help=f"API base URL (default ${API_URL_ENV})")
    common.add_argument("--api-key", default=None, help=f"API key (default ${API_KEY_ENV})")
    return common


def add_model_options(parser: argparse.ArgumentParser, model: type[BaseModel]) -> None:
    """One option per body field, so the command line follows the API's models."""
    for name, field in model.model_fields.items():
        flag = "--" + name.replace("_", "-")
        annotation = _unwrap_optional(field.annotation)
        required = field.is_required()
        if annotation is bool:
            parser.add_argument(flag, dest=name, action="store_true", default=None)
        elif get_origin(annotation) is list:
            parser.add_argument(flag, dest=name, nargs="+", required=required, metavar="VALUE")
        elif isinstance(annotation, type) and issubclass(annotation, Enum):
            parser.add_argument(
                flag, dest=name, required=required, choices=[m.value for m in annotation]
            )
        else:
            parser.add_argument(flag, dest=name, required=required)


def _unwrap_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        inner = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(inner) == 1:
            return _unwrap_optional(inner[0])
    if hasattr(annotation, "__metadata__"):  # Annotated[...]
        return _unwrap_optional(get_args(annotation)[0])
    return annotation


def request_body(args: argparse.Namespace, model: type[BaseModel]) -> dict[str, Any]:
    fields = {name: getattr(args, name, None) for name in model.model_fields}
    return {name: _objects(value) for name, value in fields.items() if value is not None}


def _objects(value: Any) -> Any:
    """List items written as JSON objects (`--follow-ups '{"kind": ...}'`) are objects."""
    if isinstance(value, list):
        return [json.loads(v) if isinstance(v, str) and v.startswith("{") else v for v in value]
    return value


def summary(action: type[Action] | type[ReviewAction]) -> str:
    first = (action.__doc__ or action.__name__).split("\n\n")[0]
    return " ".join(first.split())
