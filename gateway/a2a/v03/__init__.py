"""A2A v0.3 on the JSON-RPC endpoint: the protocol's previous generation, for the clients that still speak it.

The JSON-RPC binding routes by method name, as the a2a-sdk's server does
with ``enable_v0_3_compat``: a v0.3 name (``message/send``, ``tasks/get``...)
is served here, a v1.0 name (``SendMessage``, ``GetTask``...) as v1.0.

| module | one concept |
|---|---|
| ``models`` | v0.3's wire structs (``kind``-tagged) |
| ``convert`` | v0.3 to v1.0 and back |
| ``methods`` | the method table, over the shared operations |
"""

from __future__ import annotations

from gateway.a2a.v03.convert import v03_event
from gateway.a2a.v03.methods import METHODS, SPENDS_TOKENS, STREAMING, V03Methods, v03_error

__all__ = ["METHODS", "SPENDS_TOKENS", "STREAMING", "V03Methods", "v03_error", "v03_event"]
