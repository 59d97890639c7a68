"""``playground_guard``: a dependency on the chain routes that answers a playground path naming no
playground file with a JSON 404 before LangServe opens it. LangServe opens whatever the path
names inside its bundle and catches only ``FileNotFoundError``, so a directory
(``/chat/playground/assets/``), a path under a file, a name too long or a NUL byte became a 500.
"""

from __future__ import annotations

from pathlib import Path

import langserve
from fastapi import HTTPException, Request

# The bundle add_routes serves with its default playground_type; fixed files inside the package.
PLAYGROUND = Path(langserve.__file__).resolve().parent / "playground" / "dist"
PLAYGROUND_FILES = frozenset(
    path.relative_to(PLAYGROUND).as_posix() for path in PLAYGROUND.rglob("*") if path.is_file()
)


async def playground_guard(request: Request) -> None:
    file_path = request.path_params.get("file_path")
    if file_path is None or file_path == "" or file_path in PLAYGROUND_FILES:
        return  # not the playground, its page, or one of its files
    page = request.url.path.split("/playground/")[0] + "/playground/"
    raise HTTPException(404, f"the playground has no file {file_path!r}; its page is {page}")
