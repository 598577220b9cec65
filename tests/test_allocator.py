"""aerogan.allocator: large CPU tensors reuse freed memory instead of page-faulting fresh mappings."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from aerogan.allocator import ENV

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")

# a 64 MiB tensor made, written and freed 8 times: the minor page faults it cost, and whether the setting applied
_CHILD = """
import json, resource, torch
from aerogan.allocator import freed_memory_reused, reuse_freed_memory
applied = reuse_freed_memory()
torch.ones(1)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(8):
    t = torch.empty(16 * 2**20)
    t.fill_(1.0)
    del t
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"applied": applied, "recorded": freed_memory_reused(), "faults": faults}))
"""


def _run(env_value: str | None) -> dict[str, int | bool]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.pop(ENV, None)
    if env_value is not None:
        env[ENV] = env_value
    out = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_freed_memory_is_reused_without_new_page_faults() -> None:
    default = _run("0")
    reused = _run(None)
    if not reused["applied"]:
        pytest.skip("not glibc: mallopt is unavailable")
    assert default == {"applied": False, "recorded": False, "faults": default["faults"]}
    assert reused["recorded"] is True
    # glibc's default maps each 64 MiB block afresh (16384 pages x 8); kept memory faults in about once
    assert default["faults"] > 8 * 16384 * 0.9
    assert reused["faults"] < 2 * 16384


def test_cli_entry_point_applies_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import aerogan.cli as cli

    calls: list[str] = []
    monkeypatch.setattr(cli, "reuse_freed_memory", lambda: calls.append("reuse") or True)
    monkeypatch.setattr(cli, "cli_main", lambda args=None: calls.append("run"))
    cli.main()
    assert calls == ["reuse", "run"]
