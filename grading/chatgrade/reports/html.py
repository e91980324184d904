"""One self-contained HTML page for a grade: inline CSS, no script, no
external resource; every string from the grade is escaped.

For each item that lost points: the verdict, the points, expected against
actual, the transcript of the first failing check drawn as a message
sequence chart (inline SVG: a lane per actor, time going down, an arrow
for each byte sent or received), the valgrind findings with the student's
source lines, and at the end the build log with warnings highlighted.
"""

from __future__ import annotations

import html
import os
import re

from . import (failure_fields, first_failing_check, frame_location, item_valgrind, own_files,
               points, restates_failure, safe_line, safe_text, status_sentence, title, transcript_text,
               valgrind_findings_list, valgrind_lines, warnings)

MAX_EVENTS = 150          # events drawn in one timeline
MAX_LANES = 8             # actors beyond this share one lane
MAX_FINDINGS = 10         # valgrind findings shown per check
MAX_FRAMES = 12           # frames shown per stack
MAX_LOG_CHARS = 60000
BAND_ACTORS = ("script", "harness")   # their events span every lane


def esc(text: object) -> str:
    """TEXT escaped for HTML (and SVG inside it), control characters
    written as escapes."""
    return html.escape(safe_text(text), quote=True)


def esc_line(text: object, limit: int | None = None) -> str:
    return html.escape(safe_line(text, limit), quote=True)


CSS = """
:root { --pass:#1a7f37; --fail:#cf222e; --skip:#9a6700; --ink:#1f2328; --muted:#656d76;
        --line:#d0d7de; --bg2:#f6f8fa; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif;
       color: var(--ink); margin: 0 auto; padding: 1.5em; max-width: 1180px; }
h1 { font-size: 1.6em; margin: 0 0 .2em; } h2 { border-bottom: 1px solid var(--line);
     padding-bottom: .2em; margin-top: 1.8em; } h3 { margin: 0; font-size: 1.1em; }
h4 { margin: .8em 0 .3em; font-size: .95em; }
.sub, .muted { color: var(--muted); }
pre, code { font: 12.5px/1.4 "DejaVu Sans Mono", ui-monospace, Menlo, Consolas, monospace; }
pre { background: var(--bg2); border: 1px solid var(--line); border-radius: 6px;
      padding: .6em .8em; overflow-x: auto; white-space: pre-wrap; overflow-wrap: anywhere; margin: .3em 0; }
table { border-collapse: collapse; width: 100%; margin: .5em 0; }
th, td { border-bottom: 1px solid var(--line); padding: .35em .6em; text-align: left; vertical-align: top; }
th { background: var(--bg2); } td.num, th.num { text-align: right; white-space: nowrap; }
.summary { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: center; border: 1px solid var(--line);
           border-radius: 8px; padding: 1em 1.2em; background: var(--bg2); }
.score { font-size: 2.4em; font-weight: 700; white-space: nowrap; }
.score small { font-size: .5em; color: var(--muted); font-weight: 400; }
.summary dl { display: grid; grid-template-columns: auto auto; gap: .1em 1em; margin: 0; }
.summary dt { color: var(--muted); } .summary dd { margin: 0; }
.badge { display: inline-block; font: 700 12px/1 "DejaVu Sans Mono", monospace; padding: .3em .5em;
         border-radius: 4px; color: #fff; vertical-align: middle; }
.badge.passed { background: var(--pass); } .badge.failed { background: var(--fail); }
.badge.skipped { background: var(--skip); }
.status-graded { color: var(--pass); } .status-build_failed, .status-grader_error,
.status-timed_out { color: var(--fail); font-weight: 700; }
.bar { background: #eaeef2; border-radius: 3px; height: .7em; min-width: 8em; }
.bar span { display: block; height: 100%; border-radius: 3px; background: var(--pass); }
.bar span.partial { background: var(--fail); }
.item { border: 1px solid var(--line); border-radius: 8px; padding: .8em 1em; margin: 1em 0; }
.item.failed { border-left: 5px solid var(--fail); } .item.passed { border-left: 5px solid var(--pass); }
.item.skipped { border-left: 5px solid var(--skip); }
.item .pts { float: right; font-weight: 700; }
.why { margin: .5em 0; }
.vs { display: grid; grid-template-columns: 1fr 1fr; gap: 1em; }
.vs pre.expected { border-color: var(--pass); } .vs pre.actual { border-color: var(--fail); }
.hint { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 6px; padding: .5em .8em; margin: .5em 0; }
.timeline { overflow-x: auto; border: 1px solid var(--line); border-radius: 6px; background: #fff; }
.timeline svg { display: block; }
.checks { font-size: .9em; } .checks td { padding: .2em .5em; }
.frames { font: 12.5px/1.4 "DejaVu Sans Mono", monospace; margin: .2em 0 .6em 1.2em; padding: 0; }
.frames li.own { font-weight: 700; color: var(--fail); }
pre.lines > span { display: block; min-height: 1.4em; }   /* one line each, no newline between */
.src .hit { background: #ffebe9; font-weight: 700; }
.log .warn { background: #fff8c5; } .log .err { background: #ffebe9; font-weight: 700; }
.log .note { color: var(--muted); }
details > summary { cursor: pointer; color: var(--muted); }
"""


