"""The installed llama.cpp is the portable build ``scripts/setup.sh`` makes: no AMX tile instruction
anywhere in its CPU code (an AMX instruction on a machine whose OS does not grant the tile state
kills the process at the first generation), checked with ``objdump`` and ``as``."""

from __future__ import annotations

import platform
import shutil
import subprocess
from pathlib import Path

import llama_cpp
import pytest

AMX = {"ldtilecfg", "sttilecfg", "tileloadd", "tileloaddt1", "tilestored", "tilezero", "tilerelease",
       "tdpbssd", "tdpbsud", "tdpbusd", "tdpbuud", "tdpbf16ps", "tdpfp16ps"}  # fmt: skip


def amx_instructions(binary: Path) -> list[str]:
    objdump = shutil.which("objdump")
    assert objdump, "objdump (Debian's binutils, installed with build-essential) reads the library"
    code = subprocess.run([objdump, "-d", str(binary)], capture_output=True, text=True, check=True).stdout
    return sorted({line.split("\t")[2].split()[0] for line in code.splitlines() if line.count("\t") >= 2} & AMX)


def cpu_libraries() -> list[Path]:
    folder = Path(llama_cpp.__file__).parent / "lib"
    return sorted({path.resolve() for path in folder.glob("libggml-cpu*.so*")})


@pytest.mark.skipif(platform.machine() != "x86_64", reason="AMX is an x86-64 extension")
def test_the_check_finds_amx_instructions(tmp_path: Path) -> None:
    source = tmp_path / "amx.s"
    source.write_text("ldtilecfg (%rax)\ntileloadd (%rax,%rbx,1), %tmm0\nvfmadd231ps %ymm1, %ymm2, %ymm3\n")
    subprocess.run(["as", str(source), "-o", str(tmp_path / "amx.o")], check=True)

    assert amx_instructions(tmp_path / "amx.o") == ["ldtilecfg", "tileloadd"]


def test_the_engine_library_has_no_amx_instruction() -> None:
    libraries = cpu_libraries()
    assert libraries, "llama_cpp ships its CPU backend as libggml-cpu*.so"

    for library in libraries:
        found = amx_instructions(library)
        assert found == [], f"{library.name} holds AMX instructions {found}: rebuild with bash scripts/setup.sh"
