"""pytest-llmswap: model-migration regression testing for LLM prompt suites."""

import os

# litellm downloads its price map when first imported unless told not to. Set before anything imports it (the
# plugin loads ahead of conftests and test modules), so an application under test is offline too: nothing
# leaves the machine but the model calls asked for. A value the user set is kept.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from .contract.decorator import llm_contract
from .drift.metrics import Metric, register_metric
from .drift.tolerance import Tolerance
from .models.backends import BackendKind, register_backend
from .types import ModelSpec, OutputFormatError, Response, Usage

__all__ = ["llm_contract", "Tolerance", "Response", "Usage", "OutputFormatError", "register_metric", "Metric",
           "register_backend", "BackendKind", "ModelSpec"]
__version__ = "0.1.0"