# --------------------------------------------------------------------------
# The timeline picture
# --------------------------------------------------------------------------

TIME_W, HEADER, ROW, CHAR_W = 84, 46, 22, 6.8
COLORS = {"send": "#0969da", "recv": "#1a7f37", "stdin": "#0969da", "stdout": "#1a7f37",
          "stderr": "#cf222e", "connect": "#57606a", "close": "#8c959f", "start": "#57606a",
          "exit": "#57606a", "signal": "#cf222e", "note": "#6e7781", "step": "#8250df"}


def _is_server(actor: str) -> bool:
    return actor == "server" or actor.startswith("server")


def _lanes(events: list[dict], shown: list[dict]) -> tuple[list[str], dict[str, int]]:
    """Lane titles, and the lane of each actor with an event in SHOWN:
    servers first, then actors in order of their first event in EVENTS (so
    a cut timeline keeps a, b, c in order); past MAX_LANES the rest share
    the last lane."""
    present = {str(ev.get("actor", "")) for ev in shown}
    actors: list[str] = []
    for ev in events:
        a = str(ev.get("actor", ""))
        if a in present and a not in actors and a not in BAND_ACTORS and ev.get("kind") != "step":
            actors.append(a)
    actors.sort(key=lambda a: not _is_server(a))  # stable: servers first
    lane_of = {}
    titles = actors[:MAX_LANES]
    if len(actors) > MAX_LANES:
        titles = actors[:MAX_LANES - 1] + [f"{len(actors) - MAX_LANES + 1} others"]
    for i, a in enumerate(actors):
        lane_of[a] = min(i, MAX_LANES - 1)
    return titles, lane_of


def _text(x: float, y: float, text: str, cls: str, anchor: str = "start", color: str | None = None) -> str:
    fill = f' fill="{color}"' if color else ""
    return f'<text x="{x:.0f}" y="{y:.0f}" class="{cls}" text-anchor="{anchor}"{fill}>{text}</text>'


