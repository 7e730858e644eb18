"""`ticketflow ticket …` and `ticketflow keys create` against the API served by uvicorn,
as `ticketflow api` and `make dev` serve it."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from api.access import hash_key
from tests.api.conftest import Stack
from workers.cli import main


async def cli(*argv: str) -> int:
    # main() is synchronous, like the console script; the API answers on this loop.
    return await asyncio.to_thread(main, list(argv))


async def test_ticket_commands_through_the_served_api(
    stack: Stack, served: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TICKETFLOW_API_URL", served)
    monkeypatch.setenv("TICKETFLOW_API_KEY", stack.keys["agent"])

    assert (
        await cli(
            "ticket",
            "open",
            "--channel",
            "email",
            "--customer",
            "c-77",
            "--subject",
            "无法提现",
            "--description",
            "提现失败",
            "--json",
        )
        == 0
    )
    opened = json.loads(capsys.readouterr().out)
    tid = opened["ticket_id"]
    assert opened["created"] is True

    assert await cli("ticket", "show", tid) == 0
    table = capsys.readouterr().out
    assert tid in table
    assert "waiting for" in table
    assert "first response" in table

    assert await cli("ticket", "act", tid, "respond", "--message", "正在处理") == 0
    assert "in_progress" in capsys.readouterr().out
    assert (
        await cli(
            "ticket",
            "act",
            tid,
            "dispatch",
            "--departments",
            "tech",
            "finance",
            "--note",
            "查通道",
            "--json",
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["open_work_orders"] == ["finance", "tech"]

    assert (
        await cli(
            "ticket",
            "act",
            tid,
            "resolve",
            "--result-kind",
            "technical",
            "--message",
            "好了",
            "--root-cause",
            "產品缺陷-提現",
        )
        == 1
    )
    error = capsys.readouterr().err
    assert error.startswith("ticketflow ticket: 409 action_rejected: open work orders at")
    assert error.count("\n") == 1

    await stack.settled(tid)
    assert await cli("ticket", "events", tid) == 0
    events = capsys.readouterr().out
    assert events.splitlines()[0].split()[:3] == ["SEQ", "OCCURRED", "AT"]
    assert "ticket_opened" in events
    assert "dispatched" in events

    assert (
        await cli("ticket", "list", "--status", "waiting_on_department", "--limit", "200", "--json")
        == 0
    )
    assert tid in {item["ticket_id"] for item in json.loads(capsys.readouterr().out)["items"]}
    assert await cli("ticket", "list", "--department", "tech", "--limit", "5") == 0
    assert capsys.readouterr().out.startswith("TICKET")


async def test_retried_commands_apply_once(
    stack: Stack, served: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`open --key` and `act --action-id` are safe to run again; the thread shows the words."""
    monkeypatch.setenv("TICKETFLOW_API_URL", served)
    monkeypatch.setenv("TICKETFLOW_API_KEY", stack.keys["agent"])
    opening = ["ticket", "open", "--channel", "web_form", "--customer", "c-9"]
    opening += ["--subject", "会员扣费两次", "--description", "本月会员费扣了两次"]

    assert await cli(*opening) == 0
    first = capsys.readouterr().out
    key = next(line.split()[1] for line in first.splitlines() if line.startswith("key "))
    tid = next(line.split()[1] for line in first.splitlines() if line.startswith("ticket "))
    assert await cli(*opening, "--key", key, "--json") == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["ticket_id"], again["created"], again["idempotency_key"]) == (tid, False, key)

    assert await cli("ticket", "act", tid, "respond", "--message", "已退回一笔", "--json") == 0
    action_id = json.loads(capsys.readouterr().out)["action_id"]
    assert action_id.startswith("cli-")
    resend = ["ticket", "act", tid, "respond", "--message", "已退回一笔", "--action-id", action_id]
    assert await cli(*resend) == 0
    shown = capsys.readouterr().out.splitlines()
    assert next(line.split()[2] for line in shown if line.startswith("action id")) == action_id

    monkeypatch.setenv("TICKETFLOW_API_KEY", stack.keys["backend"])
    reply = ["ticket", "customer-reply", tid, "--reply-id", "sms-1", "--kind", "message"]
    assert await cli(*reply, "--text", "收到, 谢谢") == 0
    assert "accepted" in capsys.readouterr().out

    monkeypatch.setenv("TICKETFLOW_API_KEY", stack.keys["agent"])
    await stack.settled(tid)
    assert await cli("ticket", "thread", tid) == 0
    thread = capsys.readouterr().out
    assert thread.splitlines()[0].split() == ["AT", "WHO", "FOR", "CHANNEL", "SAID"]
    assert thread.count("已退回一笔") == 1
    assert "customer c-9" in thread
    assert "收到, 谢谢" in thread
    assert "本月会员费扣了两次" in thread


