"""Settings of the research agents: where the data is, and the defaults of a run's limits."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["CORPUS", "DATA", "ResearchSettings"]

# The sample research corpus and data tables shipped with Hivewire (see their NOTICE).
CORPUS = Path(__file__).parent / "corpus"
DATA = Path(__file__).parent / "data"


class ResearchSettings(BaseSettings):
    """Read from ``HIVEWIRE_RESEARCH_*`` environment variables (and ``.env``) in each research agent."""

    model_config = SettingsConfigDict(
        env_prefix="HIVEWIRE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    research_data_dir: Path = Field(default=DATA, description="Folder of the CSV tables analysts query.")
    research_kb: str = Field(default="research", description="Knowledge base holding the research corpus.")
    research_max_questions: int = Field(
        default=8, ge=1, le=32, description="Sub-questions a brief is split into, at most."
    )
    research_max_tokens: int = Field(
        default=200_000, ge=0, description="Model tokens a run may spend (0: no limit)."
    )
    research_max_cost: float = Field(
        default=0.0,
        ge=0,
        description="Model cost a run may spend, in HIVEWIRE_LLM_PRICES units (0: no limit).",
    )
    research_deadline: float = Field(
        default=120.0, gt=0, description="Seconds a run may take (within the caller's own deadline)."
    )
    research_writer_seconds: float = Field(
        default=20.0, gt=0, description="Seconds of a run kept for the writer (at most half of it)."
    )
    research_slow_run: float = Field(
        default=60.0, gt=0, description="Seconds after which a run raises a slow-run alert."
    )
    research_analyst_rounds: int = Field(
        default=3, ge=1, le=8, description="Model calls an analyst makes per sub-question, at most."
    )
