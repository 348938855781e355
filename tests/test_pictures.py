"""docs/pictures: the four SVGs of docs/LEARN.md section 4 are current, well formed, and truthful.

``docs/pictures/draw.py`` draws them; ``--check`` compares the committed
files with what it would draw now. The fact tests read the text of each
picture, so a redrawn picture that loses a fact of the ASCII version in
LEARN.md fails here.
"""

import ast
import importlib.util
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from reactor.policy import DEFAULT_LIMITS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PICTURES = os.path.join(ROOT, "docs", "pictures")
DRAW = os.path.join(PICTURES, "draw.py")
LEARN = os.path.join(ROOT, "docs", "LEARN.md")
SVG = "{http://www.w3.org/2000/svg}"
NAMES = ["pass-timeline.svg", "layers.svg", "wheel-cascade.svg", "send-buffer.svg"]

FACTS = {
    "pass-timeline.svg": ["step 3", "pass N+1", "1 wait", "2 I/O", "3 run", "select(0)",
                          "due = len(ready)", "call_soon(B)", "call_soon(C)", "connection_lost",
                          "C runs"],
    "layers.svg": ["app", "Guard", "TLSTransport", "StreamTransport", "socket", "selector",
                   "faces up", "faces down", "data_received(ciphertext)", "close_notify",
                   "on_readable, on_writable", "protocols.py:Layer"],
    "wheel-cascade.svg": ["1000", "1700", "1536", "164", "slot 6", "1536-1791",
                          "(1700 >> 8) & 255 = 6", "1700 & 255 = 164", "the ready queue"],
    "send-buffer.svg": ["_send_buffer = None", "SendBuffer", "on_writable", "pause_writing()",
                        "resume_writing()", "SlowConsumerError", "nbytes == 0", "write_eof()"],
}


def picture(name):
    """Return the parsed root of a committed picture and its text, one line per text element."""
    root = ET.parse(os.path.join(PICTURES, name)).getroot()
    return root, "\n".join("".join(element.itertext()) for element in root.iter(SVG + "text"))


def load_draw():
    """Import draw.py as a module (it lives outside any package)."""
    spec = importlib.util.spec_from_file_location("draw_pictures", DRAW)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_pictures_are_what_draw_py_draws():
    """`draw.py --check` passes: the committed SVGs are exactly what the script draws now."""
    result = subprocess.run([sys.executable, DRAW, "--check"], cwd=ROOT, timeout=60,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True)
    assert result.returncode == 0, result.stdout


def test_check_fails_for_a_missing_or_changed_picture(tmp_path, monkeypatch):
    """--check returns 1 when a picture is missing or edited by hand, 0 once redrawn."""
    draw = load_draw()
    monkeypatch.setattr(draw, "HERE", str(tmp_path))
    assert draw.main(["--check"]) == 1
    assert draw.main([]) == 0
    assert sorted(os.listdir(str(tmp_path))) == sorted(NAMES)
    assert draw.main(["--check"]) == 0
    changed = tmp_path / "layers.svg"
    changed.write_text(changed.read_text(encoding="utf-8").replace("Guard", "Gaurd"),
                       encoding="utf-8")
    assert draw.main(["--check"]) == 1


def test_draw_py_imports_only_the_standard_library_and_reactor():
    """draw.py needs no third-party package: its imports are stdlib modules and reactor."""
    tree = ast.parse(open(DRAW, encoding="utf-8").read())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom)}
    assert imported <= {"argparse", "os", "sys", "xml", "reactor"}, imported


@pytest.mark.parametrize("name", NAMES)
def test_picture_is_a_legible_svg_document(name):
    """Each picture parses and has a title, a viewBox, 800-900 px width, a white background."""
    root, _ = picture(name)
    assert root.tag == SVG + "svg"
    width = int(root.get("width"))
    assert 800 <= width <= 900
    assert root.get("viewBox") == "0 0 %s %s" % (root.get("width"), root.get("height"))
    assert root.find(SVG + "title").text.strip()
    background = root.find(SVG + "rect")
    assert (background.get("width"), background.get("fill")) == ("100%", "#ffffff")
    sizes = [int(element.get("font-size")) for element in root.iter(SVG + "text")]
    assert sizes and min(sizes) >= 11


@pytest.mark.parametrize("name", NAMES)
def test_every_arrow_head_is_defined(name):
    """Each picture draws arrows, and every marker an arrow names is defined in the picture."""
    root, _ = picture(name)
    defined = {marker.get("id") for marker in root.iter(SVG + "marker")}
    used = [re.match(r"url\(#([\w-]+)\)$", element.get("marker-end")).group(1)
            for element in root.iter() if element.get("marker-end")]
    assert used and set(used) <= defined


@pytest.mark.parametrize("name", NAMES)
def test_picture_carries_the_facts_of_the_text_version(name):
    """Each picture names the facts of its ASCII version in LEARN.md (steps, layers, ticks)."""
    _, words = picture(name)
    missing = [fact for fact in FACTS[name] if fact not in words]
    assert not missing, missing


def test_send_buffer_picture_shows_the_default_limits():
    """The send-buffer picture's water marks and caps are those of DEFAULT_LIMITS."""
    _, words = picture("send-buffer.svg")
    assert "%d KiB, high-water" % (DEFAULT_LIMITS.high_water_bytes // 1024) in words
    assert "%d KiB, low-water" % (DEFAULT_LIMITS.low_water_bytes // 1024) in words
    assert "%d MiB, the hard cap" % (DEFAULT_LIMITS.send_buffer_hard_cap_bytes // 2**20) in words
    assert "%d MiB, the soft cap" % (DEFAULT_LIMITS.send_buffer_soft_cap_bytes // 2**20) in words


def test_learn_embeds_the_four_pictures_and_each_exists():
    """LEARN.md embeds the four SVGs, each embedded one exists, and each keeps its text twin."""
    text = open(LEARN, encoding="utf-8").read()
    embedded = re.findall(r"!\[[^\]]+\]\(pictures/([\w.-]+\.svg)\)", text)
    assert sorted(embedded) == sorted(NAMES)
    for name in embedded:
        assert os.path.isfile(os.path.join(PICTURES, name)), name
    assert text.count("<summary>the same picture as text</summary>") == len(NAMES)
