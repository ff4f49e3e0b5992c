"""Tools for models: declarations with their implementations, run in parallel, results cached.

The tool-result cache (:class:`ToolCache`) is the process's, shared by every
skill through ``ctx.tool_cache``; a :class:`Toolbox` uses it for each tool
that names the data it reads.
"""

from agents.tools.cache import ToolCache
from agents.tools.toolbox import FunctionTool, Toolbox, ToolResult

__all__ = ["FunctionTool", "ToolCache", "ToolResult", "Toolbox"]
