"""The ticket's custom search attributes: what operators filter on in the Temporal UI.

One list, used by the workflow to upsert, by the dev stack and the cluster helper to
register, and checked against `temporal-dev.yml` by a test. No personal data goes here:
search attributes are never encrypted.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeIndexedValueType as IndexedType
from temporalio.common import SearchAttributeKey

TICKET_STATUS = SearchAttributeKey.for_keyword("TicketStatus")
TICKET_PRIORITY = SearchAttributeKey.for_keyword("TicketPriority")
TICKET_CATEGORY = SearchAttributeKey.for_keyword("TicketCategory")
TICKET_TOPIC = SearchAttributeKey.for_keyword("TicketTopic")
TICKET_CHANNEL = SearchAttributeKey.for_keyword("TicketChannel")
TICKET_TIER = SearchAttributeKey.for_keyword("TicketTier")
TICKET_DEPARTMENTS = SearchAttributeKey.for_keyword_list("TicketDepartments")
TICKET_TAGS = SearchAttributeKey.for_keyword_list("TicketTags")
TICKET_SLA_DEADLINE = SearchAttributeKey.for_datetime("TicketSlaDeadline")
TICKET_SLA_BREACHED = SearchAttributeKey.for_bool("TicketSlaBreached")
TICKET_ESCALATED = SearchAttributeKey.for_bool("TicketEscalated")
TICKET_ROOT_CAUSE = SearchAttributeKey.for_keyword("TicketRootCause")
# The SLA clock stopped while the ticket waits on the customer, and the
# earliest promise still to keep (first response, SLA warning, SLA, escalation step):
# `TicketNextDeadline < "<in an hour>"` finds what is about to warn or breach.
TICKET_SLA_PAUSED = SearchAttributeKey.for_bool("TicketSlaPaused")
TICKET_NEXT_DEADLINE = SearchAttributeKey.for_datetime("TicketNextDeadline")

ALL = (
    TICKET_STATUS,
    TICKET_PRIORITY,
    TICKET_CATEGORY,
    TICKET_TOPIC,
    TICKET_CHANNEL,
    TICKET_TIER,
    TICKET_DEPARTMENTS,
    TICKET_TAGS,
    TICKET_SLA_DEADLINE,
    TICKET_SLA_BREACHED,
    TICKET_ESCALATED,
    TICKET_ROOT_CAUSE,
    TICKET_SLA_PAUSED,
    TICKET_NEXT_DEADLINE,
)

# The names the `temporal` CLI and temporal-dev.yml use for each value type.
CLI_TYPE_NAMES: dict[IndexedType, str] = {
    IndexedType.KEYWORD: "Keyword",
    IndexedType.KEYWORD_LIST: "KeywordList",
    IndexedType.DATETIME: "Datetime",
    IndexedType.BOOL: "Bool",
    IndexedType.TEXT: "Text",
    IndexedType.INT: "Int",
    IndexedType.DOUBLE: "Double",
}


def cli_declarations() -> dict[str, str]:
    """`{"TicketStatus": "Keyword", ...}` as `temporal server start-dev --search-attribute` wants."""
    return {key.name: CLI_TYPE_NAMES[key.indexed_value_type] for key in ALL}
