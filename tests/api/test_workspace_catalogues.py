"""The workspace's catalogues (api/workspace/locale): every string the code marks is
translated in every language, with its placeholders; the committed files are exactly
what `make catalogues` writes; labels cover every value shown; and the words reach the
page in the agent's language. Pure: no servers."""

from __future__ import annotations

import io
import re

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.plurals import get_plural
from jinja2 import Environment, TemplateSyntaxError, nodes
from jinja2.ext import babel_extract

from api.settings import WorkspaceSettings
from api.workspace import catalogues, i18n
from api.workspace.labels import LABELS, unlabelled
from workflows.contracts import Deadlines

LOCALES = WorkspaceSettings().locales
PLACEHOLDER = re.compile(r"%\((\w+)\)[-#0 +]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]")


@pytest.fixture(scope="module")
def template() -> Catalog:
    return catalogues.extract()


def _catalogue(locale: str) -> Catalog:
    found = catalogues.read(locale)
    assert found is not None, f"no catalogue at {catalogues.po_path(locale)}"
    return found


def _strings(message: Message) -> tuple[str, ...]:
    said = message.string
    return tuple(said) if isinstance(said, (tuple, list)) else (said or "",)


def _ids(message: Message) -> tuple[str, ...]:
    return tuple(message.id) if isinstance(message.id, (tuple, list)) else (message.id,)


def _placeholders(text: str) -> list[str]:
    return sorted(match.group(0) for match in PLACEHOLDER.finditer(text))


def test_the_extraction_finds_the_templates_and_the_labels(template: Catalog) -> None:
    ids = {message.id for message in template}
    assert {"Queue", "since %(time)s", "Sign in"} <= ids  # templates
    assert set(LABELS.values()) <= ids  # N_ in labels.py
    assert "My open tickets" in ids  # N_ in queue.py


@pytest.mark.parametrize("locale", LOCALES)
def test_every_marked_string_is_translated(locale: str, template: Catalog) -> None:
    catalogue = _catalogue(locale)
    untranslated = []
    for wanted in template:
        if not wanted.id:
            continue
        found = catalogue.get(wanted.id, wanted.context)
        if found is None or found.fuzzy or not all(_strings(found)):
            untranslated.append(wanted.id)
    assert untranslated == []


@pytest.mark.parametrize("locale", LOCALES)
def test_translations_keep_the_placeholders(locale: str) -> None:
    wrong = []
    for message in _catalogue(locale):
        if not message.id:
            continue
        ids, strings = _ids(message), _strings(message)
        # A number formats as %s, %d and %f alike.
        values = {name: 7 for text in ids for name in PLACEHOLDER.findall(text)}
        if len(ids) == 1:
            fits = _placeholders(strings[0]) == _placeholders(ids[0])
        else:
            # Plural forms: any form may leave the count out (English "One ticket"), but
            # the general form, the last, says what the plural msgid says.
            every = set(_placeholders(ids[0])) | set(_placeholders(ids[1]))
            fits = all(set(_placeholders(s)) <= every for s in strings) and _placeholders(
                strings[-1]
            ) == _placeholders(ids[1])
            values["num"] = 7
        try:
            for text in strings:
                if values:
                    text % values  # a stray "%" raises here
        except (ValueError, TypeError, KeyError):
            fits = False
        if not fits:
            wrong.append((message.id, message.string))
    assert wrong == []


@pytest.mark.parametrize("locale", LOCALES)
def test_plural_forms_fit_the_language(locale: str) -> None:
    catalogue = _catalogue(locale)
    expected = get_plural(locale.replace("-", "_"))
    assert catalogue.num_plurals == expected.num_plurals
    assert catalogue.plural_expr == expected.plural_expr
    assert f"Plural-Forms: {expected.plural_forms}" in catalogues.po_path(locale).read_text(
        encoding="utf-8"
    )


