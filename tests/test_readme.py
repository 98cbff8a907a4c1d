"""The README's Python examples run and print what the plaintext computation gives."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_scripting_example_matches_the_plaintext_mean() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "the README has no Python example"
    namespace: dict[str, object] = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(blocks[0], namespace)
    ages = namespace["ages"]
    expected_count = sum(len(a) for a in ages)  # type: ignore[union-attr]
    expected_total = sum(a.sum() for a in ages)  # type: ignore[union-attr]
    for count, total in namespace["result"].results:  # type: ignore[attr-defined]
        assert count == expected_count
        assert abs(total - expected_total) < 1e-3
