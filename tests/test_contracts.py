"""Contracts: every shipped file loads, and bad ones say what is wrong."""

import pytest

from harness.contract import ContractError, all_contracts, by_id, load


def test_every_shipped_contract_loads():
    ids = {c.id for c in all_contracts()}
    assert {"tcp_chat", "udp_chat", "select_chat", "shared_counter", "korean_textbook_chat",
            "beej_select_chat", "ncat_chat"} <= ids


def test_relay_pattern_and_notices():
    ncat = by_id("ncat_chat")
    assert ncat.protocol.parse_relayed(b"<user5> hello there") == b"hello there"
    assert ncat.protocol.parse_relayed(b"<announce> 127.0.0.1 is connected as <user5>.") is None
    with pytest.raises(ValueError):
        ncat.protocol.parse_relayed(b"no prefix")


def test_fixed_port_and_argv_templates():
    beej = by_id("beej_select_chat")
    assert beej.server.port == 9034 and beej.server.render(port=1, host="h") == []
    korean = by_id("korean_textbook_chat")
    assert korean.client.render(host="127.0.0.1", port=5, name="kim") == ["127.0.0.1", "5", "kim"]
    assert korean.protocol.echo == "required" and korean.client.quit == "q"


@pytest.mark.parametrize("body, words", [
    ('transport = "carrier-pigeon"\n', "transport"),
    ('transport = "tcp"\n', "needs a [server]"),
    ('[server]\nprogram = "s"\nport = "any"\n', "port"),
    ('[server]\nprogram = "s"\n[protocol]\nrelay = "(.*)"\n', "group named msg"),
    ('[server]\nprogram = "s"\n[protocol]\necho = "sometimes"\n', "echo"),
    ('[server]\nprogram = "s"\n[protocol]\nmax_message = "big"\n', "max_message"),
    ('[server\n', "toml"),
])
def test_bad_contracts_are_explained(tmp_path, body, words):
    p = tmp_path / "bad.toml"
    p.write_text(body)
    with pytest.raises(ContractError) as e:
        load(p)
    assert words.lower() in str(e.value).lower()


def test_unknown_assignment_lists_the_known_ones():
    with pytest.raises(ContractError) as e:
        by_id("tcp_chatt")
    assert "tcp_chat" in str(e.value) and "known" in str(e.value)