async def test_cli_errors_are_one_line_and_a_failure(
    stack: Stack, served: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TICKETFLOW_API_KEY", raising=False)
    assert await cli("ticket", "show", "ticket-0", "--url", served) == 1
    assert "no API key" in capsys.readouterr().err

    monkeypatch.setenv("TICKETFLOW_API_KEY", stack.keys["backend"])
    assert await cli("ticket", "list", "--url", served) == 1
    assert (
        capsys.readouterr().err
        == "ticketflow ticket: 403 forbidden: role backend may not list tickets\n"
    )
    assert await cli("ticket", "show", "ticket-" + "0" * 24, "--url", served) == 1
    assert "404 ticket_not_found" in capsys.readouterr().err
    assert (
        await cli(
            "ticket",
            "act",
            "ticket-" + "0" * 24,
            "classify",
            "--category",
            "technical_fault",
            "--topic",
            "login",
            "--priority",
            "A",
            "--reason",
            "x",
            "--url",
            served,
            "--api-key",
            stack.keys["department:tech"],
        )
        == 1
    )
    assert "403 forbidden" in capsys.readouterr().err

    assert await cli("ticket", "show", "ticket-0", "--url", "http://127.0.0.1:1") == 1
    error = capsys.readouterr().err
    assert "cannot reach the API at http://127.0.0.1:1" in error
    assert error.count("\n") == 1


def test_keys_create_prints_the_key_once_and_its_entry(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["keys", "create", "--role", "department:finance", "--name", "finance-bot", "--json"])
        == 0
    )
    created = json.loads(capsys.readouterr().out)
    assert created["key"].startswith("tfk_")
    assert created["sha256"] == hash_key(created["key"])
    assert (created["name"], created["role"]) == ("finance-bot", "department:finance")

    assert main(["keys", "create", "--role", "agent"]) == 0
    table = capsys.readouterr().out
    assert table.startswith("key ")
    assert '"role": "agent"' in table

    assert main(["keys", "create", "--role", "boss"]) == 1
    assert "unknown role 'boss'" in capsys.readouterr().err


