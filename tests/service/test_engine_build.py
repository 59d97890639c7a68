"""The session's engine reports the instruction sets it uses: the portable ones ``scripts/setup.sh``
builds. (The library's code itself: ``tests/system/test_engine_build.py``.)"""

from __future__ import annotations

import platform

from providers.engine_client import EngineClient

AMX = {"ldtilecfg", "sttilecfg", "tileloadd", "tileloaddt1", "tilestored", "tilezero", "tilerelease",
       "tdpbssd", "tdpbsud", "tdpbusd", "tdpbuud", "tdpbf16ps", "tdpfp16ps"}  # fmt: skip


async def test_the_engine_reports_the_instruction_sets_it_uses(local_engine: EngineClient) -> None:
    status = await local_engine.status()

    used = status["instruction_sets"]
    assert not [name for name in used if name.startswith("AMX")]
    assert "AMX" not in status["system_info"]
    if platform.machine() == "x86_64":
        assert {"AVX", "AVX2", "FMA", "F16C"} <= set(used), "the portable x86-64 target is AVX2"
        assert "AVX512" not in used, "AVX-512 is not part of the portable target"
    await local_engine.aclose()
