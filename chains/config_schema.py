"""``FormReadyConfig``: a chain whose config schema a form builder can render.

LangChain types the ``tags`` and ``metadata`` a config may carry with a ``null`` default, and a
form that fills itself from the schema's defaults (the LangServe playground does) then refuses
its own data ("must be array", "must be object") and never lets the person start. Here every
``null`` default leaves the JSON schema; validation keeps them (a value left out is still None).
The binding keeps its class through ``with_config``, so the host can add callbacks on top.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from langchain_core.runnables import RunnableBinding
from pydantic import BaseModel, ConfigDict


def _drop_null_defaults(schema: dict[str, Any]) -> None:
    for field in schema.get("properties", {}).values():
        if isinstance(field, dict) and "default" in field and field["default"] is None:
            del field["default"]


def without_null_defaults(model: type[BaseModel]) -> type[BaseModel]:
    """``model`` whose JSON schema names no ``null`` default for its own fields."""
    config = ConfigDict(**{**model.model_config, "json_schema_extra": _drop_null_defaults})
    return cast(type[BaseModel], type(model.__name__, (model,), {"model_config": config, "__module__": __name__}))


# The pydantic mypy plugin's __init__ for a binding clashes its `kwargs` field with `**kwargs`.
class FormReadyConfig(RunnableBinding[Any, Any]):  # type: ignore[no-redef]
    def config_schema(self, *, include: Sequence[str] | None = None) -> type[BaseModel]:
        return without_null_defaults(super().config_schema(include=include))
