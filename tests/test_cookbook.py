"""The README's Cookbook runs: every recipe, as printed, prints what the README says it prints.

A recipe is a ``.. code-block:: python`` in the Cookbook section whose first
line is ``# cookbook: NAME``, followed by a paragraph ending in ``::`` whose
literal block is the recipe's exact standard output. Each recipe runs in its
own interpreter, from an empty folder, with only this checkout on
``PYTHONPATH``: as a reader who pasted it into a file would run it.
"""

import os
import re
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.rst")
TIMEOUT_SECONDS = 20
MARKER = re.compile(r"# cookbook: ([\w-]+)$")


def read_readme():
    with open(README, encoding="utf-8") as readme:
        return readme.read()


def section(text, title):
    """Return the lines of the top-level section ``title`` (underlined with ``-``)."""
    lines = text.splitlines()
    start = None
    for index in range(len(lines) - 1):
        if lines[index] == title and set(lines[index + 1]) == {"-"}:
            start = index + 2
        elif start is not None and lines[index] and set(lines[index + 1] or "x") == {"-"} \
                and len(lines[index + 1]) == len(lines[index]):
            return lines[start:index]
    assert start is not None, "README.rst has no %r section" % title
    return lines[start:]


def indented_block(lines, start):
    """Return the dedented block of indented (or blank) lines from ``start``, and where it ends."""
    block = []
    index = start
    while index < len(lines) and (not lines[index].strip() or lines[index].startswith(" ")):
        block.append(lines[index])
        index += 1
    return textwrap.dedent("\n".join(block)).strip("\n"), index


def recipes():
    """Return ``[(name, code, expected_stdout)]`` for every recipe of the Cookbook section."""
    lines = section(read_readme(), "Cookbook")
    found = []
    index = 0
    while index < len(lines):
        if lines[index].strip() != ".. code-block:: python":
            index += 1
            continue
        code, index = indented_block(lines, index + 1)
        match = MARKER.match(code.splitlines()[0])
        assert match, "a Python block in the Cookbook has no '# cookbook: NAME' line:\n" + code
        while index < len(lines) and not (lines[index].endswith("::")
                                           and not lines[index].startswith("..")):
            assert ".. code-block::" not in lines[index], (
                "recipe %s shows no output ('It prints::') before the next block" % match[1])
            index += 1
        assert index < len(lines), "recipe %s shows no output ('It prints::')" % match[1]
        expected, index = indented_block(lines, index + 1)
        found.append((match[1], code, expected))
    return found


RECIPES = recipes()


def test_the_cookbook_has_its_recipes():
    """Each recipe has a unique name, and the six a first hour needs are there."""
    names = [name for name, _, _ in RECIPES]
    assert len(names) == len(set(names)), names
    assert set(names) >= {"request-response", "proxy", "every", "shared-state", "errors",
                          "client-limits"}


@pytest.mark.parametrize("name,code,expected", RECIPES, ids=[r[0] for r in RECIPES])
def test_recipe_runs_alone_and_prints_what_the_readme_shows(name, code, expected, tmp_path):
    """A recipe runs standalone, ends its own loop, exits 0 and prints exactly its shown output."""
    script = tmp_path / ("%s.py" % name.replace("-", "_"))
    script.write_text(code + "\n", encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("REACTOR_DEBUG", None)
    result = subprocess.run([sys.executable, str(script)], cwd=str(tmp_path), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            timeout=TIMEOUT_SECONDS, universal_newlines=True)
    assert result.returncode == 0, result.stderr
    printed = "\n".join(line.rstrip() for line in result.stdout.strip("\n").splitlines())
    assert printed == expected, "stderr:\n" + result.stderr


def test_readme_starts_with_the_two_commands_of_a_fresh_machine():
    """The first literal block is the echo server and the test command CI greps for."""
    text = read_readme()
    first = text.index("::\n")
    block, _ = indented_block(text[first + 3:].splitlines(), 0)
    assert block.splitlines()[0].startswith("python3 -m reactor echo ")
    assert block.splitlines()[1].startswith(
        "python3 -m pip install pytest && python3 -m pytest -q ")


def test_readme_names_only_files_that_exist():
    """Every ``reactor/``, ``docs/``, ``examples/`` or ``tests/`` path the README names exists."""
    text = read_readme()
    paths = set(re.findall(r"\b((?:reactor|docs|examples|tests|benchmarks)/[\w/.-]*\w)", text))
    missing = sorted(path for path in paths if not os.path.exists(os.path.join(ROOT, path)))
    assert not missing, missing


def test_readme_reading_order_points_to_the_package_docstring():
    """The README keeps no reading order of its own: it points to reactor/__init__.py."""
    text = read_readme()
    assert "Where to read" not in text
    learning = "\n".join(section(text, "Learning the code"))
    assert "reactor/__init__.py" in learning and "docs/LEARN.md" in learning
