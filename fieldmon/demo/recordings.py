"""Write the demo site's SNMP recordings (snmprec files) for snmpsim.

Run as a script to get the healthy site on disk::

    python -m fieldmon.demo.recordings OUT_DIR [--first-address 127.0.0.20]

Layout: ``OUT_DIR/<group>/data/<community>.snmprec``, one folder per responder group (a
group is served by one snmpsim process, so stopping it takes exactly those devices off the
network). Records tagged ``:fmdemo`` are computed when asked, by the variation module in
``fieldmon/demo/variation`` (give snmpsim ``--variation-modules-dir`` pointing there).

snmpsim re-reads a data file when its modification time (whole seconds) changes, so
:class:`RecordingWriter` replaces files atomically and never twice within
:data:`MIN_REWRITE_S` of each other: a second write inside the same second would go unseen.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from fieldmon.demo import site as s

#: Seconds between two writes of one file: more than snmpsim's one-second mtime resolution.
MIN_REWRITE_S = 2.2
VARIATION_DIR = Path(__file__).resolve().parent / "variation"


def site_addresses(first: str = "127.0.0.20", count: int = 60) -> list[str]:
    """Consecutive loopback addresses from ``first``; refuses anything outside 127.0.0.0/8."""
    start = ipaddress.IPv4Address(first)
    loopback = ipaddress.IPv4Network("127.0.0.0/8")
    out = [start + n for n in range(count)]
    if any(a not in loopback for a in out) or any(int(a) & 0xFF in (0, 255) for a in out):
        raise ValueError(
            f"--first-address {first}: the demo site needs {count} loopback addresses "
            "(127.x.y.z) after it, none ending in .0 or .255"
        )
    return [str(a) for a in out]


def render(records: Iterable[s.Record]) -> str:
    return "".join(f"{oid}|{tag}|{value}\n" for oid, tag, value in records)


def data_path(root: Path, dev: s.Device) -> Path:
    return root / dev.group / "data" / f"{dev.community}.snmprec"


class RecordingWriter:
    """Keeps the files under ``root`` in step with the site state, rewriting only devices
    whose records changed, atomically and not faster than snmpsim can notice."""

    def __init__(self, root: Path, devices: Sequence[s.Device], started: float) -> None:
        self.root = root
        self.devices = list(devices)
        self.started = started
        self._text: dict[str, str] = {}
        self._written_at: dict[str, float] = {}

    def groups(self) -> list[str]:
        return sorted({d.group for d in self.devices})

    def write(self, state: s.SiteState, now: float | None = None) -> list[str]:
        """Bring every file up to date where allowed; returns the devices rewritten.

        A device whose records changed less than :data:`MIN_REWRITE_S` after its last write
        is left for a later call."""
        now = time.monotonic() if now is None else now
        written: list[str] = []
        for dev in self.devices:
            text = render(s.records(dev, state, self.started))
            if self._text.get(dev.name) == text:
                continue
            last = self._written_at.get(dev.name)
            if last is not None and now - last < MIN_REWRITE_S:
                continue
            path = data_path(self.root, dev)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(text, encoding="ascii")
            os.replace(tmp, path)
            self._text[dev.name] = text
            self._written_at[dev.name] = now
            written.append(dev.name)
        return written


def write_site(root: Path, first_address: str = "127.0.0.20") -> list[s.Device]:
    """The healthy demo site under ``root``; returns its devices."""
    devices = s.build_site(site_addresses(first_address))
    RecordingWriter(root, devices, time.time()).write(s.SiteState(video_disk_used=0.70))
    return devices


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fieldmon.demo.recordings", description=__doc__.splitlines()[0]
    )
    parser.add_argument("out", type=Path, help="folder for the snmprec files")
    parser.add_argument("--first-address", default="127.0.0.20")
    args = parser.parse_args(argv)
    try:
        devices = write_site(args.out, args.first_address)
    except ValueError as exc:
        print(f"fieldmon: {exc}", file=sys.stderr)
        return 2
    for dev in devices:
        print(f"{data_path(args.out, dev)}  {dev.device_class:15} {dev.address}  {dev.serial}")
    print(
        f"{len(devices)} devices; serve each group folder with snmpsim-command-responder "
        f"--data-dir=<group>/data --variation-modules-dir={VARIATION_DIR}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