def timeline_svg(events: list[dict], uid: str = "t", failing_step: str = "") -> str:
    """EVENTS (Event.to_dict() dicts) as an SVG message sequence chart: one
    lane per actor, time going down, the last MAX_EVENTS events."""
    everything = list(events or [])
    omitted = max(0, len(everything) - MAX_EVENTS)
    events = everything[omitted:]
    titles, lane_of = _lanes(everything, events)
    lanes = max(1, len(titles))
    lane_w = 220 if lanes <= 3 else 180 if lanes <= 5 else 150
    width = TIME_W + lanes * lane_w + 150     # room for the labels of the last lane
    rows = len(events) + (1 if omitted else 0)
    height = HEADER + ROW * (rows + 1)
    server_lane = next((lane_of[a] for a in lane_of if _is_server(a)), None)

    def cx(lane: int) -> float:
        return TIME_W + lane_w * (lane + 0.5)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="message timeline">',
           "<style>text{font:11px 'DejaVu Sans Mono',monospace;paint-order:stroke;stroke:#fff;"
           "stroke-width:3px;stroke-linejoin:round}.lane{font-weight:700;font-size:12px}"
           ".time{fill:#6e7781}.band{font-style:italic}</style>",
           "<defs>"]
    for kind in ("send", "recv"):
        out.append(f'<marker id="{uid}-{kind}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
                   f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" '
                   f'fill="{COLORS[kind]}"/></marker>')
    out.append("</defs>")
    for i, name in enumerate(titles):
        x = cx(i)
        out.append(f'<rect x="{x - lane_w / 2 + 8:.0f}" y="6" width="{lane_w - 16}" height="26" rx="5" '
                   f'fill="{"#ddf4ff" if _is_server(name) else "#f6f8fa"}" stroke="#d0d7de"/>')
        out.append(_text(x, 23, esc_line(name, int((lane_w - 24) / CHAR_W)), "lane", "middle"))
        out.append(f'<line x1="{x:.0f}" y1="32" x2="{x:.0f}" y2="{height - 6}" stroke="#d0d7de" '
                   f'stroke-width="2"/>')
    y = HEADER
    if omitted:
        y += ROW
        out.append(_text(TIME_W + 6, y, f"... {omitted} earlier events not shown ...", "band", color="#6e7781"))
    # The step that failed: the last step event whose text is the failure's
    # step (its first line: the harness adds the rule's sentence below).
    first = (failing_step or "").strip().splitlines()[0].strip() if (failing_step or "").strip() else ""
    failed_at = max((k for k, ev in enumerate(events) if first and ev.get("kind") == "step"
                     and str(ev.get("detail") or "").strip() == first), default=None)
    for k, ev in enumerate(events):
        y += ROW
        out.append(_event(ev, y, lane_of, server_lane, cx, lane_w, width, uid, k == failed_at))
    out.append("</svg>")
    return "\n".join(out)


def _event(ev: dict, y: float, lane_of: dict[str, int], server_lane: int | None, cx,
           lane_w: float, width: float, uid: str, is_failing: bool) -> str:
    actor, kind = str(ev.get("actor", "")), str(ev.get("kind", ""))
    color = COLORS.get(kind, "#57606a")
    full = f"{float(ev.get('t') or 0) * 1000:.1f} ms  {actor} {kind}: " + safe_line(
        (ev.get("detail") or "") + (" " if ev.get("detail") and ev.get("data") else "")
        + (repr(ev["data"])[1:-1] if ev.get("data") else ""), 1000)
    parts = [f"<g><title>{html.escape(full)}</title>",
             _text(TIME_W - 8, y + 4, f"{float(ev.get('t') or 0) * 1000:.1f} ms", "time", "end")]
    label = ev.get("data") and f'"{safe_line(ev["data"])}"' or safe_line(ev.get("detail") or "")
    if ev.get("data") and ev.get("detail"):
        label = f"{safe_line(ev['detail'])} {label}"
    if actor not in lane_of:            # a step or a note of the harness: across every lane
        band = "#cf222e" if is_failing else color
        text = ("FAILED AT " if is_failing else "") + (label or kind)
        parts.append(f'<line x1="{TIME_W}" y1="{y:.0f}" x2="{width - 10}" y2="{y:.0f}" stroke="{band}" '
                     f'stroke-dasharray="4 3" stroke-width="{2 if is_failing else 1}"/>')
        parts.append(_text(TIME_W + 6, y - 3, esc_line(text, int((width - TIME_W - 20) / CHAR_W)),
                           "band", color=band))
        parts.append("</g>")
        return "".join(parts)
    lane = lane_of[actor]
    x = cx(lane)
    if lane == len(set(lane_of.values())) - 1 and len(lane_of) > MAX_LANES:
        label = f"{actor}: {label}"     # the shared lane: say whose event
    arrow = kind in ("send", "recv", "connect") and server_lane is not None and lane != server_lane
    if arrow:
        sx = cx(server_lane)
        x1, x2 = (x, sx) if kind in ("send", "connect") else (sx, x)
        dash = ' stroke-dasharray="5 3"' if kind == "connect" else ""
        head = f' marker-end="url(#{uid}-{"recv" if kind == "recv" else "send"})"'
        parts.append(f'<line x1="{x1:.0f}" y1="{y:.0f}" x2="{x2:.0f}" y2="{y:.0f}" stroke="{color}" '
                     f'stroke-width="1.5"{dash}{head}/>')
        text = label if kind != "connect" else f"connect {label}".strip()
        room = int(abs(x2 - x1) / CHAR_W) - 2
        if len(text) <= room:
            parts.append(_text((x1 + x2) / 2, y - 4, esc_line(text), "msg", "middle", color))
        else:   # a short arrow: the label runs on to the right, over the lanes
            left = min(x1, x2) + 6
            room = min(int((width - left - 10) / CHAR_W), 80)
            parts.append(_text(left, y - 4, esc_line(text, max(room, 10)), "msg", "start", color))
    else:
        shape = {"close": "x", "exit": "x", "signal": "x"}.get(kind, "o")
        if shape == "x":
            parts.append(f'<path d="M{x - 5:.0f},{y - 5:.0f}L{x + 5:.0f},{y + 5:.0f}M{x - 5:.0f},{y + 5:.0f}'
                         f'L{x + 5:.0f},{y - 5:.0f}" stroke="{color}" stroke-width="2"/>')
        else:
            parts.append(f'<circle cx="{x:.0f}" cy="{y:.0f}" r="4.5" fill="{color}"/>')
        room = int((width - x - 20) / CHAR_W)
        room = min(room, int(1.6 * lane_w / CHAR_W))
        if kind not in ("close", "note") or not label:
            label = f"{kind} {label}".strip()
        parts.append(_text(x + 9, y + 4, esc_line(label, max(room, 12)), "msg", "start", color))
    parts.append("</g>")
    return "".join(parts)


