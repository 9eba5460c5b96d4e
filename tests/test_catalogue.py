from pathlib import Path

import pytest

from checks.catalogue import CATEGORIES, INSPECTION, CatalogueError, load_catalogue, parse_class
from tests.support.procs import fieldmon

GOOD = """
class = "ups"
title = { zh-CN = "不间断电源", en = "UPS" }
[[item]]
id = "ups.on_battery"
title = { zh-CN = "市电中断", en = "On battery" }
category = "environment"
method = "snmp"
level = 2
interval = 30
threshold = { match = ["no"] }
"""


def test_builtin_catalogue_is_complete() -> None:
    classes = load_catalogue()
    assert {"linux-server", "snmp-device"} <= set(classes)
    linux = classes["linux-server"]
    ids = {i.id for i in linux.items}
    assert {
        "cpu.usage",
        "mem.usage",
        "swap.usage",
        "disk.usage",
        "disk.inodes",
        "load.per_cpu",
        "uptime",
        "time.offset",
    } <= ids
    assert linux.item("disk.usage").per == "mount"  # type: ignore[union-attr]
    snmp = classes["snmp-device"]
    assert {
        "snmp.reachable",
        "snmp.uptime",
        "if.oper_status",
        "inventory.system",
        "inventory.entity",
    } <= {i.id for i in snmp.items}
    for dc in classes.values():
        for it in dc.items:
            assert it.category in CATEGORIES
            assert it.title["zh-CN"] and it.title["en"]
            assert 1 <= it.level <= 4
    assert snmp.item("inventory.entity").interval is None  # type: ignore[union-attr]


def test_parse_good() -> None:
    dc = parse_class(GOOD, "ups.toml")
    assert dc.name == "ups" and dc.items[0].interval == 30
    assert dc.items[0].category_in("zh-CN") == "环境"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("level = 2", "level = 5"), "item 'ups.on_battery'.level: 5 must be a fault level 1-4"),
        (('category = "environment"', 'category = "weather"'), "category: 'weather'"),
        (("interval = 30", 'interval = "monthly"'), "interval"),
        (("interval = 30", "interval = 1"), "interval"),
        (('method = "snmp"', 'method = "telepathy"'), "method"),
        (('match = ["no"]', "between = [1]"), "threshold"),
        (('zh-CN = "市电中断", ', ""), "title: must be a table with 'zh-CN' and 'en'"),
        (("level = 2\n", "level = 2\ncolour = 1\n"), "unknown key(s) colour"),
        (('class = "ups"', ""), "missing 'class'"),
        (('id = "ups.on_battery"\n', ""), "missing required key 'id'"),
        (("[[item]]", "[[item\n"), "not valid TOML"),
    ],
)
def test_errors_name_file_and_key(edit: tuple[str, str], message: str) -> None:
    with pytest.raises(CatalogueError) as exc:
        parse_class(GOOD.replace(*edit), "ups.toml")
    assert str(exc.value).startswith("ups.toml")
    assert message in str(exc.value)


def test_duplicate_item() -> None:
    twice = GOOD + GOOD.split("\n", 3)[3]
    with pytest.raises(CatalogueError, match="defined twice"):
        parse_class(twice, "ups.toml")


def test_extra_dir_adds_classes(tmp_path: Path) -> None:
    (tmp_path / "ups.toml").write_text(GOOD, encoding="utf-8")
    assert "ups" in load_catalogue([tmp_path])


def test_cli_show_and_validate(tmp_path: Path) -> None:
    shown = fieldmon("checklist", "show", "--class", "linux-server", "--lang", "zh-CN")
    assert shown.returncode == 0
    assert "Linux 服务器" in shown.stdout and "磁盘空间使用率" in shown.stdout
    assert "[硬件]" in shown.stdout and INSPECTION in shown.stdout
    en = fieldmon("checklist", "show", "--class", "snmp-device", "--lang", "en")
    assert "Interface operational status" in en.stdout
    good, bad = tmp_path / "ups.toml", tmp_path / "bad.toml"
    good.write_text(GOOD, encoding="utf-8")
    bad.write_text(GOOD.replace("level = 2", "level = 0"), encoding="utf-8")
    ok = fieldmon("checklist", "validate", str(good))
    assert ok.returncode == 0 and "class 'ups', 1 items" in ok.stdout
    failed = fieldmon("checklist", "validate", str(good), str(bad))
    assert failed.returncode == 2
    assert f"{bad}: item 'ups.on_battery'.level" in failed.stderr
    unknown = fieldmon("checklist", "show", "--class", "toaster")
    assert unknown.returncode == 2 and "known: " in unknown.stderr


def test_extends_inherits_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "cam.toml").write_text(
        """
class = "test-camera"
extends = "snmp-device"
title = { zh-CN = "摄像机", en = "Camera" }
[[item]]
id = "snmp.reachable"
title = { zh-CN = "摄像机在线", en = "Camera online" }
category = "hardware"
method = "snmp"
level = 3
interval = 60
threshold = { match = ["up"] }
""",
        encoding="utf-8",
    )
    classes = load_catalogue([tmp_path])
    cam, base = classes["test-camera"], classes["snmp-device"]
    assert [i.id for i in cam.items] == [i.id for i in base.items]
    assert cam.item("snmp.reachable").level == 3  # type: ignore[union-attr]
    assert base.item("snmp.reachable").level == 2  # type: ignore[union-attr]
    (tmp_path / "loop.toml").write_text(
        'class = "a"\nextends = "b"\ntitle = { zh-CN = "甲", en = "A" }\n', encoding="utf-8"
    )
    (tmp_path / "loop2.toml").write_text(
        'class = "b"\nextends = "a"\ntitle = { zh-CN = "乙", en = "B" }\n', encoding="utf-8"
    )
    with pytest.raises(CatalogueError, match="loops"):
        load_catalogue([tmp_path])
