"""``fieldmon incidents …`` on the collector host: the tracking record by command line."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson

from tests.support.procs import fieldmon


def test_incident_life_by_command_line(tmp_path: Path) -> None:
    cfg = tmp_path / "collector.toml"
    cfg.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/c.db"\n')
    c = ["--config", str(cfg)]
    opened = fieldmon(
        "incidents",
        "open",
        *c,
        "--site",
        "s1",
        "--target",
        "nvr-1",
        "--level",
        "2",
        "--title",
        "recording stopped",
        "--caller-name",
        "Wang Fang",
        "--caller-phone",
        "13800000000",
        "--author",
        "desk",
        "--json",
    )
    assert opened.returncode == 0, opened.stderr
    number = orjson.loads(opened.stdout)["number"]
    for args in (
        ["ack"],
        ["assign", "--to", "li.wei"],
        ["note", "--text", "disk 3 failed"],
        ["level", "--level", "1", "--reason", "all channels lost"],
        ["pause", "--reason", "waiting for the spare disk"],
        ["resume"],
        ["resolve", "--text", "disk replaced, array rebuilt"],
        ["close", "--score", "4", "--comment", "ok"],
    ):
        done = fieldmon("incidents", args[0], number, *args[1:], *c, "--author", "li.wei")
        assert done.returncode == 0, (args, done.stderr)
    wrong = fieldmon("incidents", "resolve", number, "--text", "again", *c)
    assert wrong.returncode == 2 and "is closed; resolve needs open" in wrong.stderr
    shown = orjson.loads(fieldmon("incidents", "show", number, *c, "--json").stdout)
    assert shown["state"] == "closed" and shown["level"] == 1 and shown["assignee"] == "li.wei"
    assert [e["kind"] for e in shown["timeline"]] == [
        "opened",
        "acknowledged",
        "assigned",
        "note",
        "level",
        "paused",
        "resumed",
        "resolved",
        "closed",
    ]
    listed = orjson.loads(fieldmon("incidents", "list", *c, "--level", "1", "--json").stdout)
    assert [i["number"] for i in listed] == [number]
    assert orjson.loads(fieldmon("incidents", "list", *c, "--level", "3", "--json").stdout) == []
    ok = fieldmon("incidents", "verify", *c)
    assert ok.returncode == 0 and "intact" in ok.stdout
    # Someone edits the note in the database: verify names the incident and the entry.
    with sqlite3.connect(tmp_path / "c.db") as db:
        db.execute("UPDATE incident_events SET text = 'nothing' WHERE kind = 'note'")
        entry = db.execute("SELECT id FROM incident_events WHERE kind = 'note'").fetchone()[0]
    bad = fieldmon("incidents", "verify", *c)
    assert bad.returncode == 1
    assert f"{number}: timeline entry {entry} does not match its hash" in bad.stdout