# --------------------------------------------------------------------------
# Page parts
# --------------------------------------------------------------------------

def _badge(status: str) -> str:
    word = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}.get(status, "FAIL")
    return f'<span class="badge {esc(status)}">{word}</span>'


def _anchor(item: dict, n: int) -> str:
    return f"item-{n}-" + re.sub(r"[^a-z0-9]+", "-", str(item.get("id", "")).lower()).strip("-")


def _bar(score: float, max_score: float) -> str:
    pct = 100.0 if not max_score else max(0.0, min(100.0, 100.0 * (score or 0) / max_score))
    cls = "" if pct >= 100 else ' class="partial"'
    return f'<div class="bar"><span{cls} style="width:{pct:.0f}%"></span></div>'


def _summary(grade: dict) -> str:
    build = grade.get("build") or {}
    status = grade.get("status", "graded")
    rows = [("Assignment", grade.get("assignment", "")), ("Status", status),
            ("Started", grade.get("started", "")),
            ("Time", f"{float(grade.get('execution_time') or 0):.1f} s")]
    if build:
        rows.append(("Build", f"{build.get('system', '?')}, {'ok' if build.get('ok') else 'FAILED'}"
                     f", {len(warnings(grade))} warning(s)"))
    dl = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in rows if v != "")
    notes = "".join(f"<li>{esc(n)}</li>" for n in grade.get("notes") or [])
    return (f'<section id="summary" class="summary">'
            f'<div class="score">{points(grade.get("score"))} <small>/ {points(grade.get("max_score"))}</small></div>'
            f'<div><p class="status-{esc(status)}">{esc(status_sentence(grade))}</p><dl>{dl}</dl>'
            + (f'<ul class="muted">{notes}</ul>' if notes else "") + "</div></section>")


def _categories(grade: dict) -> str:
    cats = grade.get("categories") or []
    if not cats:
        return ""
    rows = "".join(f"<tr><td>{esc(c['name'])}</td><td class=\"num\">{points(c['score'])} / "
                   f"{points(c['max_score'])}</td><td>{_bar(c['score'], c['max_score'])}</td></tr>" for c in cats)
    return (f'<section id="categories"><h2>Points by category</h2><table><tr><th>Category</th>'
            f'<th class="num">Points</th><th></th></tr>{rows}<tr><th>Total</th><th class="num">'
            f'{points(grade.get("score"))} / {points(grade.get("max_score"))}</th><th></th></tr></table></section>')


