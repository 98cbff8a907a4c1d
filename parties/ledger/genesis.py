"""Reading a federation's chain genesis from its file."""

from __future__ import annotations

import json
from pathlib import Path

from smpc.chain.genesis import Genesis, GenesisError


def load_genesis(path: Path) -> Genesis:
    """Parse ``genesis.json`` at ``path``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GenesisError(f"{path} is not a JSON genesis: {exc}") from None
    return Genesis.from_dict(data)
