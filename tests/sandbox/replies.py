"""What the simulator tests keep of an answer."""
from __future__ import annotations

from typing import Any

import attrs
import orjson


@attrs.frozen
class Reply:
    status: int
    headers: Any
    raw: bytes

    @property
    def body(self) -> Any:
        return orjson.loads(self.raw) if self.raw else None
