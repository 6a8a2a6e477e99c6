"""The README's parameter table is the node's parameter table (espnet_ros/messages/params.py)."""
import json
from pathlib import Path

from espnet_ros.messages.params import SPECS

README = Path(__file__).resolve().parents[1] / "README.md"


def _rows():
    rows = {}
    for line in README.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`") and cells[2] in ("live", "reload",
                                                                         "startup"):
            rows[cells[0].strip("`")] = cells
    return rows


def _shown(value):
    if isinstance(value, bool):
        return str(value).lower()
    return json.dumps(value) if isinstance(value, str) else repr(value)


def test_every_parameter_is_in_the_readme_with_its_default_and_change_kind():
    rows = _rows()
    assert set(rows) == {spec.name for spec in SPECS}
    for spec in SPECS:
        _, default, change, meaning = rows[spec.name]
        assert default == "`%s`" % _shown(spec.default), spec.name
        assert change == spec.change, spec.name
        assert meaning.startswith(spec.description), spec.name
