"""Show the references at work: two client programs chatting through
tcp_chat_server, in a private network namespace, with the timeline.

    /usr/bin/python3 -m harness.demo
"""

from __future__ import annotations

import sys

from . import netns
from .contract import by_id
from .session import REFERENCE_BIN, ChatSession, Programs


def main() -> int:
    contract = by_id("tcp_chat")
    with netns.isolated() as isolated:
        chat = ChatSession(contract, Programs(REFERENCE_BIN))
        chat.isolated = isolated
        try:
            chat.start_server()
            alice = chat.spawn_client("alice")
            bob = chat.spawn_client("bob")
            alice.send(b"hello bob, this is alice")
            bob.expect(b"hello bob, this is alice")
            bob.send(b"hi alice! bob here")
            alice.expect(b"hi alice! bob here")
            alice.send(b"quit")
            alice.expect_exit(0)
            bob.end_input()
            bob.expect_exit(0)
            chat.stop_server()
        finally:
            chat.close()
    print(netns.mode_description())
    print("\nTimeline (ms since start, who, what):")
    print(chat.transcript.render())
    print("\nalice's screen (stdout):", alice.process.stdout.text().strip() or "(nothing)")
    print("bob's screen (stdout):  ", bob.process.stdout.text().strip() or "(nothing)")
    print(f"server exit status: {chat.exit_status}")
    return 0 if chat.exit_status == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
