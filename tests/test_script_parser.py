"""The scenario script parser: what it accepts, and clear errors for the rest."""

import pytest

from harness.contract import by_id
from harness.script import ScriptError, parse, tokenize, unescape


def _parse(text, tmp_path):
    p = tmp_path / "t.scn"
    p.write_text(text)
    return parse(p)


def test_header_and_steps(tmp_path):
    s = _parse('title: t\nrule: relay order\nrequires: tcp\n\nserver start\n'
               'client a b connect\na send "hi"\nb expect "hi" within 3s\n', tmp_path)
    assert s.title == "t" and s.rules == ["relay", "order"] and s.requires == ["tcp"]
    assert [st.action for st in s.steps] == ["server_start", "client_connect", "send", "expect"]
    assert s.steps[1].names == ["a", "b"]
    assert s.steps[3].args == {"message": b"hi", "within": 3.0}


def test_messages_escapes_and_repeats():
    assert unescape(r"a\nb\x00\xff\\\"") == b'a\nb\x00\xff\\"'
    assert [t.text for t in tokenize('a send "x y" # comment')] == ["a", "send", "x y"]


def test_repeat_block_and_quit_word(tmp_path):
    s = _parse('title: t\nrepeat 3\na send "m{i}"\nend\na send quit\n', tmp_path)
    assert s.steps[0].action == "repeat" and s.steps[0].args["count"] == 3
    assert s.steps[0].body[0].args["message"] == b"m{i}"
    assert s.steps[1].args["message"] == b"\x00QUIT"


def test_send_raw_with_gap_and_repeat_count(tmp_path):
    s = _parse('title: t\na send raw "ab" * 3 "c" gap 50ms\n', tmp_path)
    assert s.steps[0].args == {"chunks": [b"ababab", b"c"], "gap": 0.05}


@pytest.mark.parametrize("text, words", [
    ("server launch\n", "unknown server step"),
    ("a shout \"x\"\n", "unknown step"),
    ("a send hi\n", "double quotes"),
    ("repeat 2\na send \"x\"\n", "'repeat' without 'end'"),
    ("end\n", "'end' without 'repeat'"),
    ("colour: blue\n", "unknown header"),
    ("requires: telepathy\nserver start\n", "unknown requirement"),
    ("a expect nothing soon\n", "duration"),
])
def test_errors_name_the_line_and_the_problem(tmp_path, text, words):
    with pytest.raises((ScriptError, ValueError)) as e:
        _parse(text, tmp_path)
    assert words in str(e.value)


def test_requirements_select_contracts(tmp_path):
    s = _parse("title: t\nrequires: udp quit\nserver start\n", tmp_path)
    assert s.applies_to(by_id("udp_chat"))[0]
    ok, why = s.applies_to(by_id("tcp_chat"))
    assert not ok and "udp" in why
    assert not s.applies_to(by_id("shared_counter"))[0]
