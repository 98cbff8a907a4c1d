"""A patient's receipt as one self-contained HTML page, for a hospital's patient portal.

The page is rendered from a receipt and the verdict of checking it
(:func:`parties.ledger.receipts.verify`): what was checked against what, each
job in words and in a table, whether the receipt is complete, and what it
does not prove. It has inline styles only: no script, no image, no link to
anything outside the file. Every value from the receipt is escaped.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterable, Mapping
from typing import Any

from parties.ledger.receipts import Verdict

_STYLE = (
    "body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;width:100%}"
    "th,td{border:1px solid #bbb;padding:.3em .5em;text-align:left;vertical-align:top}"
    ".yes{color:#064;font-weight:bold}.no{color:#555}.fault{color:#a00}"
    "code{font-size:.85em}"
)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _when(ms: object) -> str:
    if not isinstance(ms, int) or isinstance(ms, bool):
        return "?"
    return f"{dt.datetime.fromtimestamp(ms / 1000, dt.UTC):%Y-%m-%d %H:%M} UTC"


def _items(lines: Iterable[str], css: str = "") -> str:
    cls = f' class="{css}"' if css else ""
    return "<ul>" + "".join(f"<li{cls}>{_e(line)}</li>" for line in lines) + "</ul>"


def _job_row(job: Mapping[str, Any]) -> str:
    included = job.get("included") is True
    outputs = job.get("outputs") or {}
    recipients = sorted({r for names in outputs.values() for r in names})
    cells = [
        _when(job.get("time_ms")),
        f"{job.get('protocol', '?')} {job.get('protocol_version', '')}",
        job.get("scope", "?"),
        job.get("analyst", "?"),
        ", ".join(recipients) or "-",
        job.get("status", "?"),
    ]
    block = job.get("block") or {}
    mark = '<td class="yes">yes</td>' if included else '<td class="no">no</td>'
    return (
        "<tr>"
        + "".join(f"<td>{_e(c)}</td>" for c in cells)
        + mark
        + f"<td>{_e(block.get('height', '?'))}<br><code>{_e(str(block.get('hash', ''))[:16])}"
        f"</code></td><td><code>{_e(str(job.get('job', ''))[:16])}</code></td></tr>"
    )


def render(
    receipt: Mapping[str, Any], verdict: Verdict, against: str, does_not_prove: Iterable[str]
) -> str:
    """The HTML page of ``receipt`` checked against ``against`` (words such as "a checkpoint")."""
    hospital = receipt.get("hospital", "?")
    if verdict.ok:
        status = f"<p>This receipt <b>verifies</b> against {_e(against)}.</p>"
    else:
        status = (
            f'<p class="fault">This receipt does <b>not</b> verify against {_e(against)}:'
            " it proves nothing.</p>" + _items(verdict.faults, "fault")
        )
    span = receipt.get("range") or {}
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Receipt from {_e(hospital)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>How {_e(hospital)} used your record</h1>",
        f"<p>Issued {_e(_when(receipt.get('issued_ms')))} by {_e(hospital)} in federation"
        f" {_e(receipt.get('federation', '?'))}, covering the chain's blocks"
        f" {_e(span.get('from_height', '?'))} to {_e(span.get('to_height', '?'))}.</p>",
        status,
    ]
    if verdict.ok:
        parts += [
            "<h2>What it proves</h2>",
            _items(verdict.proven),
            f"<p>{_e(verdict.completeness)}.</p>",
        ]
        if verdict.unanchored:
            parts += ["<h2>What it cannot prove here</h2>", _items(verdict.unanchored)]
    parts += [
        "<h2>The jobs</h2>",
        "<table><tr><th>time</th><th>computation</th><th>purpose (scope)</th>"
        "<th>analyst</th><th>results went to</th><th>status</th><th>your row used</th>"
        "<th>block</th><th>job</th></tr>",
        *(_job_row(job) for job in receipt.get("jobs", [])),
        "</table>",
    ]
    not_final = receipt.get("not_final") or []
    if not_final:
        parts.append(
            f"<p>{len(not_final)} more job(s) had not reached a final block when this receipt"
            " was issued; a later receipt will show them.</p>"
        )
    parts += ["<h2>What it does not prove</h2>", _items(does_not_prove), "</body></html>"]
    return "\n".join(parts) + "\n"
