"""The harness grades a program nobody here wrote: `ncat -l --chat`, through
its contract file alone. ncat relays whatever each read returned, prefixed,
without line framing, so it passes the relay rule and fails whole lines."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ncat_chat_passes_relay_and_fails_whole_lines(tmp_path):
    results = tmp_path / "results.jsonl"
    subprocess.run([sys.executable, "-m", "pytest", "scenarios", "-q", "-p", "no:xdist",
                    "--assignment", "ncat_chat", "--no-valgrind", f"--results={results}",
                    "-k", "relay or fragments or order"],
                   cwd=ROOT, capture_output=True, text=True, timeout=180)
    outcome = {json.loads(l)["nodeid"].split("::")[-1]: json.loads(l)
               for l in results.read_text().splitlines()}
    assert outcome["relay[ncat_chat]"]["outcome"] == "passed"
    assert outcome["order[ncat_chat]"]["outcome"] == "passed"
    frag = outcome["fragments[ncat_chat]"]
    assert frag["outcome"] == "failed"
    assert frag["failure"]["expected"] == '"hello world"'
