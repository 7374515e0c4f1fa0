"""The largest update request each memory back end accepts: operations joined by ``;`` in one SPARQL update,
found by bisection (each operation a ``DELETE WHERE`` of fixed IRIs, the shape a forget sends). What
``sbu.memory.store.MAX_UPDATE_OPS`` is set from (docs/backends.md, trap 10).

    python benchmarks/update_limits.py [--up-to 20000]
"""

from __future__ import annotations

import argparse
import tempfile

from sbu.memory import open_store
from sbu.memory.server import oxigraph_serve
from sbu.memory.store import MAX_UPDATE_OPS, MemoryStore


def _accepts(store: MemoryStore, n: int) -> bool:
    ops = [f"DELETE WHERE {{ GRAPH <urn:g> {{ <urn:s{i}> ?p ?o }} }}" for i in range(n)]
    try:
        store.update(" ;\n".join(ops))
        return True
    except Exception:  # noqa: BLE001 - each back end fails its own way (RecursionError, HTTP 400, …)
        return False


def largest(store: MemoryStore, up_to: int) -> str:
    if _accepts(store, up_to):
        return f"≥ {up_to} (all sizes tried)"
    lo, hi = 1, up_to
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if _accepts(store, mid) else (lo, mid)
    return str(lo)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--up-to", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, oxigraph_serve(f"{folder}/served") as url:
        for name, store in [("memory:", open_store("memory:")), ("oxigraph:", open_store("oxigraph:")),
                            ("oxigraph:PATH", open_store(f"oxigraph:{folder}/disk")),
                            ("oxigraph serve", open_store(url))]:
            with store:
                print(f"{name:16} largest accepted: {largest(store, args.up_to):>24}   "
                      f"batch used: {MAX_UPDATE_OPS.get(store.backend) or 'one request'}")


if __name__ == "__main__":
    main()