def _item_index(items: list[dict]) -> str:
    if not items:
        return ""
    rows = "".join(
        f'<tr><td class="num">{n}</td><td>{_badge(i.get("status", ""))}</td>'
        f'<td><a href="#{_anchor(i, n)}">{esc(i.get("id"))}</a>: {esc(i.get("name", ""))}</td>'
        f'<td>{esc(i.get("category"))}</td>'
        f'<td class="num">{points(i.get("score"))} / {points(i.get("max_score"))}</td></tr>'
        for n, i in enumerate(items, 1))
    return (f'<section id="items"><h2>Items</h2><table><tr><th class="num">#</th><th>Result</th><th>Item</th>'
            f'<th>Category</th><th class="num">Points</th></tr>{rows}</table></section>')


def _source_block(src: dict) -> str:
    lines = []
    for line in safe_text(src.get("excerpt") or "").splitlines():
        cls = ' class="hit"' if line.startswith(">") else ""
        lines.append(f"<span{cls}>{html.escape(line)}</span>")
    where = f"{src.get('file')}:{src.get('line')}" + (f" in {src['fn']}" if src.get("fn") else "")
    what = f" &mdash; {esc(src['what'])}" if src.get("what") else ""
    return f"<h4><code>{esc(where)}</code>{what}</h4><pre class=\"src lines\">{''.join(lines)}</pre>"


def _valgrind(check: dict, vg: dict) -> str:
    own = own_files(check)
    out = [f"<h4>Valgrind ({esc(vg.get('tool') or 'valgrind')}) in check: {esc(check.get('name', ''))}</h4>",
           f"<pre>{esc(chr(10).join(valgrind_lines(vg, own)))}</pre>"]
    findings = valgrind_findings_list(vg)
    for heading, finding in findings[:MAX_FINDINGS]:
        frames = finding.get("stack") or []
        lis = "".join(
            f'<li class="{"own" if f.get("file") and os.path.basename(f["file"]) in own else ""}">'
            f"{esc(frame_location(f))}</li>" for f in frames[:MAX_FRAMES])
        more = f'<li class="muted">... {len(frames) - MAX_FRAMES} more frames</li>' if len(frames) > MAX_FRAMES else ""
        out.append(f"<p>{esc(heading)}</p><ol class=\"frames\">{lis}{more}</ol>")
    if len(findings) > MAX_FINDINGS:
        out.append(f'<p class="muted">... and {len(findings) - MAX_FINDINGS} more findings</p>')
    sources = check.get("source") or []
    if sources:
        out.append("<h4>Your source</h4>" + "".join(_source_block(s) for s in sources))
    return "".join(out)


def _checks_table(item: dict) -> str:
    rows = "".join(
        f'<tr><td>{_badge("skipped" if c.get("outcome") in ("skipped", "not run") else c.get("outcome", ""))}</td>'
        f'<td>{esc(c.get("name", ""))}<br><code class="muted">{esc(c.get("nodeid", ""))}</code></td>'
        f'<td class="num">{float(c.get("duration") or 0):.2f} s</td></tr>'
        for c in item.get("checks") or [])
    return f'<table class="checks">{rows}</table>' if rows else ""