def test_the_committed_catalogues_are_what_make_catalogues_writes() -> None:
    """Nothing added, nothing obsolete, nothing moved: running the update is a no-op."""
    updates = catalogues.plan()
    assert {step.locale for step in updates} >= set(LOCALES)
    assert [
        (step.locale, step.added, [m.id for m in step.dropped]) for step in updates if step.changed
    ] == []
    for locale in LOCALES:
        assert "#~" not in catalogues.po_path(locale).read_text(encoding="utf-8")
        assert not _catalogue(locale).obsolete


def test_an_update_keeps_translations_adds_new_strings_empty_and_drops_the_unused() -> None:
    shrunk = Catalog(domain=i18n.DOMAIN)
    shrunk.add("Queue", locations=[("api/workspace/templates/base.html", 1)])
    shrunk.add("A string nobody translated yet", locations=[("api/workspace/x.html", 1)])
    before = catalogues.po_path("zh-Hant").read_bytes()

    step = catalogues.update("zh-Hant", shrunk)

    assert step.changed
    assert step.catalog["Queue"].string == "工單佇列"
    assert step.added == ["A string nobody translated yet"]
    assert [m.id for m in catalogues.missing(step.catalog)] == ["A string nobody translated yet"]
    assert ("Sign in", "登入") in [(m.id, m.string) for m in step.dropped]
    assert "Sign in" not in step.text
    assert catalogues.po_path("zh-Hant").read_bytes() == before  # nothing written


def test_a_template_that_does_not_parse_stops_the_extraction() -> None:
    """Silently skipping it would drop all its strings from every catalogue."""
    _, options = catalogues.mapping()
    broken = io.BytesIO(b'{{ _("Queue") }} {% if %}')
    with pytest.raises(TemplateSyntaxError):
        list(babel_extract(broken, ["_"], [], options["templates/**.html"]))


def test_every_value_shown_has_a_label() -> None:
    assert unlabelled() == []
    assert sorted(set(Deadlines.model_fields) - set(LABELS)) == []


def _template_calls() -> list[tuple[str, nodes.Call]]:
    environment = Environment()
    calls = []
    for path in sorted((catalogues.HERE / "templates").glob("*.html")):
        tree = environment.parse(path.read_text(encoding="utf-8"))
        calls += [(path.name, call) for call in tree.find_all(nodes.Call)]
    return calls


def test_the_templates_label_only_known_values() -> None:
    """`label("...")` with a literal in a template reads LABELS; a missing key would show
    the raw value in every language."""
    unknown = [
        (name, arg.value)
        for name, call in _template_calls()
        if isinstance(call.node, nodes.Name) and call.node.name == "label"
        for arg in call.args
        if isinstance(arg, nodes.Const) and arg.value not in LABELS
    ]
    assert unknown == []


def test_the_templates_mark_strings_as_the_extraction_reads_them() -> None:
    """Jinja2's extractor sees `_("...")`, not `words.gettext("...")`: a string marked so
    would never reach a catalogue."""
    hidden = [
        (name, call.node.attr)
        for name, call in _template_calls()
        if isinstance(call.node, nodes.Getattr)
        and call.node.attr in ("gettext", "ngettext", "_")
        and any(isinstance(arg, nodes.Const) for arg in call.args)
    ]
    assert hidden == []


def test_words_speak_the_agents_language_and_english_otherwise() -> None:
    taipei = i18n.Words("zh-Hant", "Asia/Taipei")
    shanghai = i18n.Words("zh-Hans", "Asia/Shanghai")
    assert taipei.gettext("Queue") == "工單佇列"
    assert shanghai.gettext("Queue") == "工单队列"
    assert i18n.Words("en", "UTC").gettext("Queue") == "Queue"
    assert taipei.gettext(LABELS["waiting_on_customer"]) == "待客戶回覆"
    assert shanghai.gettext(LABELS["waiting_on_customer"]) == "待客户回复"
    assert taipei.gettext("since %(time)s", time="10:00") == "自 10:00 起"
    # A language without a catalogue reads the source.
    assert i18n.Words("fr", "Europe/Paris").gettext("Queue") == "Queue"
    assert i18n.Words("fr", "Europe/Paris").gettext("since %(time)s", time="10:00") == (
        "since 10:00"
    )
