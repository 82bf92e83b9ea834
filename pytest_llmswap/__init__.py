"""pytest-llmswap: model-migration regression testing for LLM prompt suites."""

from .contract import llm_contract
from .drift.tolerance import Tolerance
from .types import OutputFormatError, Response, Usage

__all__ = ["llm_contract", "Tolerance", "Response", "Usage", "OutputFormatError"]
__version__ = "0.1.0"