async def test_erase_customer_through_the_served_api(
    stack: Stack, served: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TICKETFLOW_API_URL", served)
    customer = f"cust-{uuid.uuid4().hex[:10]}"
    ticket_id = (await stack.open(customer_id=customer, subject="erase-me 续费"))["ticket_id"]
    closed = await stack.act(
        ticket_id, "closure", {"long_term_plan": "下个版本", "root_cause": "需求缺口-會員續費"}
    )
    assert closed.status_code == 200
    await stack.settled(ticket_id)

    monkeypatch.setenv("TICKETFLOW_API_KEY", stack.keys["agent"])
    assert await cli("erase-customer", customer) == 1  # operators only
    assert "may not erase customers' data" in capsys.readouterr().err
    monkeypatch.setenv("TICKETFLOW_API_KEY", stack.keys["operator"])
    assert await cli("erase-customer", customer, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tickets"] == [ticket_id] and report["pseudonym"].startswith("erased-")
    assert await cli("erase-customer", customer) == 0  # again: nothing left to erase
    table = capsys.readouterr().out
    assert "tickets" in table and "pseudonym" in table and "erased-" not in table
    subject = await stack.pool.fetchval(
        "SELECT subject FROM tickets WHERE ticket_id = $1", ticket_id
    )
    assert subject is None


def _row(table: str, label: str) -> str:
    """The value of a `label  value` line of a table."""
    line = next(line for line in table.splitlines() if line.startswith(label + "  "))
    return line.removeprefix(label).strip()


async def test_a_resolved_and_a_closed_ticket_show_no_next_deadline_not_none(
    stack: Stack, served: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TICKETFLOW_API_URL", served)
    monkeypatch.setenv("TICKETFLOW_API_KEY", stack.keys["agent"])
    tid = (await stack.open(subject="提现失败", description="提现一直失败"))["ticket_id"]
    assert await cli("ticket", "show", tid) == 0
    due = _row(capsys.readouterr().out, "next deadline")
    assert due != "-" and "None" not in due

    assert await cli("ticket", "act", tid, "respond", "--message", "在查") == 0
    resolve = ["--result-kind", "technical", "--message", "已修复", "--root-cause", "產品缺陷-提現"]
    assert await cli("ticket", "act", tid, "resolve", *resolve) == 0
    assert "None" not in _row(capsys.readouterr().out, "next deadline")
    assert await cli("ticket", "act", tid, "close", "--long-term-plan", "下个版本修复") == 0
    closed = capsys.readouterr().out
    assert _row(closed, "status") == "closed"
    assert _row(closed, "next deadline") == "-"
    assert "None" not in closed


async def test_the_resend_hint_only_where_resending_can_help(
    stack: Stack, served: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TICKETFLOW_API_URL", served)
    monkeypatch.setenv("TICKETFLOW_API_KEY", stack.keys["agent"])
    tid = (await stack.open())["ticket_id"]
    close = ["ticket", "act", tid, "close", "--long-term-plan", "下个版本"]
    close += ["--root-cause", "需求缺口-會員續費"]
    assert await cli(*close) == 0
    capsys.readouterr()

    assert await cli(*close) == 1  # 409: the ticket is closed; the same again is too
    refused = capsys.readouterr().err
    assert refused.startswith("ticketflow ticket: 409 ")
    assert "--action-id" not in refused

    assert await cli(*close, "--api-key", stack.keys["department:tech"]) == 1  # 403
    forbidden = capsys.readouterr().err
    assert "403 forbidden" in forbidden and "--action-id" not in forbidden

    opening = ["ticket", "open", "--channel", "email", "--customer", "c-1"]
    opening += ["--subject", "x", "--description", "y"]
    assert await cli(*opening, "--api-key", stack.keys["department:tech"]) == 1
    assert "--key" not in capsys.readouterr().err

    # No answer at all: it may or may not have been applied, and resending is safe.
    assert await cli(*close, "--url", "http://127.0.0.1:1") == 1
    unreached = capsys.readouterr().err
    assert "cannot reach the API" in unreached and "--action-id cli-" in unreached


def _local(instant: str, zone: str) -> str:
    """How a person in `zone` writes an instant, offset included."""
    local = datetime.fromisoformat(instant).astimezone(ZoneInfo(zone))
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M:%S} {offset[:3]}:{offset[3:]}"


async def test_tables_show_times_in_the_policys_zone_with_the_offset(
    stack: Stack, served: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    zone = "Asia/Kolkata"  # +05:30: neither UTC nor the default policy's +08:00
    monkeypatch.setenv("TICKETFLOW_POLICY__TIME_ZONE", zone)
    monkeypatch.setenv("TICKETFLOW_API_URL", served)
    monkeypatch.setenv("TICKETFLOW_API_KEY", stack.keys["agent"])
    tid = (await stack.open(subject="验证码收不到", description="一直收不到验证码"))["ticket_id"]
    await stack.settled(tid)

    async def both(*argv: str) -> tuple[Any, str]:
        assert await cli(*argv, "--json") == 0
        answer = json.loads(capsys.readouterr().out)
        assert await cli(*argv) == 0
        return answer, capsys.readouterr().out

    view, table = await both("ticket", "show", tid)
    due = next(at for at in view["deadlines"].values() if at is not None)
    assert _local(due, zone) in table and due not in table
    assert _local(view["next_deadline_at"], zone) in _row(table, "next deadline")

    thread, table = await both("ticket", "thread", tid)
    assert table.splitlines()[1].startswith(_local(thread["entries"][0]["at"], zone))

    events, table = await both("ticket", "events", tid)
    assert _local(events["events"][0]["occurred_at"], zone) in table.splitlines()[1]

    page, table = await both("ticket", "list", "--sort", "newest", "--limit", "200")
    listed = next(item for item in page["items"] if item["ticket_id"] == tid)
    line = next(line for line in table.splitlines() if line.startswith(tid))
    assert _local(listed["opened_at"], zone) in line
    assert "+05:30" in line


async def test_an_erased_ticket_says_so_everywhere_and_keeps_its_thread_in_place(
    stack: Stack, served: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TICKETFLOW_API_URL", served)
    customer = f"cust-{uuid.uuid4().hex[:10]}"
    tid = (await stack.open(customer_id=customer, subject="退款没到", description="退款一周没到"))[
        "ticket_id"
    ]
    await stack.act(tid, "dispatches", {"departments": ["finance"], "note": "查退款"})
    closed = await stack.act(
        tid, "closure", {"long_term_plan": "下个版本", "root_cause": "流程漏洞-退款審核"}
    )
    assert closed.status_code == 200, closed.text
    await stack.settled(tid)
    monkeypatch.setenv("TICKETFLOW_API_KEY", stack.keys["agent"])
    assert await cli("ticket", "thread", tid, "--json") == 0
    before = json.loads(capsys.readouterr().out)["entries"]
    said = {e["kind"]: e["text"] for e in before}
    assert "退款一周没到" in said["ticket_opened"] and said["dispatched"] == "查退款"

    monkeypatch.setenv("TICKETFLOW_API_KEY", stack.keys["operator"])
    assert await cli("erase-customer", customer) == 0
    capsys.readouterr()

    assert await cli("ticket", "show", tid) == 1
    assert capsys.readouterr().err.startswith("ticketflow ticket: 410 ticket_erased: ")

    assert await cli("ticket", "thread", tid, "--json") == 0
    thread = json.loads(capsys.readouterr().out)
    assert thread["erased"] is True
    # Every entry where it was, who and when; the words gone.
    assert [(e["seq"], e["kind"], e["actor"]["role"]) for e in thread["entries"]] == [
        (e["seq"], e["kind"], e["actor"]["role"]) for e in before
    ]
    erased = {e["kind"]: e["text"] for e in thread["entries"]}
    assert erased["ticket_opened"] == erased["dispatched"] == "[erased]"
    assert await cli("ticket", "thread", tid) == 0
    table = capsys.readouterr().out
    assert table.startswith("the customer's data was erased") and "退款" not in table

    assert await cli("ticket", "events", tid, "--json") == 0
    assert json.loads(capsys.readouterr().out)["erased"] is True
    assert await cli("ticket", "events", tid) == 0
    assert capsys.readouterr().out.startswith("the customer's data was erased")

    listing = ["ticket", "list", "--status", "closed", "--sort", "newest", "--limit", "200"]
    assert await cli(*listing, "--json") == 0
    page = json.loads(capsys.readouterr().out)
    assert next(t for t in page["items"] if t["ticket_id"] == tid)["erased"] is True
    assert await cli(*listing) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(tid))
    assert "closed (erased)" in line
