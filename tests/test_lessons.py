"""The lessons framework: every lesson is listed, documented and runnable by name.

The lessons themselves are tested in tests/test_lessons_io.py and
tests/test_lessons_time.py; here is what holds for all of them.
"""

import io
import os
import re
import subprocess
import sys

import pytest

from reactor import lessons

from .test_examples import definitions as defined_names

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSIC_BUGS = os.path.join(ROOT, "docs", "CLASSIC-BUGS.md")


def test_there_are_at_least_ten_lessons_each_a_module_with_the_contract():
    """Ten or more lessons; each has a story, a title, where it is prevented and proved, run()."""
    assert len(lessons.names()) >= 10
    for name in lessons.names():
        lesson = lessons.load(name)
        assert lesson.__doc__ and len(lesson.__doc__.strip().splitlines()) >= 3, name
        assert lesson.TITLE and lesson.PREVENTED_BY and lesson.PROVED_BY, name
        assert callable(lesson.run), name


@pytest.mark.parametrize("name", lessons.names())
def test_a_lesson_links_code_and_tests_that_exist(name):
    """PREVENTED_BY names code in reactor/ and PROVED_BY names tests that exist."""
    lesson = lessons.load(name)
    for ref in lesson.PREVENTED_BY:
        path, _, qualified = ref.partition(":")
        assert qualified in defined_names(os.path.join(ROOT, "reactor", path)), ref
    for test_id in lesson.PROVED_BY:
        path, _, test = test_id.partition("::")
        assert test.split("::")[-1] in defined_names(os.path.join(ROOT, path)), test_id


def test_classic_bugs_tells_every_lesson_and_shows_its_command():
    """docs/CLASSIC-BUGS.md has a section and the command line for each lesson."""
    with open(CLASSIC_BUGS, encoding="utf-8") as handle:
        text = handle.read()
    headings = re.findall(r"^## ([\w-]+):", text, re.M)
    assert headings == lessons.names()
    for name in lessons.names():
        assert "python -m reactor lesson %s" % name in text, name


def test_an_unknown_lesson_names_the_ones_there_are():
    """A typo gets the list of lessons, from the API and from the command line."""
    with pytest.raises(KeyError, match="emfile-spin"):
        lessons.run("no-such-lesson", 0.5, io.StringIO())
    result = subprocess.run([sys.executable, "-m", "reactor", "lesson", "no-such-lesson"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, timeout=30)
    assert result.returncode == 1
    assert "no lesson 'no-such-lesson'" in result.stderr and "timer-drift" in result.stderr


def test_lesson_list_names_every_lesson_with_its_title():
    """``lesson --list`` prints one line per lesson and exits 0."""
    result = subprocess.run([sys.executable, "-m", "reactor", "lesson", "--list"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, timeout=30)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == lessons.names()


def test_seconds_out_of_range_is_refused():
    """--seconds outside 0.5..30 is an error naming the range, before anything runs."""
    result = subprocess.run([sys.executable, "-m", "reactor", "lesson", "timer-drift",
                             "--seconds", "0.01"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, timeout=30)
    assert result.returncode == 1 and "between 0.5 and 30" in result.stderr
