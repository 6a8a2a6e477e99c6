"""Every relative link in README.md and docs/ resolves: the file (or folder) exists in the
repository, and a ``#anchor`` into a Markdown file names one of its headings as GitHub renders
the anchor. Absolute links (http, https, mailto) are not fetched. Links inside fenced code
blocks and inline code are not links."""
import re
from pathlib import Path
from urllib.parse import unquote

REPO = Path(__file__).resolve().parents[1]

INLINE_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?([^\s>]+)>?")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
HTML_ANCHOR = re.compile(r"<a\s[^>]*(?:name|id)=\"([^\"]+)\"", re.IGNORECASE)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^//")


def prose_lines(text):
    """(line number, line) outside fenced code blocks; fences are ``` or ~~~."""
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.lstrip()
        marker = stripped[:3]
        if fence is None and marker in ("```", "~~~"):
            fence = marker
        elif fence is not None and stripped.startswith(fence):
            fence = None
        elif fence is None:
            yield number, line


def github_slug(heading):
    """The anchor GitHub gives a heading: its rendered text in lower case, with everything but
    letters, digits, ``_``, ``-`` and spaces removed and each space made a ``-``."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link renders as its text
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path):
    """Every anchor of a Markdown file: its headings' slugs (a repeated slug gets -1, -2, ...)
    and explicit ``<a name=...>`` / ``<a id=...>``."""
    found, seen = set(), {}
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if match:
            slug = github_slug(match.group(2))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            found.add(slug if count == 0 else "%s-%d" % (slug, count))
        found.update(HTML_ANCHOR.findall(line))
    return found


def links(path):
    """(line number, target) of every link in a Markdown file, code excluded."""
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        line = CODE_SPAN.sub("", line)
        for target in INLINE_LINK.findall(line):
            yield number, target
        match = REFERENCE_DEF.match(line)
        if match:
            yield number, match.group(1)


def broken_links(root, files):
    """One line per link of ``files`` that does not resolve inside ``root``."""
    root = root.resolve()
    broken = []
    for path in files:
        for number, target in links(path):
            where = "%s:%d: %s" % (path.relative_to(root), number, target)
            if not target:
                broken.append(where + " (empty link)")
                continue
            if SCHEME.match(target):
                continue  # absolute: not fetched
            file_part, _, anchor = target.partition("#")
            resolved = (path.parent / unquote(file_part)).resolve() if file_part else path
            if root != resolved and root not in resolved.parents:
                broken.append(where + " (outside the repository)")
            elif not resolved.exists():
                broken.append(where + " (no such file)")
            elif anchor and resolved.suffix == ".md" and unquote(anchor) not in anchors(resolved):
                broken.append(where + " (no such anchor)")
    return broken


def user_docs(root):
    return [root / "README.md"] + sorted((root / "docs").rglob("*.md"))


def test_every_relative_link_in_the_readme_and_docs_resolves():
    files = user_docs(REPO)
    assert len(files) > 2, files  # the README and the docs/ pages
    assert broken_links(REPO, files) == []


def test_the_checker_reports_missing_files_anchors_and_escapes(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "config.yaml").write_text("a: 1\n")
    (tmp_path / "docs" / "page.md").write_text(
        "# Page\n\n## Several cameras, one model\n\n## Custom message (`msg/Info.msg`)\n\n"
        "## Step\n\n## Step\n")
    (tmp_path / "README.md").write_text(
        "# Title\n\n"
        "[ok](docs/page.md) [ok](docs/page.md#several-cameras-one-model)\n"
        "[ok](docs/page.md#custom-message-msginfomsg) [ok](docs/page.md#step-1) [ok](#title)\n"
        "[ok](config.yaml) [ok](docs/) [ok](https://example.com/missing.md#x) ![ok](docs/page.md)\n"
        "[missing file](docs/nope.md)\n"
        "[missing anchor](docs/page.md#several-cameras)\n"
        "[missing local anchor](#nope)\n"
        "[escapes](../outside.md)\n"
        "`[in code](docs/code.md)`\n"
        "```\n[in a fence](docs/fence.md)\n```\n"
        "[ref]: docs/refdef.md\n")
    broken = broken_links(tmp_path, [tmp_path / "README.md"])
    assert broken == [
        "README.md:6: docs/nope.md (no such file)",
        "README.md:7: docs/page.md#several-cameras (no such anchor)",
        "README.md:8: #nope (no such anchor)",
        "README.md:9: ../outside.md (outside the repository)",
        "README.md:14: docs/refdef.md (no such file)",
    ], broken


def test_slugs_are_githubs():
    assert github_slug("Several cameras, one model") == "several-cameras-one-model"
    assert github_slug("The custom message (`msg/SegmentationInfo.msg`)") == \
        "the-custom-message-msgsegmentationinfomsg"
    assert github_slug("`bench cpu`: image in, labels out") == "bench-cpu-image-in-labels-out"
    assert github_slug("Your own robot's data, start to finish") == \
        "your-own-robots-data-start-to-finish"
    assert github_slug("cv_bridge parity") == "cv_bridge-parity"
    assert github_slug("See [the node](node.md)") == "see-the-node"
