"""Print ``.env.example`` from the settings class: ``python -m settings > .env.example``."""

from settings import env_example

print(env_example(), end="")
