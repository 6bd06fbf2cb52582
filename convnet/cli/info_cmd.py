"""``convnet info``: the kernel backend, its threads, NumPy's BLAS and the machine.

The backend is ``numba`` (compiled kernels) when numba is installed, else ``numpy``;
``CONVNET_BACKEND=numpy|numba`` chooses (see :mod:`convnet.backends`).
"""
from __future__ import annotations

import json
import os
import platform


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("info", help="kernel backend, threads, BLAS and machine",
                              description=__doc__)
    p.add_argument("--json", action="store_true", help="print it as JSON")
    p.set_defaults(func=run)


def collect() -> dict:
    from .. import __version__, backends

    out = {"convnet": __version__, "python": platform.python_version(),
           "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores",
           "cpu": _cpu_model()}
    out.update(backends.info())
    return out


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run(args) -> int:
    info = collect()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"convnet {info['convnet']} on Python {info['python']}, {info['machine']} "
          f"({info['cpu']})")
    line = f"backend: {info['backend']} (available: {', '.join(info['available'])})"
    if info["backend"] == "numba":
        line += (f"; numba {info['numba']}, {_threads(info['numba_threads'])}, cache "
                 f"{info['numba_cache']}")
    print(line)
    blas = info["blas"]
    print(f"numpy {info['numpy']} with {blas.get('name') or 'BLAS'} {blas.get('version') or ''}"
          .rstrip() + (f", {_threads(blas['threads'])}" if blas.get("threads") else ""))
    return 0


def _threads(n: int) -> str:
    return f"{n} thread" + ("" if n == 1 else "s")