def _item(item: dict, n: int) -> str:
    status = item.get("status", "")
    out = [f'<section class="item {esc(status)}" id="{_anchor(item, n)}">',
           f'<span class="pts">{points(item.get("score"))} / {points(item.get("max_score"))}</span>',
           f"<h3>{_badge(status)} {esc(item.get('id'))}: {esc(item.get('name', ''))}</h3>",
           f'<p class="muted">category {esc(item.get("category"))}</p>']
    check = first_failing_check(item)
    if item.get("output") and not restates_failure(item, check):
        out.append(f'<pre class="why">{esc(item["output"].strip())}</pre>')
    deductions = item.get("deductions") or []
    if deductions:
        out.append("<ul>" + "".join(f"<li>&minus;{points(d.get('points'))}: {esc(d.get('reason', ''))}</li>"
                                     for d in deductions) + "</ul>")
    if check is not None and check.get("outcome") == "failed":
        fields = dict(failure_fields(check))
        out.append(f"<h4>First failing check: {esc(check.get('name', ''))}</h4>")
        if "step" in fields:
            out.append(f"<p>Step: <code>{esc(fields['step'])}</code></p>")
        if "expected" in fields or "actual" in fields:
            out.append('<div class="vs">'
                       f'<div><h4>Expected</h4><pre class="expected">{esc(fields.get("expected", ""))}</pre></div>'
                       f'<div><h4>Actual</h4><pre class="actual">{esc(fields.get("actual", ""))}</pre></div></div>')
        if "hint" in fields:
            out.append(f'<div class="hint"><strong>Hint:</strong> {esc(fields["hint"])}</div>')
        events = check.get("transcript") or []
        if events:
            shown = min(len(events), MAX_EVENTS)
            left = len(events) - shown
            out.append("<h4>Timeline</h4><p class=\"muted\">"
                       + (f"The last {shown} events; {left} earlier events are left out." if left
                          else f"All {shown} events.")
                       + " Hover over an event for its full text.</p>")
            out.append(f'<div class="timeline">{timeline_svg(events, f"tl{n}", fields.get("step", ""))}</div>')
            out.append(f"<details><summary>Transcript as text</summary><pre>"
                       f"{html.escape(transcript_text(events, last=None))}</pre></details>")
    for vcheck, vg in item_valgrind(item):
        out.append(_valgrind(vcheck, vg))
    table = _checks_table(item)
    if table:
        if status == "passed" and not deductions:
            out.append(f"<details><summary>Checks</summary>{table}</details>")
        else:
            out.append(f"<h4>Checks</h4>{table}")
    out.append("</section>")
    return "".join(out)


_LOG_CLASS = ((re.compile(r"\berror\b:|\bfatal error\b|undefined reference", re.I), "err"),
              (re.compile(r"\bwarning\b:", re.I), "warn"),
              (re.compile(r"\bnote\b:", re.I), "note"))


def _build(grade: dict) -> str:
    build = grade.get("build") or {}
    if not build:
        return ""
    progs = "".join(f"<li>{esc(p)}: {'built' if ok else '<strong>missing</strong>'}</li>"
                    for p, ok in (build.get("programs") or {}).items())
    lines = []
    for line in safe_text(build.get("log") or "")[:MAX_LOG_CHARS].splitlines():
        cls = next((c for pattern, c in _LOG_CLASS if pattern.search(line)), "")
        lines.append(f'<span class="{cls}">{html.escape(line)}</span>' if cls else f"<span>{html.escape(line)}</span>")
    warns = warnings(grade)
    out = [f'<section id="build"><h2>Build</h2><p>{esc(build.get("system", "?"))}: '
           f'{"ok" if build.get("ok") else "<strong>failed</strong>"}'
           + (f", {float(build['duration']):.1f} s" if build.get("duration") is not None else "")
           + f", {len(warns)} warning(s)</p>"]
    if progs:
        out.append(f"<ul>{progs}</ul>")
    if warns:
        out.append("<h4>Warnings</h4><pre class=\"log lines\">"
                   + "".join(f'<span class="warn">{esc(w)}</span>' for w in warns) + "</pre>")
    if lines:
        out.append(f"<details{' open' if not build.get('ok') else ''}><summary>Build log</summary>"
                   f"<pre class=\"log lines\">{''.join(lines)}</pre></details>")
    out.append("</section>")
    return "".join(out)


def to_html(grade: dict) -> str:
    """The HTML page of GRADE."""
    items = grade.get("items") or []
    heading = esc(title(grade))
    sub = esc(grade.get("title") or "")
    body = [f"<header><h1>chatgrade: {heading}</h1>"
            + (f'<p class="sub">{sub}</p>' if sub else "") + "</header>",
            _summary(grade)]
    # A failed build explains everything below it: show its log first.
    build_first = grade.get("status") == "build_failed" or not (grade.get("build") or {}).get("ok", True)
    if build_first:
        body.append(_build(grade))
    body += [_categories(grade), _item_index(items)]
    if items:
        body.append('<section id="details"><h2>Details</h2>'
                    + "".join(_item(i, n) for n, i in enumerate(items, 1)) + "</section>")
    if not build_first:
        body.append(_build(grade))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>chatgrade: {heading} {points(grade.get('score'))}/{points(grade.get('max_score'))}</title>"
            f"<style>{CSS}</style></head>\n<body>\n" + "\n".join(p for p in body if p) + "\n</body></html>\n")
