"""The knowledge base over HTTP: entries for agents to read and the `knowledge` role to
edit (create, read, update, delete, import from JSON or CSV), suggestions for a ticket,
and the rendering of a reply script for `respond` with a `script_id`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ValidationError

from api.access import Caller, Rule
from api.deps import Services, Svc, TicketIdPath, known, require
from api.errors import COMMON_RESPONSES, ApiError
from stores.knowledge import (
    Entry,
    EntryBody,
    EntryId,
    TicketFacts,
    parse_import,
    render,
)
from stores.suggestions import Suggestion
from workflows.contracts import Respond, TicketView
from workflows.vocabulary import Category, Topic

knowledge = APIRouter(tags=["knowledge"], responses=COMMON_RESPONSES)
Reader = Annotated[Caller, Depends(require(Rule.KNOWLEDGE_READ))]
Editor = Annotated[Caller, Depends(require(Rule.KNOWLEDGE_EDIT))]
EntryPath = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{1,63}$")]


class NewEntry(EntryBody):
    entry_id: EntryId


class Imported(BaseModel):
    imported: int


class Suggestions(BaseModel):
    ticket_id: str
    suggestions: list[Suggestion]


@knowledge.get("/v1/knowledge")
async def list_entries(
    svc: Svc,
    _reader: Reader,
    kind: Annotated[str | None, Query(pattern="^(faq|script)$")] = None,
    category: Category | None = None,
    topic: Topic | None = None,
) -> list[Entry]:
    """FAQ entries and reply scripts, with every locale's variant."""
    return await svc.call(
        svc.knowledge.entries(
            kind, category.value if category else None, topic.value if topic else None
        )
    )


@knowledge.post("/v1/knowledge", status_code=201)
async def create_entry(body: NewEntry, svc: Svc, editor: Editor) -> Entry:
    created = await svc.call(svc.knowledge.create(body.entry_id, body, editor.name))
    if created is None:
        raise ApiError(409, "conflict", f"entry {body.entry_id} exists; PUT updates it")
    return created


async def _entry(svc: Services, entry_id: str) -> Entry:
    found = await svc.call(svc.knowledge.entry(entry_id))
    if found is None:
        raise ApiError(404, "entry_not_found", f"no knowledge entry {entry_id}")
    return found


@knowledge.get("/v1/knowledge/{entry_id}")
async def show_entry(entry_id: EntryPath, svc: Svc, _reader: Reader) -> Entry:
    return await _entry(svc, entry_id)


@knowledge.put("/v1/knowledge/{entry_id}")
async def update_entry(entry_id: EntryPath, body: EntryBody, svc: Svc, editor: Editor) -> Entry:
    """Create or replace the entry (its version goes up)."""
    return await svc.call(svc.knowledge.put(entry_id, body, editor.name))


@knowledge.delete("/v1/knowledge/{entry_id}", status_code=204)
async def delete_entry(entry_id: EntryPath, svc: Svc, _editor: Editor) -> Response:
    if not await svc.call(svc.knowledge.delete(entry_id)):
        raise ApiError(404, "entry_not_found", f"no knowledge entry {entry_id}")
    return Response(status_code=204)


@knowledge.post(
    "/v1/knowledge/import",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
                "text/csv": {"schema": {"type": "string"}},
            }
        }
    },
)
async def import_entries(request: Request, svc: Svc, editor: Editor) -> Imported:
    """Entries from a JSON list (the shape of GET /v1/knowledge) or CSV (columns entry_id,
    kind, category, topic, tags as `a|b`, question_<locale>, answer_<locale>), each
    created or replaced, all or none."""
    # Bodies are limited as they stream in (api.middleware.MAX_BODY_BYTES): a larger base
    # is imported in several files.
    raw = await request.body()
    try:
        entries = parse_import(raw.decode("utf-8"), request.headers.get("content-type", ""))
    except (ValueError, ValidationError, UnicodeDecodeError) as error:
        raise ApiError(422, "invalid_import", str(error).split("\n For further")[0]) from None
    return Imported(imported=await svc.call(svc.knowledge.import_entries(entries, editor.name)))


@knowledge.get("/v1/tickets/{ticket_id}/suggestions")
async def ticket_suggestions(
    ticket_id: TicketIdPath,
    svc: Svc,
    _caller: Annotated[Caller, Depends(require(Rule.ACT))],
    k: Annotated[int, Query(ge=1, le=20)] = 5,
) -> Suggestions:
    """The FAQ entries and scripts that fit the ticket's words, best first, each with its
    score and why it matched (words in common, closeness of meaning, use on tickets of the
    same category and topic)."""
    view = await svc.call(svc.tickets.view(known(ticket_id)))
    return Suggestions(ticket_id=view.ticket_id, suggestions=await suggestions_for(svc, view, k))


async def suggestions_for(svc: Services, view: TicketView, k: int) -> list[Suggestion]:
    """The ticket's best `k` entries for what it says: its intake and the customer's
    latest words."""
    words = [view.subject, view.description]
    if view.last_message is not None and view.last_message.actor.role.value == "customer":
        words.append(view.last_message.text)
    return await svc.call(
        svc.suggester.suggest(
            " ".join(words),
            view.locale,
            view.classification.category.value,
            view.classification.topic.value,
            k,
        )
    )


async def with_script(svc: Services, ticket_id: str, action: Respond) -> Respond:
    """A reply from a script: its words in the customer's locale with the ticket's data.
    With words of the agent's own (a script edited before sending), the words are kept,
    but the script it names must exist and be a script all the same: the reply's record
    (and the script's use count) never names an entry that is not there."""
    if action.script_id is None:
        return action
    entry = await script_for(svc, action.script_id)
    if action.message is not None:
        return action
    view: TicketView = await svc.call(svc.tickets.view(ticket_id))
    words = script_words(svc, entry, view)
    try:
        return Respond.model_validate(action.model_dump() | {"message": words})
    except ValidationError as error:
        raise ApiError(409, "script_unusable", f"{entry.entry_id}: {error}") from None


async def script_for(svc: Services, entry_id: str) -> Entry:
    """A reply script by id: 404 if there is none, 409 if the entry is an FAQ."""
    entry = await _entry(svc, entry_id)
    if entry.kind != "script":
        raise ApiError(409, "not_a_script", f"{entry.entry_id} is an FAQ entry, not a reply script")
    return entry


def script_words(svc: Services, entry: Entry, view: TicketView) -> str:
    """The script in the customer's locale, with the ticket's data."""
    facts = TicketFacts(
        ticket_id=view.ticket_id,
        tag=view.tag,
        category=view.classification.category.value,
        topic=view.classification.topic.value,
        priority=view.classification.priority.value,
        sla_due=view.deadlines.sla,
        time_zone=svc.time_zone,
    )
    return render(entry, view.locale, facts)
