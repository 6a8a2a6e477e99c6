"""The node's parameter table in the docs is the node's parameter table (its params module and
config/segment.yaml): the README's short table links to the full one in docs/node.md, every
parameter is there with its default and when a change applies, and every row of the README's
short table names a real parameter with its real default."""
import json
import re
from pathlib import Path

import yaml

from espnet_ros.messages import params

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
LINK = re.compile(r"\[[^\]]*\]\(([^)#\s]+\.md)#parameters\)")


def _cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _section(text, heading):
    """The lines under the Markdown heading ``heading`` up to the next heading of its level."""
    lines = text.splitlines()
    level = heading.split(" ")[0]
    section, fenced = [], False
    for line in lines[lines.index(heading) + 1:]:
        fenced ^= line.startswith("```")
        if not fenced and line.startswith("#") and len(line.split(" ")[0]) <= len(level):
            break
        section.append(line)
    return section


def _full_table():
    """Follows the README's link to the full table and reads its rows by parameter name."""
    targets = {m.group(1) for m in LINK.finditer(README.read_text())}
    assert targets == {"docs/node.md"}, targets
    rows = {}
    for line in _section((REPO / "docs" / "node.md").read_text(), "## Parameters"):
        cells = _cells(line)
        if len(cells) == 4 and cells[0].startswith("`") and cells[2] in ("live", "reload",
                                                                         "startup"):
            rows[cells[0].strip("`")] = cells
    return rows


def _shown(value):
    if isinstance(value, bool):
        return str(value).lower()
    return json.dumps(value) if isinstance(value, str) else repr(value)


def _yaml_defaults():
    return yaml.safe_load((REPO / "config" / "segment.yaml").read_text())["/**"]["ros__parameters"]


def test_every_parameter_is_in_the_full_table_with_its_default_and_change_kind():
    rows = _full_table()
    assert set(rows) == {spec.name for spec in params.SPECS}
    yaml_defaults = _yaml_defaults()
    for spec in params.SPECS:
        _, default, change, meaning = rows[spec.name]
        assert default == "`%s`" % _shown(spec.default), spec.name
        assert default == "`%s`" % _shown(yaml_defaults[spec.name]), spec.name
        assert change == spec.change, spec.name
        assert meaning.startswith(spec.description), spec.name


def test_the_readme_short_table_names_real_parameters_with_their_defaults():
    specs = {spec.name: spec for spec in params.SPECS}
    rows = [_cells(line) for line in _section(README.read_text(), "## Most-used parameters")]
    rows = [cells for cells in rows if len(cells) == 3 and cells[0].startswith("`")]
    assert len(rows) >= 8, rows
    for name, default, _ in rows:
        name = name.strip("`")
        assert name in specs, name
        assert default == "`%s`" % _shown(specs[name].default), name
